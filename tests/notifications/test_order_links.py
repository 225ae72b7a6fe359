""""Mail me my orders": the same answer for every address, the right links to the right one, and throttled."""

import re

import pytest
from django.urls import reverse

from tests.notifications.helpers import send_all
from tests.orders.factories import make_order

pytestmark = pytest.mark.django_db
FIND = reverse("orders:find")


def ask(client, email: str, **extra):
    return client.post(FIND, {"number": "", "email": email}, **extra)


def comparable(response, email: str) -> str:
    html = response.content.decode().replace(email, "ADDRESS")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_known_and_unknown_addresses_get_the_same_answer(client):
    make_order(email="ada@example.com")
    known = ask(client, "ada@example.com")
    unknown = ask(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert comparable(known, "ada@example.com") == comparable(unknown, "nobody@example.com")
    assert "we have just sent the links" in known.content.decode()


def test_the_links_of_that_address_are_mailed_and_open_the_orders(client):
    first, second = make_order(email="Ada@Example.com"), make_order(email="ada@example.com")
    other = make_order(email="bob@example.com")
    send_all()  # the order mails
    ask(client, "ADA@example.com ")
    [message] = send_all()
    assert message.to == ["ada@example.com"]  # the address as the newest order has it
    for order in (first, second):
        assert order.number in message.body and order.get_absolute_url() in message.body
    assert other.number not in message.body and other.access_token not in message.body
    path = re.search(r"https?://[^/\s]+(/orders/[^\s]+/)", message.body).group(1)
    assert client.get(path).status_code == 200

    ask(client, "nobody@example.com")
    assert send_all() == []  # an address without orders gets nothing


def test_per_address_and_per_client_limits_answer_429(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "find_order": {"client": "5/m", "email": "3/h"}}
    for _ in range(3):
        assert ask(client, "ada@example.com").status_code == 200
    limited = ask(client, "ADA@example.com")
    assert limited.status_code == 429 and "Please wait a moment" in limited.content.decode()
    assert 0 < int(limited["Retry-After"]) <= 3600
    assert ask(client, "bob@example.com").status_code == 200  # another address: still allowed (5th of 5)
    assert ask(client, "carol@example.com").status_code == 429  # but this client has asked too often
    other_client = ask(client, "dave@example.com", REMOTE_ADDR="10.0.0.9")
    assert other_client.status_code == 200


def test_the_number_and_email_lookup_still_opens_the_order(client):
    order = make_order()
    response = client.post(FIND, {"number": order.number.lower(), "email": "ADA@example.com"})
    assert response.status_code == 302 and response["Location"] == order.get_absolute_url()
    wrong = client.post(FIND, {"number": order.number, "email": "eve@example.com"})
    assert wrong.status_code == 400 and "We found no order" in wrong.content.decode()

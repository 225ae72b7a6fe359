import pytest

from payments.models import Payment
from tests.orders.factories import make_order

pytestmark = pytest.mark.django_db


def url_for(order) -> str:
    return f"/api/orders/{order.access_token}/payments/"


def test_start_a_hosted_payment_and_read_its_status(client, psp):
    order = make_order()
    response = client.post(url_for(order), {"flow": "hosted"}, content_type="application/json")
    assert response.status_code == 201
    data = response.json()
    payment = Payment.objects.get()
    assert data["id"] == str(payment.pk) and data["state"] == "pending"
    assert data["action_url"] == payment.redirect_url and data["final"] is False
    again = client.post(url_for(order), {"flow": "hosted"}, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert client.get(f"/api/payments/{payment.pk}/").json()["state"] == "pending"


def test_start_a_direct_payment(client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url_for(order), {"flow": "direct", "card_token": psp.token()},
                               content_type="application/json")
    assert response.status_code == 201
    assert client.get(f"/api/payments/{response.json()['id']}/").json()["state"] == "captured"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "flow"), ({"flow": "bitcoin"}, "flow"), ({"flow": "direct"}, "card_token"),
     ({"flow": "direct", "card_token": "4242 4242"}, "card_token")],
)
def test_bad_input_is_a_400_naming_the_field(client, psp, body, field):
    response = client.post(url_for(make_order()), body, content_type="application/json")
    assert response.status_code == 400 and field in response.json()
    assert not Payment.objects.exists()


def test_unknown_order_or_payment_is_a_json_404(client, db):
    assert client.post("/api/orders/nope/payments/", {"flow": "hosted"},
                       content_type="application/json").json()["detail"]
    response = client.get("/api/payments/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404 and "detail" in response.json()


def test_paying_a_cancelled_order_is_a_409(client, psp):
    from orders.services import order_cancel

    order = make_order()
    order_cancel(order_id=order.pk, source="customer")
    response = client.post(url_for(order), {"flow": "hosted"}, content_type="application/json")
    assert response.status_code == 409 and "nothing to pay" in response.json()["detail"]


def test_payment_endpoints_are_in_the_schema(client, db):
    schema = client.get("/api/schema/").content.decode()
    assert "/api/orders/{access_token}/payments/" in schema and "/api/payments/{payment_id}/" in schema

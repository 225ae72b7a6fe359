"""A request that fails because PostgreSQL or Redis is away is a 503 with Retry-After, not a 500."""

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.urls import path
from redis.exceptions import ConnectionError as RedisConnectionError

from config import urls as shop_urls

pytestmark = pytest.mark.django_db


def database_away(request):
    raise OperationalError('connection failed: FATAL:  the database system is starting up')


def redis_away(request):
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def bug(request):
    raise ZeroDivisionError("a real bug")


def fine(request):
    return HttpResponse("ok")


urlpatterns = [path("page/", database_away), path("status.json", redis_away), path("api/thing/", database_away),
               path("bug/", bug), path("api/bug/", bug), path("fine/", fine)]
handler500 = shop_urls.handler500


@pytest.fixture
def failing_client(client, settings):
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False
    return client


def test_the_shop_wires_the_handler():
    assert shop_urls.handler500 == "config.ops.server_error"


def test_a_page_that_cannot_reach_the_database_is_a_503_page_with_retry_after(failing_client, caplog):
    response = failing_client.get("/page/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "back in a moment" in response.content.decode() and "Traceback" not in response.content.decode()
    assert "Service Unavailable: /page/" in caplog.text  # still logged for the operators


@pytest.mark.parametrize("url", ["/status.json", "/api/thing/"])
def test_json_endpoints_say_it_in_json(failing_client, url):
    response = failing_client.get(url)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"detail": "The shop is briefly unavailable; please retry in a few seconds."}


def test_a_real_bug_stays_a_500_without_retry_after(failing_client):
    page = failing_client.get("/bug/")
    assert page.status_code == 500 and "Retry-After" not in page
    assert "Something went wrong on our side" in page.content.decode()
    api = failing_client.get("/api/bug/")
    assert api.status_code == 500 and api.json() == {"detail": "Something went wrong on our side; please retry."}
    assert failing_client.get("/fine/").status_code == 200

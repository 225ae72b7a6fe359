"""The live status page in Chromium, against the shop as `scripts/run` starts it (separate processes)."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import shop_processes  # noqa: F401 - the session fixture of the processes
from tests.psp import Simulator

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(shop_processes):  # noqa: F811
    psp = Simulator(shop_processes.psp.url)
    yield shop_processes
    psp.faults(async_delay_ms=3000, latency_ms=0)


def fill(page: Page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def check_out_and_pay(page: Page, shop, card: str = "4000 0000 0000 0077") -> None:
    page.goto(f"{shop.url}/")
    page.locator("a[href^='/products/']").first.click()
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    for label, value in (("Email", "ada@example.com"), ("Full name", "Ada Lovelace"),
                         ("Address", "1 Analytical Way"), ("City", "London"), ("Postal code", "N1 7AA"),
                         ("Country", "GB")):
        fill(page, label, value)
    page.get_by_role("button", name="Place order").click()
    page.fill("#card-number", card)
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")
    page.get_by_test_id("pay-card").click()
    page.wait_for_url(re.compile(r"/payments/[0-9a-f-]{36}/$"))


def test_the_async_card_turns_the_page_to_paid_by_push_with_no_reload_and_no_poll(page: Page, shop):
    requests_seen, loads, sockets = [], [], []
    page.on("request", lambda r: requests_seen.append(r.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("load", lambda: loads.append(page.url))
    check_out_and_pay(page, shop)
    status_url = page.url
    expect(page.get_by_test_id("safe-to-close")).to_contain_text("You can close this page safely")
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=20000)
    expect(page.get_by_test_id("payment-message")).to_have_text("Thank you! Your order is paid.")
    expect(page.get_by_test_id("safe-to-close")).to_be_hidden()
    assert loads.count(status_url) == 1  # pushed into the page: no reload
    assert not [u for u in requests_seen if "status.json" in u]
    assert len(sockets) == 1 and "/ws/payments/" in sockets[0]

    # Back after paying stays on the status page; nothing is sent again.
    page.go_back()
    assert page.url == status_url
    expect(page.get_by_test_id("back-note")).to_be_visible()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received")
    # One more Back reaches the order page. Should the browser show a kept copy
    # with the Pay form, paying again is refused: the order is paid.
    page.go_back()
    if page.get_by_test_id("pay-card").count():
        page.fill("#card-number", "4242 4242 4242 4242")
        page.fill("#card-expiry", "12/34")
        page.fill("#card-cvc", "123")
        page.get_by_test_id("pay-card").click()
        expect(page.get_by_text("there is nothing to pay")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("order-state")).to_have_text("Paid")
    expect(page.get_by_test_id("pay-card")).to_have_count(0)


def test_with_websocket_blocked_the_polling_fallback_still_gets_there(page: Page, shop):
    page.route_web_socket(re.compile(r"/ws/payments/"), lambda ws: ws.close())
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "status.json" in r.url else None)
    check_out_and_pay(page, shop)
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=30000)
    assert polls


def test_leaving_while_the_card_payment_is_confirmed_asks_first_and_the_order_page_follows(page: Page, shop):
    psp = Simulator(shop.psp.url)
    psp.faults(async_delay_ms=60000)  # stays pending until the test completes it
    check_out_and_pay(page, shop)
    payment_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.get_by_test_id("payment-state")).to_have_text("Waiting for confirmation", timeout=20000)
    page.get_by_test_id("payment-message").click()  # the browser asks only on a page the person touched
    dialogs = []

    def on_dialog(dialog):
        dialogs.append(dialog.type)
        dialog.accept()

    page.on("dialog", on_dialog)
    page.get_by_test_id("order-link").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Awaiting payment")
    assert dialogs == ["beforeunload"]
    # The order page offers no second payment while this one is open...
    expect(page.get_by_test_id("pay-card")).to_have_count(0)
    # ...and shows the outcome by itself when the PSP settles it.
    transaction = next(t for t in psp.transactions() if t["merchant_reference"] == payment_id)
    psp.complete(transaction["id"])
    expect(page.get_by_test_id("order-state")).to_have_text("Paid", timeout=10000)

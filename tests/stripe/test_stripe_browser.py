"""A customer pays with Stripe's card element in a real browser (localstripe serves the Stripe.js stand-in)."""

import shutil

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order
from payments.models import Payment
from tests.orders.factories import make_order
from tests.stripe.conftest import CARDS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (scripts/test installs it with apt-get)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"],
    }


def fill_card(page: Page, number: str) -> None:
    """localstripe's card element: plain inputs named by placeholder, inside our form."""
    card = page.get_by_test_id("stripe-card")
    card.get_by_placeholder("number").fill(number)
    card.get_by_placeholder("exp_month").fill("12")
    card.get_by_placeholder("exp_year").fill("34")
    card.get_by_placeholder("cvc").fill("123")
    card.get_by_placeholder("postal_code").fill("N17AA")


def test_pay_with_the_stripe_card_element(page: Page, stripe_shop, live_server):
    order = make_order()
    sent_to_shop = []
    page.on("request", lambda r: sent_to_shop.append(r.post_data or "") if r.url.startswith(live_server.url)
            else None)
    page.goto(f"{live_server.url}{order.get_absolute_url()}")

    fill_card(page, CARDS["success"])
    page.get_by_test_id("pay-card").click()

    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=15000)
    assert Order.objects.get().state == "paid"
    payment = Payment.objects.get()
    assert payment.psp_reference == stripe_shop.intents()[0]["id"]
    # The card number went to Stripe, never to the shop.
    assert sent_to_shop and not any("4242" in body for body in sent_to_shop)


def test_a_card_that_needs_authentication_in_the_browser(page: Page, stripe_shop, live_server):
    order = make_order()
    page.goto(f"{live_server.url}{order.get_absolute_url()}")

    fill_card(page, CARDS["action"])
    page.get_by_test_id("pay-card").click()
    # The bank needs the customer: said so, with the button first.
    expect(page.get_by_test_id("payment-state")).to_have_text("Your bank needs you", timeout=15000)
    page.get_by_role("link", name="Confirm with your bank").click()  # Stripe's 3-D Secure page, approved

    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=15000)
    assert Order.objects.get().state == "paid"

"""A customer buys a product through each payment flow in a real browser."""

import re

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order
from payments.models import Payment
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def checkout(page: Page, shop) -> None:
    product = ProductFactory(name="Ledger Mug", slug="ledger-mug", price_minor=1450, stock=5)
    page.goto(f"{shop.url}/")
    page.get_by_role("link", name="Ledger Mug").click()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_test_id("cart-total")).to_have_text("€29.00")
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Address", exact=True).fill("1 Analytical Way")
    page.get_by_label("City").fill("London")
    page.get_by_label("Postal code").fill("N1 7AA")
    page.get_by_label("Country").select_option("GB")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Awaiting payment")
    assert product.order_lines.count() == 1


def test_buy_through_the_hosted_payment_page(page: Page, shop):
    checkout(page, shop)
    page.get_by_test_id("pay-hosted").click()
    # On the PSP's own page now.
    expect(page).to_have_url(re.compile(r"/hosted/txn_"))
    page.fill("input[name=number]", "4242 4242 4242 4242")
    page.fill("input[name=expiry]", "12/34")
    page.fill("input[name=cvc]", "123")
    page.click("button[value=pay]")
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received")
    page.get_by_test_id("order-link").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Paid")
    assert Order.objects.get().state == "paid"
    assert Payment.objects.get().flow == "hosted"


def test_buy_through_the_integrated_card_form(page: Page, shop):
    checkout(page, shop)
    requests_to_shop = []
    page.on("request", lambda r: requests_to_shop.append(r.post_data or "") if r.url.startswith(shop.url) else None)
    page.fill("#card-number", "4242 4242 4242 4242")
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=15000)
    page.get_by_test_id("order-link").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Paid")
    assert Payment.objects.get().flow == "direct"
    # The card number went to the PSP, never to the shop.
    assert not any("4242" in body.replace("%20", "").replace(" ", "") for body in requests_to_shop)


def test_a_declined_card_then_a_good_one(page: Page, shop):
    checkout(page, shop)
    page.fill("#card-number", "4000 0000 0000 0002")
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment declined")
    expect(page.get_by_test_id("payment-message")).to_contain_text("Your card was declined.")
    page.get_by_test_id("order-link").click()
    page.fill("#card-number", "4242 4242 4242 4242")
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received")
    assert list(Payment.objects.order_by("created_at").values_list("state", flat=True)) == ["declined", "captured"]


def test_the_processing_page_updates_itself_when_the_psp_settles_later(page: Page, shop, psp):
    psp.faults(async_delay_ms=1500)
    checkout(page, shop)
    page.fill("#card-number", "4000 0000 0000 0077")
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Waiting for confirmation")
    # No reload by the customer: the page polls our status endpoint and the
    # simulator's webhook settles the payment.
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=20000)
    assert Payment.objects.get().transitions.first().source == "webhook"

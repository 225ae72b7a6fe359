"""Issue 12 in a real browser: Back after paying, the country list, and paying another way."""

import re

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order
from payments.models import Payment
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def checkout_to_germany(page: Page, shop) -> None:
    ProductFactory(name="Ledger Mug", slug="ledger-mug", price_minor=1900, stock=5)
    page.goto(f"{shop.url}/products/ledger-mug/")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Address", exact=True).fill("1 Analytical Way")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("Postal code").fill("10115")
    # A real list: the customer picks "Germany" by its name and gets Germany, not Georgia.
    page.get_by_label("Country").select_option(label="Germany")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Awaiting payment")
    expect(page.locator("address")).to_contain_text("Germany")
    assert Order.objects.get().country == "DE"


def fill_card(page: Page, number: str = "4242 4242 4242 4242") -> None:
    page.fill("#card-number", number)
    page.fill("#card-expiry", "12/34")
    page.fill("#card-cvc", "123")


def test_a_country_typed_nowhere_and_errors_all_at_once(page: Page, shop):
    ProductFactory(name="Ledger Mug", slug="ledger-mug", price_minor=1900, stock=5)
    page.goto(f"{shop.url}/products/ledger-mug/")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_role("button", name="Place order").click()
    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Country: Choose your country.")
    expect(page.get_by_label("Country")).to_have_attribute("aria-invalid", "true")
    assert Order.objects.count() == 0


def test_back_after_paying_shows_the_paid_order_not_a_pay_form(page: Page, shop):
    checkout_to_germany(page, shop)
    fill_card(page)
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=15000)
    expect(page.get_by_test_id("receipt-card")).to_have_text("Visa ending in 4242")
    page.go_back()
    expect(page.get_by_test_id("order-state")).to_have_text("Paid")
    expect(page.get_by_test_id("payment-status")).to_contain_text("Payment received")
    expect(page.get_by_test_id("pay-card")).to_have_count(0)
    expect(page.get_by_test_id("pay-hosted")).to_have_count(0)


def test_card_errors_are_shown_at_once_next_to_their_fields(page: Page, shop):
    checkout_to_germany(page, shop)
    page.fill("#card-number", "4242 4242 4242 4241")
    page.fill("#card-expiry", "13/20")
    page.get_by_test_id("pay-card").click()
    for field in ("number", "expiry", "cvc"):
        expect(page.locator(f"#card-{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#card-{field}-error")).not_to_be_empty()
    expect(page.locator("[data-card-error]")).to_be_focused()
    expect(page.locator("[data-card-error]")).to_contain_text("Please correct 3 fields")
    assert not Payment.objects.exists()


def test_back_from_the_hosted_page_then_pay_another_way_by_card(page: Page, shop, psp):
    checkout_to_germany(page, shop)
    page.get_by_test_id("pay-hosted").click()
    expect(page).to_have_url(re.compile(r"/hosted/txn_"))
    page.go_back()  # the customer changes their mind on the PSP's page
    expect(page.get_by_test_id("pay-another-way")).to_be_visible()
    expect(page.get_by_test_id("pay-hosted")).to_have_count(0)
    fill_card(page)
    page.get_by_test_id("pay-card").click()
    expect(page.get_by_test_id("payment-state")).to_have_text("Payment received", timeout=15000)
    hosted, card = Payment.objects.order_by("created_at")
    assert (hosted.flow, hosted.state, card.flow, card.state) == ("hosted", "cancelled", "direct", "captured")
    assert {t["id"]: t["status"] for t in psp.transactions()}[hosted.psp_reference] == "cancelled"
    assert Order.objects.get().state == "paid"

import pytest
from django.core.management import call_command
from django.urls import reverse

from shop.models import Product
from shop.money import format_money
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_list_shows_active_products_with_prices(client):
    ProductFactory(name="Visible Mug", price_minor=1450)
    ProductFactory(name="Hidden Mug", is_active=False)
    page = client.get(reverse("shop:product-list")).content.decode()
    assert "Visible Mug" in page and "€14.50" in page
    assert "Hidden Mug" not in page


def test_detail_page_and_404_for_inactive(client):
    product = ProductFactory(name="Lamp", slug="lamp", stock=3)
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200 and "3 in stock" in response.content.decode()
    ProductFactory(slug="gone", is_active=False)
    assert client.get("/products/gone/").status_code == 404
    assert client.get("/products/never-existed/").status_code == 404


def test_seed_demo_is_idempotent_and_keeps_sold_stock():
    call_command("seed_demo")
    count = Product.objects.count()
    assert count >= 8
    Product.objects.filter(sku="RK-MUG-01").update(stock=3)
    call_command("seed_demo")
    assert Product.objects.count() == count
    assert Product.objects.get(sku="RK-MUG-01").stock == 3


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(123456, "EUR", "€1,234.56"), (5, "USD", "$0.05"), (1000, "JPY", "¥1,000"), (1500, "SEK", "15.00 SEK"),
     (-250, "GBP", "-£2.50")],
)
def test_money_is_formatted_from_integers(amount, currency, text):
    assert format_money(amount, currency) == text


def test_stock_cannot_be_negative_in_the_database():
    from django.db import IntegrityError, transaction
    from django.db.models import F

    product = ProductFactory(stock=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock=F("stock") - 2)

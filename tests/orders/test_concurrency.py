"""Races that only a real database server can show (PostgreSQL)."""

import uuid

import pytest
from django.db import connection

from orders.models import Order
from orders.services import LineRequest, OutOfStock, order_create
from shop.models import Product
from tests.orders.factories import customer
from tests.shop.factories import ProductFactory
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_customers_race_for_the_last_item(postgres_only):
    product = ProductFactory(stock=1)
    results = run_at_once(20, lambda i: order_create(customer=customer(email=f"c{i}@example.com"),
                                                     lines=[LineRequest(product.pk, 1)]))
    orders = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert len(orders) == 1 and len(refused) == 19, results
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.count() == 1


def test_the_same_checkout_token_submitted_concurrently_makes_one_order(postgres_only):
    product = ProductFactory(stock=10)
    token = uuid.uuid4()
    results = run_at_once(8, lambda i: order_create(customer=customer(), lines=[LineRequest(product.pk, 1)],
                                                    checkout_token=token))
    assert all(isinstance(r, Order) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Product.objects.get(pk=product.pk).stock == 9
    assert connection.vendor == "postgresql"

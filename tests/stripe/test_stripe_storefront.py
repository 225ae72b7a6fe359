"""The order page offers Stripe's card element when Stripe is the shop's gateway."""

import pytest

from tests.orders.factories import make_order
from tests.stripe.conftest import PUBLISHABLE_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db


def test_the_card_form_uses_stripes_card_element(client, localstripe, settings):
    order = make_order()

    page = client.get(order.get_absolute_url()).content.decode()

    assert 'data-stripe-card' in page and "js/stripe-card.js" in page
    assert f'<script src="{settings.STRIPE_JS_URL}"></script>' in page
    assert f'data-public-key="{PUBLISHABLE_KEY}"' in page and SECRET_KEY not in page
    # Stripe's element collects the card: none of the simulator's own inputs.
    assert 'id="card-number"' not in page and "js/card-form.js" not in page


def test_the_simulator_keeps_its_own_card_form(client, psp):
    order = make_order()

    page = client.get(order.get_absolute_url()).content.decode()

    assert 'id="card-number"' in page and "js/card-form.js" in page
    assert "data-stripe-card" not in page and "js/stripe-card.js" not in page

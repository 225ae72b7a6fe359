from orders.services import CustomerDetails, LineRequest, order_create
from tests.shop.factories import ProductFactory


def customer(**overrides) -> CustomerDetails:
    values = {"email": "ada@example.com", "full_name": "Ada Lovelace", "address_line1": "1 Analytical Way",
              "city": "London", "postal_code": "N1 7AA", "country": "GB"}
    values.update(overrides)
    return CustomerDetails(**values)


def make_order(*, product=None, quantity: int = 1, **customer_overrides):
    """An order created through the real service, with stock reserved."""
    product = product or ProductFactory()
    return order_create(customer=customer(**customer_overrides),
                        lines=[LineRequest(product_id=product.pk, quantity=quantity)])


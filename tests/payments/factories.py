from payments.models import Payment
from payments.services import payment_start
from tests.orders.factories import make_order


def start_payment(flow: str = Payment.Flow.HOSTED, *, order=None, card_token: str = "", **order_kwargs) -> Payment:
    order = order or make_order(**order_kwargs)
    payment, _ = payment_start(order_id=order.pk, flow=flow, card_token=card_token)
    return payment

"""Support actions beyond one payment: reprocess a webhook event, close a discrepancy, fulfil or cancel an order."""

import pytest
from django.urls import reverse

from orders.models import Order
from payments.models import Discrepancy, Payment, StaffAction, WebhookEvent
from payments.services import discrepancy_record
from shop.models import Product
from tests.admin.conftest import captured_payment, pending_payment
from tests.payments.test_webhooks import event_body

pytestmark = pytest.mark.django_db


def failed_event(payment: Payment, body: bytes | None = None) -> WebhookEvent:
    """An event stored by the inbox whose processing failed twice (the database was away)."""
    return WebhookEvent.objects.create(
        gateway="simulator", event_id="evt_stuck", event_type="transaction.captured",
        body=(body or event_body(payment, "captured", event_id="evt_stuck")).decode(),
        attempts=2, error="OperationalError: database is away", payment=payment)


def test_reprocess_a_failed_webhook_event(support_client, psp):
    payment = pending_payment()
    event = failed_event(payment)
    response = support_client.post(reverse("admin:payments_webhookevent_reprocess", args=[event.pk]), follow=True)
    assert "Event evt_stuck applied." in response.content.decode()
    event.refresh_from_db()
    payment.refresh_from_db()
    assert event.processed_at and event.error == "" and event.attempts == 3
    assert payment.state == "captured" and payment.order.state == "paid"
    action = StaffAction.objects.get()
    assert (action.action, action.actor_name, action.webhook_event_id, action.payment_id, action.outcome) == (
        "reprocess_webhook", "sam", event.pk, payment.pk, "Applied.")


def test_reprocess_that_fails_again_keeps_the_error_and_says_so(support_client, psp):
    payment = pending_payment()
    event = failed_event(payment, body=b'{"not": "an event"}')
    response = support_client.post(reverse("admin:payments_webhookevent_reprocess", args=[event.pk]), follow=True)
    assert "Event evt_stuck failed again:" in response.content.decode()
    event.refresh_from_db()
    assert event.processed_at is None and event.attempts == 3 and event.error
    assert StaffAction.objects.get().outcome.startswith("Failed again:")
    assert Payment.objects.get(pk=payment.pk).state == "pending"


def test_reprocess_from_the_event_list(support_client, psp):
    event = failed_event(pending_payment())
    response = support_client.post(reverse("admin:payments_webhookevent_changelist"),
                                   {"action": "reprocess_selected", "_selected_action": [event.pk]}, follow=True)
    assert "Event evt_stuck applied." in response.content.decode()


def open_discrepancy(payment: Payment) -> Discrepancy:
    return discrepancy_record(kind="late_event", dedupe_key=f"late_capture:{payment.pk}", gateway="simulator",
                              payment=payment, summary="The PSP captured a payment we hold as expired")


def test_close_a_discrepancy_with_a_note(support_client, psp):
    discrepancy = open_discrepancy(pending_payment())
    url = reverse("admin:payments_discrepancy_close", args=[discrepancy.pk])
    response = support_client.post(url, {"resolution": "Refunded the late capture in full"}, follow=True)
    assert "Discrepancy closed." in response.content.decode()
    discrepancy.refresh_from_db()
    assert (discrepancy.status, discrepancy.resolution, discrepancy.resolved_by_name) == (
        "closed", "Refunded the late capture in full", "sam")
    assert discrepancy.resolved_at
    response = support_client.post(url, {"resolution": "again"})
    assert "already closed by sam" in response.content.decode()


def test_closing_a_discrepancy_needs_a_note(support_client, psp):
    discrepancy = open_discrepancy(pending_payment())
    response = support_client.post(reverse("admin:payments_discrepancy_close", args=[discrepancy.pk]),
                                   {"resolution": " "})
    assert "Give a resolution note: it goes into the audit trail." in response.content.decode()
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == "open"


def test_close_discrepancies_in_bulk_asks_for_one_note(support_client, psp):
    first, second = open_discrepancy(pending_payment()), open_discrepancy(pending_payment())
    changelist = reverse("admin:payments_discrepancy_changelist")
    data = {"action": "close_selected", "_selected_action": [first.pk, second.pk]}
    form = support_client.post(changelist, {**data, "index": 0})
    assert 'name="resolution"' in form.content.decode() and 'name="apply"' in form.content.decode()
    refused = support_client.post(changelist, {**data, "apply": "1", "resolution": ""})
    assert "Give a resolution note" in refused.content.decode()
    assert Discrepancy.objects.filter(status="open").count() == 2
    response = support_client.post(changelist, {**data, "apply": "1", "resolution": "Both refunded"}, follow=True)
    assert "2 discrepancy(ies) closed." in response.content.decode()
    assert set(Discrepancy.objects.values_list("status", "resolved_by_name")) == {("closed", "sam")}


def order_action(client, action: str, order: Order, reason: str | None):
    data = {"action": action, "_selected_action": [order.pk]}
    if reason is not None:
        data.update(apply="1", reason=reason)
    return client.post(reverse("admin:orders_order_changelist"), data, follow=True)


def test_mark_a_paid_order_fulfilled(support_client, psp):
    order = captured_payment(psp).order
    asked = order_action(support_client, "mark_fulfilled", order, None)
    assert 'name="reason"' in asked.content.decode()
    refused = order_action(support_client, "mark_fulfilled", order, "")
    assert "Give a reason" in refused.content.decode()
    response = order_action(support_client, "mark_fulfilled", order, "Shipped, tracking 1Z999")
    assert "1 order(s) marked fulfilled." in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("admin:orders_order_change", args=[order.pk])
    order.refresh_from_db()
    transition = order.transitions.first()
    assert (order.state, transition.actor_name, transition.reason, transition.source) == (
        "fulfilled", "sam", "Shipped, tracking 1Z999", "staff")


def test_cancel_an_order_voids_its_open_payment_and_releases_stock_once(support_client, psp):
    payment = pending_payment()
    order, product = payment.order, payment.order.lines.get().product
    stock = Product.objects.get(pk=product.pk).stock
    response = order_action(support_client, "cancel_orders", order, "Customer cancelled by e-mail")
    assert "1 order(s) cancelled." in response.content.decode()
    order.refresh_from_db()
    payment.refresh_from_db()
    assert (order.state, payment.state) == ("cancelled", "cancelled")
    assert [t["status"] for t in psp.transactions()] == ["cancelled"]
    assert Product.objects.get(pk=product.pk).stock == stock + 1
    assert order.transitions.first().actor_name == "sam" and payment.transitions.first().actor_name == "sam"
    again = order_action(support_client, "cancel_orders", order, "twice")
    assert "it cannot be cancelled" in again.content.decode()
    assert Product.objects.get(pk=product.pk).stock == stock + 1


def test_cancel_refuses_an_order_the_psp_has_captured(support_client, psp):
    payment = pending_payment()
    psp.pay_on_hosted_page(payment.redirect_url)
    response = order_action(support_client, "cancel_orders", payment.order, "Customer gave up")
    assert "The PSP had already captured this payment; the order is paid now." in response.content.decode()
    assert Order.objects.get(pk=payment.order_id).state == "paid"


def test_the_order_page_shows_lines_payments_and_timeline(support_client, psp):
    payment = captured_payment(psp)
    page = support_client.get(reverse("admin:orders_order_change", args=[payment.order_id])).content.decode()
    assert str(payment.pk) in page and reverse("admin:payments_payment_change", args=[payment.pk]) in page
    assert "€12.50" in page and 'data-state="captured"' in page
    assert "Mark fulfilled…" in page and 'name="email"' not in page  # read-only for support

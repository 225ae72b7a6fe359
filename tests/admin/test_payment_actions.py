"""A support user works through the payment actions of the console: each is audited, each refuses bad input."""

import uuid

import pytest
from django.urls import reverse

from payments.models import Payment, PaymentTransition, Refund, StaffAction
from tests.admin.conftest import captured_payment, paid_at_psp_only, pending_payment

pytestmark = pytest.mark.django_db


def url(name: str, payment: Payment) -> str:
    return reverse(f"admin:payments_payment_{name}", args=[payment.pk])


def page_of(payment: Payment) -> str:
    return url("change", payment)


def test_check_with_the_psp_applies_a_capture_we_missed(support_client, psp):
    payment = paid_at_psp_only(psp)
    response = support_client.post(url("check", payment), follow=True)
    assert response.redirect_chain[-1][0] == page_of(payment)
    assert "Checked with the PSP: Pending → captured." in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"
    transition = payment.transitions.first()
    assert (transition.to_state, transition.source, transition.actor_name) == ("captured", "staff", "sam")
    action = StaffAction.objects.get()
    assert (action.action, action.actor_name, action.payment_id) == ("check_payment", "sam", payment.pk)


def test_check_that_finds_nothing_new_is_still_audited(support_client, psp):
    payment = pending_payment()
    response = support_client.post(url("check", payment), follow=True)
    assert "Checked with the PSP: Still pending" in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "pending"
    assert StaffAction.objects.get().outcome.startswith("Still pending")


def test_check_is_a_post_only_button(support_client, psp):
    payment = pending_payment()
    assert support_client.get(url("check", payment)).status_code == 405
    assert not StaffAction.objects.exists()


def test_resolve_as_declined_voids_an_open_psp_payment_first(support_client, psp):
    payment = pending_payment()  # the customer is still on the PSP's page
    form = support_client.get(url("resolve", payment)).content.decode()
    assert 'name="override"' not in form  # a support user has no override
    response = support_client.post(url("resolve", payment), {"outcome": "declined",
                                                             "reason": "Bank confirmed by phone: refused"},
                                   follow=True)
    page = response.content.decode()
    assert "Payment resolved as cancelled; the order is awaiting payment." in page
    assert "voided there first" in page
    payment.refresh_from_db()
    assert payment.state == "cancelled"
    assert [t["status"] for t in psp.transactions()] == ["cancelled"]
    transition = payment.transitions.first()
    assert (transition.from_state, transition.to_state, transition.source, transition.actor_name,
            transition.reason) == ("pending", "cancelled", "staff", "sam", "Bank confirmed by phone: refused")


def test_resolve_is_refused_with_a_message_while_the_psp_does_not_answer(support_client, psp):
    payment = pending_payment()
    psp.faults(error_rate=1.0)
    response = support_client.post(url("resolve", payment), {"outcome": "cancelled", "reason": "Looks abandoned"})
    psp.faults(error_rate=0.0)
    assert "The PSP cannot confirm that nothing was taken" in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "pending"


def test_resolve_without_a_reason_is_refused_with_a_message(support_client, psp):
    payment = pending_payment()
    response = support_client.post(url("resolve", payment), {"outcome": "declined", "reason": "   "})
    assert response.status_code == 200
    assert "Give a reason: it goes into the audit trail." in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "pending"
    assert not PaymentTransition.objects.filter(source="staff").exists()


def test_resolve_as_captured_needs_the_psps_confirmation(support_client, psp):
    payment = pending_payment()
    response = support_client.post(url("resolve", payment), {"outcome": "captured", "reason": "Customer says paid",
                                                             "override": "on"})
    assert "The PSP does not confirm a capture (it says pending)" in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "pending" and payment.order.state == "awaiting_payment"


def test_resolve_as_captured_when_the_psp_confirms_it(support_client, psp):
    payment = paid_at_psp_only(psp)
    response = support_client.post(url("resolve", payment), {"outcome": "captured",
                                                             "reason": "PSP dashboard shows the capture"},
                                   follow=True)
    assert "Payment resolved as captured; the order is paid." in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"
    transition = payment.transitions.first()
    assert (transition.actor_name, transition.payload["psp_confirmed"], transition.payload["override"]) == (
        "sam", True, False)
    assert payment.order.transitions.first().actor_name == "sam"


def test_resolve_as_captured_with_the_override_permission(override_client, psp):
    payment = pending_payment()
    assert 'name="override"' in override_client.get(url("resolve", payment)).content.decode()
    response = override_client.post(url("resolve", payment), {"outcome": "captured",
                                                              "reason": "Paid by bank transfer, ticket 4411"})
    assert "The PSP does not confirm a capture" in response.content.decode()  # the box must be ticked
    response = override_client.post(url("resolve", payment), {"outcome": "captured", "override": "on",
                                                              "reason": "Paid by bank transfer, ticket 4411"},
                                    follow=True)
    assert "Payment resolved as captured" in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"
    transition = payment.transitions.first()
    assert (transition.actor_name, transition.payload["override"]) == ("lead", True)


def test_resolve_as_declined_is_refused_when_the_psp_took_the_money(support_client, psp):
    payment = paid_at_psp_only(psp)
    response = support_client.post(url("resolve", payment), {"outcome": "declined", "reason": "looks failed"})
    assert "The PSP says this payment is captured" in response.content.decode()
    # Refused, and the PSP's word is recorded: the order is paid, never "not charged".
    assert Payment.objects.get(pk=payment.pk).state == "captured"


def test_a_final_payment_cannot_be_resolved(support_client, psp):
    payment = captured_payment(psp)
    response = support_client.post(url("resolve", payment), {"outcome": "cancelled", "reason": "oops"})
    assert "already captured; only open payments" in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "captured"


def test_cancel_an_open_payment_at_the_psp_first(support_client, psp):
    payment = pending_payment()
    response = support_client.post(url("cancel", payment), {"reason": "Customer asked to stop"}, follow=True)
    assert "The PSP confirmed: the payment is cancelled." in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "cancelled"
    transition = payment.transitions.first()
    assert (transition.to_state, transition.source, transition.actor_name, transition.reason) == (
        "cancelled", "staff", "sam", "Customer asked to stop")
    assert [t["status"] for t in psp.transactions()] == ["cancelled"]


def test_cancel_without_a_reason_is_refused(support_client, psp):
    payment = pending_payment()
    response = support_client.post(url("cancel", payment), {"reason": ""})
    assert "Give a reason: it goes into the audit trail." in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "pending"
    assert [t["status"] for t in psp.transactions()] == ["pending"]


def test_cancel_finds_the_psp_captured_it_meanwhile(support_client, psp):
    payment = paid_at_psp_only(psp)
    response = support_client.post(url("cancel", payment), {"reason": "Customer gave up"}, follow=True)
    assert "The PSP answered that the payment is captured; it was not cancelled." in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).state == "captured"


def refund(client, payment: Payment, amount: str, *, refund_id=None, reason="Damaged in transit", follow=True,
           confirmed=True):
    data = {"amount": amount, "reason": reason, "refund_id": str(refund_id or uuid.uuid4())}
    if confirmed:
        data["confirmed"] = "1"
    return client.post(url("refund", payment), data, follow=follow)


def test_a_refund_asks_for_confirmation_showing_the_amount_and_the_customer(support_client, psp):
    payment = captured_payment(psp)
    page = refund(support_client, payment, "2.50", confirmed=False)
    html = page.content.decode()
    assert 'data-testid="confirm"' in html and "€2.50" in html
    assert payment.order.email in html and payment.order.full_name in html and payment.order.number in html
    assert 'value="Yes, refund €2.50"' in html and 'name="confirmed" value="1"' in html
    assert not Refund.objects.exists()  # nothing left for the PSP yet


def test_a_form_error_is_shown_once(support_client, psp):
    payment = captured_payment(psp)
    html = refund(support_client, payment, "12.51").content.decode()
    assert html.count("At most €12.50 can be refunded") == 1
    assert "Please correct the error below." in html


def test_partial_then_full_refund(support_client, psp):
    payment = captured_payment(psp)  # €12.50
    form = support_client.get(url("refund", payment)).content.decode()
    assert 'value="12.50"' in form and "At most €12.50" in form
    response = refund(support_client, payment, "2.50")
    assert "Refunded €2.50; the order is partially refunded." in response.content.decode()
    payment.refresh_from_db()
    assert (payment.state, payment.amount_refunded_minor, payment.order.state) == (
        "partially_refunded", 250, "partially_refunded")
    first = Refund.objects.get()
    assert (first.amount_minor, first.actor_name, first.reason, first.state) == (
        250, "sam", "Damaged in transit", "succeeded")
    response = refund(support_client, payment, "10.00", reason="Returned")
    assert "Refunded €10.00; the order is refunded." in response.content.decode()
    payment.refresh_from_db()
    assert (payment.state, payment.amount_refunded_minor, payment.order.state) == ("refunded", 1250, "refunded")
    assert payment.transitions.first().actor_name == "sam"


def test_a_refund_over_the_refundable_amount_is_refused(support_client, psp):
    payment = captured_payment(psp)
    response = refund(support_client, payment, "12.51")
    assert "At most €12.50 can be refunded; you asked for €12.51." in response.content.decode()
    assert not Refund.objects.exists()
    assert Payment.objects.get(pk=payment.pk).state == "captured"


def test_a_refund_without_a_reason_or_with_a_bad_amount_is_refused(support_client, psp):
    payment = captured_payment(psp)
    assert "Give a reason" in refund(support_client, payment, "1.00", reason="").content.decode()
    assert "Enter an amount like 12.50" in refund(support_client, payment, "1,5").content.decode()
    assert "Enter an amount like 12.50" in refund(support_client, payment, "1.005").content.decode()
    assert "more than zero" in refund(support_client, payment, "0").content.decode()
    assert not Refund.objects.exists()


def test_a_double_submitted_refund_form_makes_one_refund(support_client, psp):
    payment = captured_payment(psp)
    refund_id = uuid.uuid4()
    first = refund(support_client, payment, "12.50", refund_id=refund_id)
    again = refund(support_client, payment, "12.50", refund_id=refund_id)
    assert "Refunded €12.50" in first.content.decode() and "Refunded €12.50" in again.content.decode()
    assert Refund.objects.count() == 1
    assert len(psp.transactions()[0]["refunds"]) == 1
    payment.refresh_from_db()
    assert (payment.state, payment.amount_refunded_minor) == ("refunded", 1250)


def test_the_payment_page_shows_the_actions_a_support_user_may_take(support_client, psp):
    open_page = support_client.get(page_of(pending_payment())).content.decode()
    assert all(label in open_page for label in ("Check with the PSP now", "Resolve…", "Cancel at the PSP…"))
    assert "Refund…" not in open_page
    paid_page = support_client.get(page_of(captured_payment(psp))).content.decode()
    assert "Refund…" in paid_page and "Resolve…" not in paid_page and "Check with the PSP now" not in paid_page

"""The discrepancy page offers the fix for money taken, not only "close with a note"."""

import pytest
from django.urls import reverse

from payments.models import Discrepancy, Payment
from tests.payments.test_discrepancy_fixes import found_by_reconcile, wrongly_declined

pytestmark = pytest.mark.django_db


def page(discrepancy: Discrepancy, name: str = "change") -> str:
    return reverse(f"admin:payments_discrepancy_{name}", args=[discrepancy.pk])


def test_refund_from_the_discrepancy_page_confirms_amount_and_customer(support_client, support_user, psp,
                                                                       django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, support_user)
    discrepancy = found_by_reconcile()
    html = support_client.get(page(discrepancy)).content.decode()
    assert "Refund at the PSP…" in html and "Attach to the order as its payment…" in html

    form = support_client.get(page(discrepancy, "refund")).content.decode()
    assert "Refund €12.50 to " + payment.order.email in form  # the confirmation names amount and customer
    refund_id = form.split('name="refund_id" value="')[1].split('"')[0]

    response = support_client.post(page(discrepancy, "refund"), {"reason": "", "refund_id": refund_id})
    assert response.content.decode().count("Give a reason: it goes into the audit trail.") >= 1
    assert not Payment.objects.get(pk=payment.pk).refunds.exists()

    response = support_client.post(page(discrepancy, "refund"), {"reason": "Double charge", "refund_id": refund_id},
                                   follow=True)
    assert "€12.50 refunded. The discrepancy is closed." in response.content.decode()
    support_client.post(page(discrepancy, "refund"), {"reason": "Double charge", "refund_id": refund_id})
    payment.refresh_from_db()
    assert payment.state == "refunded" and payment.refunds.count() == 1
    html = support_client.get(page(discrepancy)).content.decode()
    assert "Refund at the PSP…" not in html  # closed: nothing left to fix


def test_attach_from_the_discrepancy_page_pays_the_order(support_client, support_user, psp,
                                                         django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, support_user)
    discrepancy = found_by_reconcile()
    response = support_client.post(page(discrepancy, "attach"), {"reason": "PSP has the capture"}, follow=True)
    assert f"The capture now pays order {payment.order.number}" in response.content.decode()
    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"


def test_a_discrepancy_without_money_to_move_offers_only_the_note(support_client, psp):
    discrepancy = Discrepancy.objects.create(kind="unknown_reference", dedupe_key="x", gateway="simulator",
                                             summary="A PSP transaction names no payment of ours")
    html = support_client.get(page(discrepancy)).content.decode()
    assert "Close with a note…" in html and "Refund at the PSP…" not in html
    assert support_client.post(page(discrepancy, "attach"), {"reason": "x"}).status_code in (200, 302)
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == "open"

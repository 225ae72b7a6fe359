"""Support staff see what was mailed to a customer, what failed, and can resend it (audited)."""

import uuid

import pytest
from django.urls import reverse

from notifications.models import Notification
from tests.admin.conftest import captured_payment
from tests.notifications.helpers import send_all
from tests.orders.factories import make_order
from tests.staff import login_verified

pytestmark = pytest.mark.django_db


def test_the_order_and_payment_pages_show_the_mails(support_client, psp):
    payment = captured_payment(psp)
    send_all()
    order_page = support_client.get(reverse("admin:orders_order_change", args=[payment.order_id])).content.decode()
    assert "Customer e-mail" in order_page and "Order placed" in order_page
    assert "Payment received (receipt)" in order_page and "Sent" in order_page
    payment_page = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert "Payment received (receipt) to ada@example.com" in payment_page


def test_a_failed_mail_is_counted_on_the_index_and_resent_with_a_reason(support_client, support_user):
    order = make_order()
    row = Notification.objects.get(order=order)
    Notification.objects.filter(pk=row.pk).update(status="failed", attempts=5, last_error="SMTP refused")
    index = support_client.get(reverse("admin:index")).content.decode()
    assert 'data-testid="emails-count">1<' in index

    url = reverse("admin:notifications_notification_resend", args=[row.pk])
    page = support_client.get(url).content.decode()
    assert "Resend “Order placed” to ada@example.com" in page
    refused = support_client.post(url, {"reason": " ", "request_id": str(uuid.uuid4())})
    assert "Give a reason: it goes into the audit trail." in refused.content.decode()

    request_id = str(uuid.uuid4())
    for _ in range(2):  # a double-submitted form queues one resend
        response = support_client.post(url, {"reason": "Customer asked again, ticket 77", "request_id": request_id})
        assert response.status_code == 302
    resent = Notification.objects.get(resend_of=row)
    assert (resent.kind, resent.to, resent.status) == ("order_placed", "ada@example.com", "pending")
    assert (resent.requested_by, resent.requested_by_name, resent.reason) == (
        support_user, "sam", "Customer asked again, ticket 77")
    [message] = send_all()
    assert message.extra_headers["Message-ID"] == f"<{resent.pk}@reckon.invalid>"  # a new message, its own id
    detail = support_client.get(reverse("admin:notifications_notification_change", args=[resent.pk]))
    assert "Customer asked again, ticket 77" in detail.content.decode()


def test_a_pending_mail_cannot_be_resent_and_a_user_without_the_permission_cannot_resend(client, support_client):
    order = make_order()
    row = Notification.objects.get(order=order)
    url = reverse("admin:notifications_notification_resend", args=[row.pk])
    response = support_client.post(url, {"reason": "why not", "request_id": str(uuid.uuid4())}, follow=True)
    assert "has not been sent yet" in response.content.decode()
    assert Notification.objects.count() == 1

    from django.contrib.auth import get_user_model

    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    login_verified(client, viewer)
    assert client.post(url, {"reason": "x", "request_id": str(uuid.uuid4())}).status_code == 403

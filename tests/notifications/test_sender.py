"""The worker sends each due message once, with a stable Message-ID; failures are retried, then flagged."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from notifications.models import Notification
from notifications.sender import send_due_notifications
from payments.services import payment_open_session
from payments.sweeps import sync_due_payments
from tests.admin.conftest import paid_at_psp_only
from tests.notifications.helpers import body_of, send_all
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.psp_plant import make_due
from tests.payments.test_webhooks import deliver, event_body
from tests.psp import CARDS
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db
K = Notification.Kind


def link_in(message) -> str:
    return re.search(r"https?://[^/\s]+(/orders/[^\s<\"]+/)", message.body).group(1)


def test_a_payment_settled_by_the_worker_mails_a_receipt_whose_link_opens_the_order(client, psp):
    payment = paid_at_psp_only(psp)  # the customer paid and closed the tab: no return, no webhook
    [placed] = send_all()
    assert placed.subject == f"Your order {payment.order.number}" and placed.to == ["ada@example.com"]
    make_due(payment)
    sync_due_payments()

    [receipt] = send_all()
    payment.refresh_from_db()
    assert receipt.subject == f"Receipt for your order {payment.order.number}"
    text = receipt.body
    assert payment.order.number in text and "€12.50" in text and "Keep this message as your receipt." in text
    assert f"ends in): {payment.psp_reference[-6:]}" in text
    page = client.get(link_in(receipt))
    assert page.status_code == 200 and "Paid" in page.content.decode()
    assert receipt.alternatives and "text/html" == receipt.alternatives[0][1]
    assert payment.order.get_absolute_url() in receipt.alternatives[0][0]


def test_each_message_has_its_rows_stable_message_id_and_is_marked_sent():
    order = make_order()
    [message] = send_all()
    row = Notification.objects.get(order=order)
    assert message.extra_headers["Message-ID"] == f"<{row.pk}@reckon.invalid>"
    assert (row.status, row.attempts, row.subject) == ("sent", 1, f"Your order {order.number}")
    assert row.sent_at is not None
    assert send_all() == []  # nothing is sent twice


def test_a_send_that_raises_is_retried_then_flagged(monkeypatch, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 3

    def refuse(self, fail_silently=False):
        raise ConnectionRefusedError("SMTP server refused the connection")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    make_order()
    row = Notification.objects.get()
    for attempt in (1, 2):
        send_due_notifications(budget_seconds=30)
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", attempt)
        assert "refused the connection" in row.last_error and row.next_attempt_at > timezone.now()
        assert send_due_notifications(budget_seconds=30).retried == 0  # not due again yet
        Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    report = send_due_notifications(budget_seconds=30)
    row.refresh_from_db()
    assert (report.failed, row.status, row.attempts) == (1, "failed", 3)
    monkeypatch.undo()
    assert send_all() == []  # a failed message waits for staff (the console's resend)


def test_a_message_that_would_mislead_is_not_sent(client, psp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        declined = start_payment("direct", card_token=psp.token(CARDS["declined"]))
    order = declined.order
    # The customer tries again at once and pays, before the worker sends the "declined" mail.
    retry = payment_open_session(payment_id=start_payment("hosted", order=order).pk)
    deliver(client, event_body(retry, "captured"))

    sent = send_all()
    assert sorted(m.subject.split(" ")[0] for m in sent) == ["Receipt", "Your"]  # order mail and receipt
    row = Notification.objects.get(kind=K.PAYMENT_DECLINED)
    assert (row.status, row.last_error) == ("skipped", "Not sent: the order is paid now.")


def test_a_worker_killed_between_send_and_mark_resends_with_the_same_message_id(monkeypatch):
    """At least once: the lease runs out and the row is sent again, recognisably the same message."""
    make_order()
    import notifications.sender as sender

    monkeypatch.setattr(sender, "_mark", lambda *args, **kwargs: True)  # the process dies before marking
    [first] = send_all()
    monkeypatch.undo()
    assert send_all() == []  # still leased to the dead worker
    Notification.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))  # the lease ran out
    [second] = send_all()
    assert first.extra_headers["Message-ID"] == second.extra_headers["Message-ID"]
    assert Notification.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_each_message_once(postgres_only):
    from tests.shop.factories import ProductFactory

    product = ProductFactory(stock=100)
    for i in range(40):
        make_order(product=product, email=f"c{i}@example.com")
    mail.outbox = []
    reports = run_at_once(2, lambda i: send_due_notifications(budget_seconds=30, batch_size=5))
    assert not [r for r in reports if isinstance(r, Exception)], reports
    ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert sum(r.sent for r in reports) == 40
    assert all(r.sent > 0 for r in reports), "both senders should have taken a share"
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_no_card_number_or_cvc_in_any_mail(client, psp, django_capture_on_commit_callbacks):
    for card in CARDS.values():
        with django_capture_on_commit_callbacks(execute=True):
            start_payment("direct", card_token=psp.token(card))
    hosted = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.pay_on_hosted_page(hosted.redirect_url)
    deliver(client, event_body(hosted, "captured"))
    sent = send_all()
    assert len(sent) >= len(CARDS) + 2
    for message in sent:
        text = body_of(message) + message.subject
        digits = re.sub(r"[\s-]", "", text)
        for number in CARDS.values():
            assert number not in digits
        assert "cvc" not in text.lower() and "cvv" not in text.lower()
        assert "tok_" not in text and "sk_sim" not in text and "whsec" not in text

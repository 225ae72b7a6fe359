"""A customer's right to be forgotten, within the law's duty to keep invoices and the money records.

`forget_customer(email)` removes the personal data (name, address, e-mail)
from that customer's orders whose money is settled and that are older than
CUSTOMER_DATA_LEGAL_RETENTION_DAYS, and from the messages mailed to them. It
keeps what the books need: order numbers, lines, amounts, currencies, the
country (for tax), payments, refunds and every audit trail. An order still in
motion (awaiting payment, an open payment, a pending refund, an open
discrepancy) is left alone and reported, to be forgotten once it settles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from notifications.models import Notification
from orders.models import Order
from payments.models import OPEN_STATES, Discrepancy, Payment, Refund

ERASED = "(erased)"


def erased_email(email: str) -> str:
    """A stand-in that keeps one customer's orders together without saying who they were."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]
    return f"erased-{digest}@erased.invalid"


@dataclass
class ForgetReport:
    erased: list[str] = field(default_factory=list)
    kept_in_motion: list[str] = field(default_factory=list)
    kept_by_law: list[str] = field(default_factory=list)
    messages: int = 0


def _in_motion() -> Q:
    payments = Payment.objects.filter(order=OuterRef("pk"))
    return (Q(state=Order.State.AWAITING_PAYMENT)
            | Q(Exists(payments.filter(state__in=OPEN_STATES)))
            | Q(Exists(Refund.objects.filter(payment__order=OuterRef("pk"), state=Refund.State.PENDING)))
            | Q(Exists(Discrepancy.objects.filter(payment__order=OuterRef("pk"), status=Discrepancy.Status.OPEN))))


def forget_customer(*, email: str, dry_run: bool = False) -> ForgetReport:
    email = email.strip()
    report = ForgetReport()
    cutoff = timezone.now() - timedelta(days=settings.CUSTOMER_DATA_LEGAL_RETENTION_DAYS)
    with transaction.atomic():
        orders = Order.objects.filter(email__iexact=email).annotate(in_motion=Exists(
            Order.objects.filter(pk=OuterRef("pk")).filter(_in_motion()))).select_for_update(of=("self",))
        erasable = []
        for order in orders.order_by("created_at"):
            if order.in_motion:
                report.kept_in_motion.append(order.number)
            elif order.created_at >= cutoff:
                report.kept_by_law.append(order.number)
            else:
                erasable.append(order.pk)
                report.erased.append(order.number)
        messages = Notification.objects.filter(Q(order_id__in=erasable) | Q(order__isnull=True, to__iexact=email))
        report.messages = messages.count()
        if dry_run:
            transaction.set_rollback(True)
            return report
        Order.objects.filter(pk__in=erasable).update(
            email=erased_email(email), full_name=ERASED, address_line1=ERASED, address_line2="", city=ERASED,
            postal_code="", updated_at=timezone.now())
        messages.update(to=erased_email(email), context={}, subject="")
    return report

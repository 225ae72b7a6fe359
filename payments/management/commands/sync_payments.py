import uuid

from django.core.management.base import BaseCommand, CommandError

from payments.models import OPEN_STATES, Payment
from payments.sweeps import sync_due_payments, sync_one_payment


class Command(BaseCommand):
    help = ("Ask the PSP where open payments stand and apply the answers, as the worker does every minute. "
            "Give exactly one of --payment ID (check that payment now, whatever its schedule) or --due (every "
            "payment whose next check is due, then stop).")

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--payment", metavar="ID", help="the payment's id (a UUID, as shown in the admin)")
        which.add_argument("--due", action="store_true", help="every open payment whose next check is due")

    def handle(self, *args, payment=None, due=False, **options) -> None:
        if due:
            # No time budget here: an operator waits for the whole backlog.
            report = sync_due_payments(budget_seconds=float("inf"))
            self.stdout.write(str(report))
            return
        try:
            payment_id = uuid.UUID(payment)
        except ValueError:
            raise CommandError(f"--payment must be a payment id (a UUID such as "
                               f"3f2b1c9e-8d4a-4b6f-9e1d-2a7c5b8e0f13); got {payment!r}.") from None
        before = Payment.objects.filter(pk=payment_id).values_list("state", flat=True).first()
        if before is None:
            raise CommandError(f"No payment has the id {payment_id}.")
        if before not in OPEN_STATES:
            self.stdout.write(f"Payment {payment_id} is {before}, a final state; nothing to ask the PSP.")
            return
        result = sync_one_payment(payment_id=payment_id)
        moved = f"{before} -> {result.state}" if result.state != before else f"still {result.state}"
        next_check = f"; next check at {result.next_check_at:%Y-%m-%d %H:%M:%S %Z}" if result.next_check_at else ""
        self.stdout.write(f"Payment {payment_id} (order {result.order.number}): {moved}{next_check}.")

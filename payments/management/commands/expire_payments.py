from django.core.management.base import BaseCommand

from payments.sweeps import expire_overdue


class Command(BaseCommand):
    help = ("Expire the open payments past their deadline (PAYMENT_DEADLINE_MINUTES), as the worker does every "
            "minute: each is cancelled at the PSP first and expires, with its order and reserved stock, only "
            "when the PSP confirms nothing was taken; one the PSP captured at the last second becomes captured. "
            "Orders awaiting payment that nobody has tried to pay for as long expire too.")

    def handle(self, *args, **options) -> None:
        report = expire_overdue(budget_seconds=float("inf"))
        self.stdout.write(str(report))

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from payments.selectors import stuck_payments


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours:02d}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m"


class Command(BaseCommand):
    help = ("List the payments still open (created, pending, unknown or authorized) after "
            "PAYMENT_ALERT_AFTER_MINUTES, as a table. Exits 1 when there are any and 0 when there are none, "
            "so cron or a monitor can call it.")

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        rows = [(str(p.pk), p.order.number, p.state, _age((now - p.created_at).total_seconds()),
                 p.psp_reference or "-", p.created_at.strftime("%Y-%m-%d %H:%M"), "yes" if p.alerted_at else "no")
                for p in stuck_payments(now=now)]
        minutes = settings.PAYMENT_ALERT_AFTER_MINUTES
        if not rows:
            self.stdout.write(f"No payment has been open for more than {minutes} minutes.")
            return
        header = ("payment", "order", "state", "age", "PSP reference", "created (UTC)", "alerted")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *rows]:
            self.stdout.write("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)))
        self.stderr.write(f"{len(rows)} payment(s) open for more than {minutes} minutes: check each with the PSP "
                          "in the admin and resolve it.")
        raise SystemExit(1)

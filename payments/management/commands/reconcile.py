from datetime import UTC, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from payments.gateways import GATEWAY_NAMES
from payments.reconcile import reconcile

PROGRESS_EVERY = 1000


def _moment(value: str, name: str) -> datetime:
    """An ISO date (midnight UTC) or date-time; without an offset it is taken as UTC."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--{name} must be an ISO date or date-time, such as 2026-11-23 or "
                           f"2026-11-23T06:00:00+00:00; got {value!r}.")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = ("Compare the PSP's transactions with our payments and refunds for a window [--since, --until) and "
            "record every mismatch as a Discrepancy for staff (captured at the PSP only, captured here only, "
            "amount or currency differs, double capture, unknown reference, refunds differ). Open payments "
            "the PSP has settled are synced instead. Running it again adds no duplicates. Dates without a "
            "time mean midnight UTC; times without an offset are UTC. By default the last 24 hours.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="start of the window, e.g. 2026-11-23 (default: 24 hours before --until)")
        parser.add_argument("--until", help="end of the window, exclusive, e.g. 2026-11-24 (default: now)")
        parser.add_argument("--gateway", choices=GATEWAY_NAMES, help="default: settings.PAYMENT_GATEWAY")

    def handle(self, *args, since=None, until=None, gateway=None, **options) -> None:
        now = timezone.now()
        until = _moment(until, "until") if until else now
        since = _moment(since, "since") if since else until - timedelta(hours=24)
        if since >= until:
            raise CommandError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()}).")
        if since > now:
            raise CommandError(f"--since ({since.isoformat()}) is in the future; there is nothing to reconcile yet.")
        self.stdout.write(f"Reconciling {since.isoformat()} .. {until.isoformat()} with the PSP ...")
        shown = 0

        def progress(count: int) -> None:
            nonlocal shown
            if count - shown >= PROGRESS_EVERY:
                shown = count
                self.stdout.write(f"  {count} PSP transactions checked")

        try:
            report = reconcile(since=since, until=until, gateway_name=gateway, progress=progress)
        except ConnectionError as exc:
            raise CommandError(f"Could not read the PSP's transactions: {exc}. Nothing was lost; run it again "
                               "when the PSP answers.") from None
        self.stdout.write(str(report))
        if report.new:
            self.stdout.write(self.style.WARNING(f"{report.new} new discrepancy(ies): see Discrepancies in the admin."))

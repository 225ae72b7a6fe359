from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from payments.gateways import GATEWAY_NAMES
from payments.ledger import audit_ledger


def _when(value: str, name: str):
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--{name} must be an ISO date-time such as 2026-11-23T00:00:00+00:00; got {value!r}.")
    if moment.tzinfo is None:
        raise CommandError(f"--{name} needs a time zone, such as +00:00 or Z; got {value!r}.")
    return moment


class Command(BaseCommand):
    help = ("Compare the PSP's ledger with ours and print every violated invariant: each PSP capture belongs "
            "to exactly one captured payment; no order is charged twice unless refunded and flagged; captured "
            "and refunded sums agree per currency; nothing is open past the alert threshold; every state change "
            "has its audit row and is a legal move. Exits 0 when all hold, 1 otherwise.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="start of the window (ISO date-time); default: the beginning")
        parser.add_argument("--until", help="end of the window (ISO date-time, exclusive); default: now")
        parser.add_argument("--gateway", choices=GATEWAY_NAMES, help="default: settings.PAYMENT_GATEWAY")

    def handle(self, *args, since=None, until=None, gateway=None, **options) -> None:
        since = _when(since, "since") if since else None
        until = _when(until, "until") if until else None
        if since and until and since >= until:
            raise CommandError("--since must be before --until.")
        try:
            report = audit_ledger(gateway_name=gateway, since=since, until=until)
        except ConnectionError as exc:
            raise CommandError(f"Could not read the PSP's ledger: {exc}") from None
        for violation in report.violations:
            self.stdout.write(str(violation))
        summary = (f"{report.psp_transactions} PSP transactions ({report.psp_captures} captured), "
                   f"{report.payments_checked} payments checked, {len(report.violations)} violation(s).")
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Ledger OK: {summary}"))
            return
        self.stderr.write(self.style.ERROR(f"Ledger NOT OK: {summary}"))
        raise SystemExit(1)

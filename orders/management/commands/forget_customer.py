from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from orders.privacy import forget_customer


class Command(BaseCommand):
    help = ("Erase a customer's name, address and e-mail from their settled orders older than "
            "CUSTOMER_DATA_LEGAL_RETENTION_DAYS, and from the e-mail sent to them; keep the money records "
            "(amounts, payments, refunds, audit trails). Orders still in motion are kept and listed.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("email", help="the customer's e-mail address, as given at checkout (any case)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be erased; change nothing")

    def handle(self, *args, email: str, dry_run: bool = False, **options) -> None:
        try:
            validate_email(email.strip())
        except ValidationError:
            raise CommandError(f"{email!r} is not an e-mail address.") from None
        report = forget_customer(email=email, dry_run=dry_run)
        verb = "Would erase" if dry_run else "Erased"
        self.stdout.write(f"{verb} the personal data of {len(report.erased)} order(s)"
                          f"{': ' + ', '.join(report.erased) if report.erased else ''} "
                          f"and {report.messages} e-mail record(s).")
        if report.kept_in_motion:
            self.stdout.write(f"Kept, still in motion (awaiting payment, an open payment, refund or discrepancy): "
                              f"{', '.join(report.kept_in_motion)}. Run this again once they settle.")
        if report.kept_by_law:
            self.stdout.write(f"Kept, younger than the legal retention of "
                              f"{settings.CUSTOMER_DATA_LEGAL_RETENTION_DAYS} days: {', '.join(report.kept_by_law)}.")
        if not (report.erased or report.kept_in_motion or report.kept_by_law):
            self.stdout.write("No order has that e-mail address.")

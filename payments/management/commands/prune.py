from django.core.management.base import BaseCommand, CommandError

from payments.retention import prune


class Command(BaseCommand):
    help = ("Delete old PSP call logs, applied webhook events, webhook events for unknown payments, worker task "
            "results, sent customer e-mail and expired sessions, after the RETENTION_* days (README "
            "'Configuration'). Never anything tied to an open payment, an open discrepancy or a pending refund, "
            "and never the money records. --dry-run counts without deleting.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--batch-size", type=int, default=1000, help="rows deleted per transaction (1000)")

    def handle(self, *args, dry_run=False, batch_size=1000, verbosity=1, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        progress = self.stdout.write if verbosity >= 2 else None
        results = prune(dry_run=dry_run, batch_size=batch_size, progress=progress)
        verb = "would delete" if dry_run else "deleted"
        for result in results:
            kept = "expired" if result.name == "expired sessions" else f"older than {result.days} days"
            self.stdout.write(f"{result.name} ({kept}): {verb} {result.deleted}")
        self.stdout.write(f"In all: {verb} {sum(r.deleted for r in results)} row(s).")

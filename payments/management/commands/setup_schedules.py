from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    minutes: int | None  # every N minutes; None for a daily schedule
    daily_at_hour_utc: int | None = None

    def first_run(self, now: datetime) -> datetime:
        if self.daily_at_hour_utc is None:
            return now
        now = now.astimezone(UTC)
        first = now.replace(hour=self.daily_at_hour_utc, minute=0, second=0, microsecond=0)
        return first if first > now else first + timedelta(days=1)

    def fields(self) -> dict:
        if self.minutes is None:
            return {"func": self.func, "schedule_type": Schedule.DAILY, "minutes": None, "repeats": -1}
        return {"func": self.func, "schedule_type": Schedule.MINUTES, "minutes": self.minutes, "repeats": -1}


# The worker's schedules (docs/worker.md). Names identify the rows: renaming one
# leaves the old row behind, so delete it in the admin.
SCHEDULES = (
    ScheduleSpec("payments: sync due payments", "payments.tasks.sync_payments", minutes=1),
    ScheduleSpec("payments: expire overdue payments", "payments.tasks.expire_payments", minutes=1),
    ScheduleSpec("payments: alert on stuck payments", "payments.tasks.alert_stuck_payments", minutes=5),
    ScheduleSpec("payments: retry failed webhooks", "payments.tasks.retry_webhooks", minutes=1),
    ScheduleSpec("payments: retry pending refunds", "payments.tasks.retry_refunds", minutes=1),
    ScheduleSpec("notifications: send customer e-mail", "notifications.tasks.send_notifications", minutes=1),
    ScheduleSpec("payments: reconcile with the PSP", "payments.tasks.reconcile_recent", minutes=None,
                 daily_at_hour_utc=2),
    ScheduleSpec("retention: prune old rows", "payments.tasks.prune_old_rows", minutes=None, daily_at_hour_utc=3),
)


class Command(BaseCommand):
    help = ("Create or update the background worker's django-q2 schedules (sync, expire, alert, webhook and "
            "refund retries and customer e-mail every minute or five, reconcile daily at 02:00 UTC, prune daily at 03:00 UTC). Safe to run again: each "
            "schedule stays one row, and the next run time of an existing schedule is kept.")

    def handle(self, *args, verbosity=1, **options) -> None:
        now = timezone.now()
        verbs = []
        with transaction.atomic():
            for spec in SCHEDULES:
                rows = list(Schedule.objects.select_for_update().filter(name=spec.name).order_by("pk"))
                if rows:
                    schedule, extra = rows[0], rows[1:]
                    for duplicate in extra:  # left by an older, non-idempotent setup
                        duplicate.delete()
                    changed = {k: v for k, v in spec.fields().items() if getattr(schedule, k) != v}
                    for key, value in changed.items():
                        setattr(schedule, key, value)
                    if schedule.next_run is None:
                        schedule.next_run, changed["next_run"] = spec.first_run(now), True
                    if changed:
                        schedule.save()
                    verb = "updated" if changed else "unchanged"
                else:
                    Schedule.objects.create(name=spec.name, next_run=spec.first_run(now), **spec.fields())
                    verb = "created"
                verbs.append(verb)
                if verbosity >= 2:
                    self.stdout.write(f"{verb:>9}  {spec.name}  ({spec.func})")
        if verbosity >= 1:
            counts = ", ".join(f"{verbs.count(v)} {v}" for v in ("created", "updated", "unchanged") if v in verbs)
            self.stdout.write(f"Worker schedules: {counts}.")

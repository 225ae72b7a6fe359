"""django-q2 task functions of the customer outbox (schedules: payments' setup_schedules)."""

from __future__ import annotations


def send_notifications() -> str:
    """Every minute: first write the "still confirming" / "waiting for you" notices, then send what is due."""
    from notifications.outbox import notice_slow_payments
    from notifications.sender import send_due_notifications

    noticed = notice_slow_payments()
    return f"{noticed} slow payment notice(s) written; {send_due_notifications()}"

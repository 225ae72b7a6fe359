from django.core import mail

from notifications.models import Notification
from notifications.sender import send_due_notifications


def kinds(order=None) -> list[str]:
    rows = Notification.objects.all() if order is None else Notification.objects.filter(order=order)
    return sorted(rows.values_list("kind", flat=True))


def send_all() -> list:
    """Run the sender once and return the mails it sent."""
    before = len(mail.outbox)
    send_due_notifications(budget_seconds=30)
    return mail.outbox[before:]


def body_of(message) -> str:
    """Plain text and HTML of a sent message."""
    return message.body + "".join(content for content, _ in getattr(message, "alternatives", []))

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Customer e-mail"

    def ready(self) -> None:
        from notifications import outbox  # noqa: F401 - connects the transition receivers

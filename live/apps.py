from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live payment status"

    def ready(self) -> None:
        from live import publish  # noqa: F401 - connects the after-commit publisher

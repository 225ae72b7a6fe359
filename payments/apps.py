from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Our tasks run in the django-q2 cluster: keep it alive when a worker is killed.
        from config.qcluster_safety import install

        install()

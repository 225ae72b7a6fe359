from django.contrib.admin.apps import AdminConfig


class ReckonAdminConfig(AdminConfig):
    """Django's admin with the support console's site (config/staff_auth.py): a second factor required."""

    default_site = "config.staff_auth.ReckonAdminSite"

    def ready(self) -> None:
        super().ready()
        from django.contrib import admin
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        for model in (TOTPDevice, StaticDevice):  # their change pages show the secret key
            if admin.site.is_registered(model):
                admin.site.unregister(model)

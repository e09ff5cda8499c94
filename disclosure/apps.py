from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django_otp.plugins.otp_totp import apps as otp_totp_apps


class DisclosureConfig(AppConfig):
    default = True
    name = "disclosure"
    verbose_name = "Vulnerability disclosure"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from disclosure import checks  # noqa: F401  (registers the system checks)
        from disclosure.inbound import checks as inbound_checks  # noqa: F401  (registers the inbound checks)
        from disclosure.inbound import webhooks  # noqa: F401  (connects the anymail inbound receiver)
        post_migrate.connect(prepare_database, sender=self)


def prepare_database(**kwargs):
    """After ``migrate``: the database cache table (when used) and the queue's schedule."""
    from django.core.management import call_command

    from disclosure.tasks import ensure_schedules

    call_command("createcachetable", database=kwargs.get("using", "default"), verbosity=0)
    ensure_schedules()


class TwoFactorDevicesConfig(otp_totp_apps.DefaultConfig):
    """django-otp's TOTP devices (settings.INSTALLED_APPS), under a readable name in the
    admin instead of its raw label "otp_totp"."""

    default = False  # not a candidate for the "disclosure" app itself
    verbose_name = "Two-factor login"

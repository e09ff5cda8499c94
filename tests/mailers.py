"""Stand-ins for the mail provider, which is outside our walls."""

from smtplib import SMTPServerDisconnected

from django.core.mail.backends.base import BaseEmailBackend


class ProviderDown(BaseEmailBackend):
    """A mail provider that refuses every message, as an outage would."""

    def send_messages(self, email_messages):
        raise SMTPServerDisconnected("Connection unexpectedly closed: provider down")


DOWN = {"default": {"BACKEND": "tests.mailers.ProviderDown"}}
WORKING = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

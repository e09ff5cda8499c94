"""System checks for inbound mail."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_inbound(app_configs, **kwargs):
    from disclosure.inbound import imap

    problems = []
    try:
        box = imap.mailbox()
    except Exception as exc:  # noqa: BLE001
        return [Error(str(exc), id="disclosure.E020")]
    if box is not None:
        if not settings.INBOUND_IMAP_PASSWORD and not settings.INBOUND_IMAP_OAUTH2_TOKEN_FILE:
            problems.append(Error("INBOUND_IMAP_URL is set without INBOUND_IMAP_PASSWORD(_FILE) or "
                                  "INBOUND_IMAP_OAUTH2_TOKEN_FILE.", id="disclosure.E021"))
        if not box.tls and box.host not in ("127.0.0.1", "localhost", "::1") and not settings.DEBUG:
            problems.append(Error("INBOUND_IMAP_URL uses imap:// (no TLS) to another host: use imaps://.",
                                  id="disclosure.E022"))
    if settings.MAILER not in ("console", "file", "locmem", "smtp") and not settings.ANYMAIL.get("WEBHOOK_SECRET") \
            and not settings.DEBUG:
        problems.append(Warning("ANYMAIL_WEBHOOK_SECRET is not set: inbound mail posted to /anymail/<esp>/inbound/ "
                                "is ignored.", hint="Set it to user:password and use it in the provider's "
                                "inbound URL.", id="disclosure.W010"))
    return problems

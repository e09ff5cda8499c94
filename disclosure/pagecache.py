"""The blank report form, rendered once per process.

Rendering a form with a dozen fields costs several milliseconds of CPU per request. The
blank form is the same for everyone except three values: the CSRF token, the one-time
submission nonce and the signed time the form was shown. The page is rendered once with
placeholders for those and each request substitutes fresh values, so it is as cheap as a
small template. Anything that would make the page differ per visitor (flash messages)
bypasses the cache.
"""

from functools import lru_cache

from django.conf import settings
from django.contrib.messages import get_messages
from django.core import signing
from django.middleware.csrf import get_token
from django.template.loader import render_to_string

from disclosure.context_processors import programme

CSRF, NONCE, SHOWN = "__CSRF_PLACEHOLDER__", "__NONCE_PLACEHOLDER__", "__SHOWN_PLACEHOLDER__"


@lru_cache(maxsize=8)
def _blank_form_page(_settings_key) -> str:
    from disclosure.forms import ReportForm

    form = ReportForm(initial={"submission_id": NONCE, "shown_at": SHOWN})
    return render_to_string("disclosure/report_form.html", {**programme(None), "form": form, "csrf_token": CSRF})


def _settings_key():
    """Everything the blank page shows that can change while the process runs."""
    from disclosure.models import Programme

    return (Programme.public_contact(), settings.TEAM_KEY_FINGERPRINT, settings.ORGANISATION_NAME,
            settings.SECURITY_TEAM_EMAIL, settings.SLA_ACKNOWLEDGE_DAYS, settings.SLA_ASSESS_DAYS,
            settings.MAX_ATTACHMENTS, settings.STATIC_URL, settings.TIME_ZONE)


def blank_report_form(request) -> str | None:
    """The page for a GET of the form, or None when it must be rendered normally."""
    if len(get_messages(request)):
        return None
    from disclosure.forms import SHOWN_AT_SALT, new_submission_id

    return (_blank_form_page(_settings_key())
            .replace(CSRF, get_token(request))
            .replace(NONCE, new_submission_id())
            .replace(SHOWN, signing.TimestampSigner(salt=SHOWN_AT_SALT).sign("report-form")))

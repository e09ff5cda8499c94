"""Pages rendered once and reused, with per-request values substituted.

Rendering a template with forms costs several milliseconds of CPU per request, ten times
what the rest of a request costs. Two pages are read far more often than they change:

- The blank report form is the same for everyone except three values: the CSRF token,
  the one-time submission nonce and the signed time the form was shown.
- A report's status page changes only when the report changes (a save moves
  ``revision`` and ``updated_at``), a public event is added, or a deadline passes. It is
  rendered once per such version, with placeholders for the CSRF token and the status
  token (a report can have several live links), and kept in this process's memory only,
  like decrypted values (see disclosure.sealed), because it holds the reporter's
  decrypted text: one version per report, dropped by the first status page view after
  ``STATUS_PAGE_SECONDS``.

Anything that would make a page differ per visitor (flash messages, a form sent back with
errors) bypasses the cache.
"""

import secrets
import threading
import time
from collections import OrderedDict
from functools import lru_cache

from django.conf import settings
from django.contrib.messages import get_messages
from django.core import signing
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import timezone

from disclosure.context_processors import programme

# Random per process, so that no text a reporter writes can be mistaken for a placeholder.
CSRF, NONCE, SHOWN, TOKEN = (f"{name}{secrets.token_hex(16)}" for name in ("csrf", "nonce", "shown", "token"))


def _settings_key():
    """Everything the public pages show that can change while the process runs."""
    from disclosure.models import Programme

    return (Programme.public_contact(), settings.TEAM_KEY_FINGERPRINT, settings.ORGANISATION_NAME,
            settings.SECURITY_TEAM_EMAIL, settings.SLA_ACKNOWLEDGE_DAYS, settings.SLA_ASSESS_DAYS,
            settings.MAX_ATTACHMENTS, settings.STATIC_URL, settings.TIME_ZONE)


# --- The blank report form -----------------------------------------------------------------
@lru_cache(maxsize=8)
def _blank_form_page(_settings_key) -> str:
    from disclosure.forms import ReportForm

    form = ReportForm(initial={"submission_id": NONCE, "shown_at": SHOWN})
    return render_to_string("disclosure/report_form.html", {**programme(None), "form": form, "csrf_token": CSRF})


def blank_report_form(request) -> str | None:
    """The page for a GET of the form, or None when it must be rendered normally."""
    if len(get_messages(request)):
        return None
    from disclosure.forms import SHOWN_AT_SALT, new_submission_id

    return (_blank_form_page(_settings_key())
            .replace(CSRF, get_token(request))
            .replace(NONCE, new_submission_id())
            .replace(SHOWN, signing.TimestampSigner(salt=SHOWN_AT_SALT).sign("report-form")))


# --- Status pages ----------------------------------------------------------------------
STATUS_PAGES = 256
STATUS_PAGE_SECONDS = 600
SEALED_NOTICE = 'class="sealed-notice"'  # what disclosure.sealed shows for text it could not decrypt
_status_pages: OrderedDict[tuple, tuple[str, float]] = OrderedDict()
_status_lock = threading.Lock()


def status_context(report, token, form, *, now=None) -> dict:
    """What the status page template needs (shared by the cached and the normal render)."""
    return {
        "report": report,
        "events": report.public_events(),
        "attachments": report.attachments.filter(message__isnull=True),
        "form": form,
        "token": token,
        "now": now or timezone.now(),
    }


def status_page(request, token) -> str | None:
    """The status page for a GET by an active link, or None when it must be rendered
    normally (or the link opens nothing)."""
    from disclosure.forms import FollowUpForm
    from disclosure.models import Report, StatusLink

    if len(get_messages(request)):
        return None
    now = timezone.now()
    version = StatusLink.page_version(token, now)
    if version is None:
        return None
    key = (*version, _settings_key())
    clock = time.monotonic()
    _forget_expired(clock)
    with _status_lock:
        hit = _status_pages.get(key)
        if hit and clock - hit[1] < STATUS_PAGE_SECONDS:
            _status_pages.move_to_end(key)
            page = hit[0]
        else:
            page = None
    if page is None:
        report = Report.objects.get(pk=version[0])
        context = {**programme(None), **status_context(report, TOKEN, FollowUpForm(), now=now), "csrf_token": CSRF}
        page = render_to_string("disclosure/status.html", context)
        _keep(key, page, clock)
    return page.replace(CSRF, get_token(request)).replace(TOKEN, token)


_last_sweep = [0.0]


def _drop(clock: float, report_id=None) -> None:
    """Forget expired pages, and every page of ``report_id``; call holding ``_status_lock``."""
    for old_key, (_, kept_at) in list(_status_pages.items()):
        if old_key[0] == report_id or clock - kept_at >= STATUS_PAGE_SECONDS:
            del _status_pages[old_key]


def _forget_expired(clock: float) -> None:
    """Drop expired pages (looked at most every half minute, on any status page view)."""
    if clock - _last_sweep[0] < 30:
        return
    with _status_lock:
        _last_sweep[0] = clock
        _drop(clock)


def _keep(key: tuple, page: str, clock: float) -> None:
    """Remember a page; forget the report's earlier versions and every expired page."""
    from disclosure import pgp

    if SEALED_NOTICE in page and pgp.can_decrypt():
        return  # decryption failed for now (gpg busy or broken): do not keep that
    with _status_lock:
        _drop(clock, report_id=key[0])
        _status_pages[key] = (page, clock)
        while len(_status_pages) > STATUS_PAGES:
            _status_pages.popitem(last=False)


def forget() -> None:
    """Drop every cached page (tests, and after changing the programme's settings)."""
    _blank_form_page.cache_clear()
    with _status_lock:
        _status_pages.clear()

"""/healthz for uptime monitors: is the portal able to do its job? No secrets in it.

Always a JSON answer: 200 when every component works, 503 naming the failing ones
(``failing``, with a sentence each in ``problems``), never an error page. What needs
attention without failing (a credential past its rotation age) is a 200 with status
``warning`` and a sentence each in ``warnings``. Each check is
guarded, so one broken component (the database, Redis, gpg) cannot hide the others. The
fields are described in the README (Operations).
"""

import logging
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from django_q.brokers import get_broker
from django_q.models import Schedule

from disclosure import backup_targets, pgp, ratelimits, rotation, storage, tasks
from disclosure.inbound import imap
from disclosure.models import OutboundEmail, Programme
from disclosure.webhooks import WebhookDelivery

log = logging.getLogger(__name__)

SWEEP_STALE_SECONDS = 600
# A rate-limit store failure seen by this process within this long makes the portal "degraded".
RATE_LIMIT_STORE_RECENT_SECONDS = 300
PROBE_SECONDS = 60
STORAGE_FAILURE_SECONDS = 300
STORAGE_FAILURE_KEY = "disclosure:health:storage-failure"
# A daily backup older than this (a day and two hours' grace) makes the portal "degraded".
BACKUP_STALE_HOURS = 26


# --- What requests report: a submission or message that could not be stored -----------------
_storage_failure: dict = {}
_lock = threading.Lock()


def storage_failed(what: str, error: BaseException, now=None) -> None:
    """Record that storing ``what`` failed: logged at ERROR, and shown by /healthz as a
    problem for ``STORAGE_FAILURE_SECONDS``. Kept in this process, and in the shared cache
    when it works, so a monitor asking another web process sees it too."""
    now = now or timezone.now()
    log.error("Storing %s failed; nothing was saved and the sender was asked to try again: %s: %s",
              what, type(error).__name__, error, exc_info=error)
    record = {"at": now.isoformat(), "what": what, "error": type(error).__name__}
    with _lock:
        _storage_failure.clear()
        _storage_failure.update(record)
    try:
        cache.set(STORAGE_FAILURE_KEY, record, STORAGE_FAILURE_SECONDS)
    except Exception:  # noqa: BLE001, S110 - the cache may be what is down; this process still knows
        pass


def _recent_storage_failure(now, cached) -> dict | None:
    with _lock:
        records = [dict(_storage_failure)] if _storage_failure else []
    if isinstance(cached, dict) and "at" in cached:
        records.append(cached)
    recent = [r for r in records if (now - datetime.fromisoformat(r["at"])).total_seconds() < STORAGE_FAILURE_SECONDS]
    return max(recent, key=lambda r: r["at"]) if recent else None


# --- Probes of gpg and file storage: at most once a minute per process ---------------------
_probes: dict = {}


def _probe_gpg() -> tuple[str, str | None]:
    """``(state, problem)``: the gpg binary runs and, with a team key, encrypts to it."""
    fingerprint = pgp.team_fingerprint()
    try:
        gpg = pgp.team_gpg()
        if not fingerprint:
            gpg.list_keys()  # the binary runs (reporters' keys and their email still need it)
            return "no team key configured", None
        result = gpg.encrypt(b"disclosure health probe", [fingerprint], armor=False, always_trust=True)
    except Exception as error:  # noqa: BLE001 - gone, unreadable keyring, ...: reported, not raised
        return "unusable", f"gpg cannot run: {type(error).__name__}: {error}"
    if not result.ok:
        return "unusable", f"gpg cannot encrypt to the team key {fingerprint}: {result.status or 'no output'}"
    return "ok", None


def _probed(name: str, config: tuple, probe) -> tuple[str, str | None]:
    """``probe()`` (gpg, file storage: each a process start or a network round trip),
    remembered per process for ``PROBE_SECONDS`` and for as long as ``config`` (what the
    answer depends on) is unchanged, so /healthz costs no probe per request."""
    key = (name, config)
    now = time.monotonic()
    with _lock:
        hit = _probes.get(key)
    if hit and now - hit[0] < PROBE_SECONDS:
        return hit[1]
    state = probe()
    with _lock:
        for old in [k for k in _probes if k[0] == name]:
            del _probes[old]
        _probes[key] = (now, state)
    return state


def _gpg_state() -> tuple[str, str | None]:
    return _probed("gpg", (str(settings.GNUPG_HOME), settings.TEAM_KEY_FINGERPRINT), _probe_gpg)


def _file_storage_state() -> tuple[str, str | None]:
    config = (settings.STORAGES["default"]["BACKEND"], settings.S3_BUCKET, str(settings.MEDIA_ROOT))
    return _probed("file_storage", config, storage.probe)


def _newest_backup() -> tuple[datetime | None, bool]:
    """``(when, listed)``: the newest complete archive where backups go. A listing of the
    bucket (a request to the store) is remembered like the probes; a folder is read each time."""
    if backup_targets.in_bucket():
        config = (settings.BACKUP_TARGET, settings.S3_BUCKET, settings.BACKUP_S3_PREFIX)
        return _probed("backup", config, lambda: _guarded(backup_targets.newest_backup_at))
    return _guarded(backup_targets.newest_backup_at)


def forget() -> None:
    """Drop what this process remembers (tests)."""
    with _lock:
        _probes.clear()
        _storage_failure.clear()


# --- The other components ---------------------------------------------------------------------
def _queue_backlog() -> int | None:
    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broken broker is reported, not raised
        return None


def _first_backup_pending() -> bool:
    """The daily backup is scheduled and has never run (django-q2 records each run's task
    on the schedule): "no backup yet" then means "not yet", not "failing"."""
    return Schedule.objects.filter(Q(task__isnull=True) | Q(task=""), name=tasks.BACKUP_SCHEDULE).exists()


def _rate_limit_store(now) -> tuple[str, str | None]:
    """Probe the rate-limit store and say what this process saw of it: ``(state, failed
    at)``, "unreachable" while a failure is recent (requests are then let through
    unlimited, staff login aside)."""
    ratelimits.probe_store()
    last = ratelimits.store_failures()["last"]
    if last is not None and now.timestamp() - last < RATE_LIMIT_STORE_RECENT_SECONDS:
        return "unreachable", datetime.fromtimestamp(last, tz=UTC).isoformat()
    return "ok", None


def _guarded(read, default=None):
    """``(value, worked)``: ``read()``, or ``default`` when it raised."""
    try:
        return read(), True
    except Exception:  # noqa: BLE001 - reported by the caller, never raised
        log.warning("A /healthz check failed", exc_info=True)
        return default, False


def _database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


@require_safe
def healthz(request):
    try:
        body = _health(timezone.now())
    except Exception as error:  # noqa: BLE001 - a bug here must still answer the monitor in JSON
        log.exception("/healthz failed")
        body = {"status": "down", "failing": ["healthz"],
                "problems": [f"the health check itself failed ({type(error).__name__})"]}
    response = JsonResponse(body, status=503 if body.get("failing") else 200)
    response["Cache-Control"] = "no-store"
    return response


def _health(now) -> dict:
    failing, problems = [], []

    def fail(component, problem):
        failing.append(component)
        problems.append(problem)

    _, database_ok = _guarded(_database)
    if not database_ok:
        fail("database", "the database is unreachable")
    last, cache_ok = _guarded(lambda: cache.get_many(
        [tasks.LAST_SWEEP_KEY, tasks.WORKER_STARTED_KEY, STORAGE_FAILURE_KEY]), {})
    if not cache_ok:
        fail("cache", "the cache is unreachable")
    backlog = _queue_backlog()
    if backlog is None:
        fail("broker", "the queue broker is unreachable")
    rate_limit_store, rate_limit_failed_at = _rate_limit_store(now)
    if rate_limit_failed_at:
        fail("rate_limit_store", "the rate-limit store is unreachable: only staff login is limited (per process)")
    gpg, gpg_problem = _gpg_state()
    if gpg_problem:
        fail("gpg", f"{gpg_problem}: reports cannot be stored encrypted and email cannot be signed")

    swept = last.get(tasks.LAST_SWEEP_KEY)
    seconds = _guarded(lambda: int((now - datetime.fromisoformat(swept)).total_seconds()))[0] if swept else None
    started = last.get(tasks.WORKER_STARTED_KEY)
    starting = seconds is None and started and _guarded(
        lambda: (now - datetime.fromisoformat(started)).total_seconds() < SWEEP_STALE_SECONDS)[0]
    if cache_ok and not starting and (seconds is None or seconds > SWEEP_STALE_SECONDS):
        fail("worker", "the queue worker has not swept recently")

    file_storage, file_storage_problem = _file_storage_state()
    if file_storage_problem:
        fail("file_storage", f"{file_storage_problem}: attachments cannot be stored or downloaded")

    storage_failure = _guarded(lambda: _recent_storage_failure(now, last.get(STORAGE_FAILURE_KEY)))[0]
    if storage_failure:
        fail("storage", f"storing {storage_failure['what']} failed at {storage_failure['at']} "
                        f"({storage_failure['error']})")

    inbound = _guarded(lambda: imap.health(now))[0]  # None unless a mailbox is configured
    if inbound is not None:
        polled = inbound["last_poll_seconds_ago"]
        if polled is None or polled > SWEEP_STALE_SECONDS:
            fail("inbound_mail", "mail to the security address has not been read recently")

    failed_emails = failed_webhooks = key_days = securitytxt_days = None
    if database_ok:
        failed_emails = _guarded(OutboundEmail.objects.filter(state=OutboundEmail.State.FAILED).count)[0]
        failed_webhooks = _guarded(WebhookDelivery.objects.filter(state=WebhookDelivery.State.FAILED).count)[0]
        expires = _guarded(lambda: Programme.objects.filter(pk=1).values_list(
            "securitytxt_expires_at", flat=True).first())[0]
        securitytxt_days = (expires - now).days if expires else None
    if gpg == "ok":
        key = _guarded(pgp.team_key)[0]  # remembered until the keyring changes
        key_days = (key.expires - now).days if key is not None and key.expires else None
        if key is not None and key.expires_soon(now):
            fail("team_key", f"the team key expires in {key_days} days")

    # Credentials past their rotation age: a warning (200), never a failure.
    credentials = _guarded(lambda: rotation.ages(now))[0] if database_ok else None
    overdue = [age for age in credentials or [] if age.overdue]
    warnings = [f"{age.name} is {age.days} days old: rotate it (every {age.max_days} days)" for age in overdue]

    backup_hours = None
    newest, listed = _newest_backup()
    if _guarded(lambda: backup_targets.watched(newest), False)[0]:
        backup_hours = round((now - newest).total_seconds() / 3600, 1) if newest else None
        if not listed:
            fail("backup", f"the backups in {backup_targets.describe()} cannot be listed")
        elif backup_hours is None and _guarded(_first_backup_pending, False)[0]:
            pass  # a new installation: the first scheduled backup has not come round yet
        elif backup_hours is None or backup_hours > BACKUP_STALE_HOURS:
            fail("backup", "no backup has been made yet" if backup_hours is None else
                 f"the newest backup is {backup_hours:.0f} hours old")

    body = {
        "status": ("warning" if warnings else "ok") if not failing else ("down" if not database_ok else "degraded"),
        "database": "ok" if database_ok else "unreachable",
        "cache": "ok" if cache_ok else "unreachable",
        "queue_backlog": backlog,
        "rate_limit_store": rate_limit_store,
        "rate_limit_store_failed_at": rate_limit_failed_at,
        "gpg": gpg,
        "last_sweep_seconds_ago": seconds,
        "emails_failed": failed_emails,
        "webhooks_failed": failed_webhooks,
        "last_storage_failure": storage_failure["at"] if storage_failure else None,
        "file_storage": file_storage,
        "team_key_expires_in_days": key_days,
        "securitytxt_expires_in_days": securitytxt_days,
        "last_backup_hours_ago": backup_hours,
        "credential_age_days": {age.name: age.days for age in credentials} if credentials is not None else None,
        "rotation_overdue": [age.name for age in overdue],
    }
    if inbound is not None:
        body["inbound_mail"] = inbound
    if failing:
        body.update(failing=failing, problems=problems)
    if warnings:
        body["warnings"] = warnings
    return body

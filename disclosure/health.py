"""/healthz for uptime monitors: is the portal able to do its job? No secrets in it."""

from datetime import UTC, datetime

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

SWEEP_STALE_SECONDS = 600
KEY_CACHE_SECONDS = 300
# A rate-limit store failure seen by this process within this long makes the portal "degraded".
RATE_LIMIT_STORE_RECENT_SECONDS = 300


def _queue_backlog() -> int | None:
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broken broker is reported, not raised
        return None


def _cached(key: str, default):
    """A cache read that survives a cache it cannot reach (with Redis, the cache is also the
    rate-limit store, reported below)."""
    from disclosure.ratelimits import STORE_ERRORS

    try:
        return cache.get(key, default)
    except STORE_ERRORS:
        return default


def _key_days(now) -> int | None:
    from disclosure.ratelimits import STORE_ERRORS

    days = _cached("disclosure:health:key-days", "missing")
    if days == "missing":
        from disclosure import pgp

        key = pgp.team_key() if pgp.team_fingerprint() else None
        days = (key.expires - now).days if key is not None and key.expires else None
        try:
            cache.set("disclosure:health:key-days", days, KEY_CACHE_SECONDS)
        except STORE_ERRORS:
            pass
    return days


def _rate_limit_store(body: dict, now) -> bool:
    """Probe the rate-limit store and report what this process saw of it; True while a
    failure is recent (requests are then let through unlimited, staff login aside)."""
    from disclosure import ratelimits

    ratelimits.probe_store()
    last = ratelimits.store_failures()["last"]
    recent = last is not None and now.timestamp() - last < RATE_LIMIT_STORE_RECENT_SECONDS
    body["rate_limit_store"] = "unreachable" if recent else "ok"
    body["rate_limit_store_failed_at"] = datetime.fromtimestamp(last, tz=UTC).isoformat() if recent else None
    return recent


@require_safe
def healthz(request):
    from disclosure import tasks
    from disclosure.models import OutboundEmail, Programme

    now = timezone.now()
    body = {"status": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "ok"
    except Exception:  # noqa: BLE001
        return JsonResponse({"status": "down", "database": "unreachable"}, status=503)
    body["queue_backlog"] = _queue_backlog()
    last = _cached(tasks.LAST_SWEEP_KEY, None)
    body["last_sweep_seconds_ago"] = int((now - datetime.fromisoformat(last)).total_seconds()) if last else None
    body["emails_failed"] = OutboundEmail.objects.filter(state=OutboundEmail.State.FAILED).count()
    body["team_key_expires_in_days"] = _key_days(now)
    expires = Programme.objects.filter(pk=1).values_list("securitytxt_expires_at", flat=True).first()
    body["securitytxt_expires_in_days"] = (expires - now).days if expires else None
    from disclosure.inbound import imap

    if (inbound := imap.health(now)) is not None:
        body["inbound_mail"] = inbound
    problems = []
    if _rate_limit_store(body, now):
        problems.append("the rate-limit store is unreachable: only staff login is limited (per process)")
    if body["last_sweep_seconds_ago"] is None or body["last_sweep_seconds_ago"] > SWEEP_STALE_SECONDS:
        problems.append("the queue worker has not swept recently")
    if body["queue_backlog"] is None:
        problems.append("the queue broker is unreachable")
    if body["team_key_expires_in_days"] is not None and body["team_key_expires_in_days"] < 14:
        problems.append("the team key expires soon")
    if problems:
        body.update(status="degraded", problems=problems)
    response = JsonResponse(body, status=503 if problems else 200)
    response["Cache-Control"] = "no-store"
    return response

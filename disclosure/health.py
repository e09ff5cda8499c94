"""/healthz for uptime monitors: is the portal able to do its job? No secrets in it."""

from datetime import datetime

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

SWEEP_STALE_SECONDS = 600
KEY_CACHE_SECONDS = 300


def _queue_backlog() -> int | None:
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broken broker is reported, not raised
        return None


def _key_days(now) -> int | None:
    days = cache.get("disclosure:health:key-days", "missing")
    if days == "missing":
        from disclosure import pgp

        key = pgp.team_key() if pgp.team_fingerprint() else None
        days = (key.expires - now).days if key is not None and key.expires else None
        cache.set("disclosure:health:key-days", days, KEY_CACHE_SECONDS)
    return days


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
    last = cache.get(tasks.LAST_SWEEP_KEY)
    body["last_sweep_seconds_ago"] = int((now - datetime.fromisoformat(last)).total_seconds()) if last else None
    body["emails_failed"] = OutboundEmail.objects.filter(state=OutboundEmail.State.FAILED).count()
    body["team_key_expires_in_days"] = _key_days(now)
    expires = Programme.objects.filter(pk=1).values_list("securitytxt_expires_at", flat=True).first()
    body["securitytxt_expires_in_days"] = (expires - now).days if expires else None
    problems = []
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

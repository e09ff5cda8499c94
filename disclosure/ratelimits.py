"""Rate limits (django-ratelimit) with a 429 answer and an honest client address.

Each limit is a group with a rate from the settings (``RATELIMIT_<GROUP>``). The counters
and block markers live in the one store named by ``RATELIMIT_USE_CACHE``: Redis with
``REDIS_URL``, otherwise a table in the database (``disclosure.ratelimit_store``). Either
way each count is a single atomic operation in that store, shared by every process, so a
burst from many workers at once cannot get past a limit. A blocked request raises
``Limited``; ``RateLimitedMiddleware`` turns it into a friendly 429 page with
``Retry-After``.

If the store cannot be reached, limits open rather than close: a researcher's report,
status page or message must still get through. ``check`` and ``refuse_if_blocked`` log a
warning, record the failure (``store_failures``, shown on /healthz) and let the request
pass; staff login alone is then counted in this process, at the same rate.
"""

import functools
import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import DatabaseError
from django.shortcuts import render
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The store answered without a count (see ``_usage``)."""


# What a store that cannot be reached raises: Redis (connection refused, timeouts, and the
# errors of a Redis that refuses writes), or the database holding the counter table.
STORE_ERRORS = (RedisError, DatabaseError, StoreUnavailable)

# Groups that stay limited while the store is unreachable: counted in this process alone.
IN_PROCESS_FALLBACK = frozenset({"login"})
_in_process = LocMemCache("disclosure-ratelimits-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})

_failures_lock = threading.Lock()
_failures = {"count": 0, "last": None}


class Limited(Ratelimited):
    def __init__(self, retry_after: int):
        super().__init__()
        self.retry_after = max(int(retry_after), 1)


def client_ip(group, request) -> str:
    """``REMOTE_ADDR``, unless ``TRUSTED_PROXY_COUNT`` proxies sit in front: then the address
    the outermost trusted proxy saw (X-Forwarded-For entries to its left are forgeable)."""
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR", "")


def _cache():
    """Where the counters and block markers live (django-ratelimit's own setting)."""
    return caches[settings.RATELIMIT_USE_CACHE]


def _blocked_key(group: str, request) -> str:
    return f"disclosure.blocked.{group}.{client_ip(group, request)}"


def _seconds(rate: str) -> tuple[int, int]:
    """``"10/15m"`` -> (10, 900): the count and the period in seconds."""
    count, period = rate.split("/")
    return int(count), int(period[:-1] or 1) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[-1]]


def _usage(request, group: str, methods):
    usage = get_usage(request, group=f"disclosure.{group}", key=client_ip, rate=settings.RATE_LIMITS[group],
                      method=list(methods), increment=True)
    if usage is not None and usage["limit"] == 0:
        # get_usage's answer when the store gave it no count (its incr raised ValueError,
        # or add hit a DNS error): "limit everyone". No rate of ours has a limit of 0.
        raise StoreUnavailable("the rate-limit store returned no count")
    return usage


def _usage_in_process(request, group: str, methods):
    """The count of this process alone, in fixed windows of the group's period."""
    if request.method not in methods or not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    limit, period = _seconds(settings.RATE_LIMITS[group])
    now = int(time.time())
    window_end = now - now % period + period
    key = f"{group}:{client_ip(group, request)}:{window_end}"
    _in_process.add(key, 0, period)
    try:
        count = _in_process.incr(key)
    except ValueError:  # culled in between
        count = 1
    return {"count": count, "limit": limit, "should_limit": count > limit, "time_left": window_end - now}


def _store_failed(group: str, error: Exception) -> None:
    with _failures_lock:
        _failures["count"] += 1
        _failures["last"] = time.time()
    log.warning("Rate-limit store unreachable (%s: %s); %s request let through%s", type(error).__name__, error,
                group, ", counted in this process" if group in IN_PROCESS_FALLBACK else "")


def store_failures() -> dict:
    """How many times this process found the store unreachable, and when last (epoch
    seconds, or None)."""
    with _failures_lock:
        return dict(_failures)


def forget() -> None:
    """Drop what this process remembers of the store: its failure record and the staff
    login counts kept here while the store was down (tests)."""
    with _failures_lock:
        _failures.update(count=0, last=None)
    _in_process.clear()


def probe_store() -> bool:
    """One read of the store (for /healthz); a failure is recorded like any other."""
    try:
        _cache().get("disclosure.probe")
    except STORE_ERRORS as error:
        _store_failed("health check", error)
        return False
    return True


def check(request, group: str, methods=("POST",)) -> None:
    """Count this request against ``group``; raise ``Limited`` once over the limit, and
    mark the client blocked until the window ends (see ``refuse_if_blocked``)."""
    try:
        usage = _usage(request, group, methods)
    except STORE_ERRORS as error:
        _store_failed(group, error)
        if group not in IN_PROCESS_FALLBACK:
            return
        usage = _usage_in_process(request, group, methods)
        if usage and usage["should_limit"]:
            raise Limited(usage["time_left"]) from None
        return
    if usage and usage["should_limit"]:
        retry_after = max(int(usage["time_left"]), 1)
        try:
            _cache().set(_blocked_key(group, request), int(time.time()) + retry_after, retry_after)
        except STORE_ERRORS as error:
            _store_failed(group, error)
        raise Limited(retry_after)


def delete_expired_counters(now=None) -> int:
    """Delete the counter table's rows whose time is up, in one DELETE; returns how many.
    (Redis expires its keys itself; the table is emptied even when Redis is in use, in
    case it held counters before.)"""
    from disclosure.ratelimit_store import delete_expired

    return delete_expired(now)


def refuse_if_blocked(request, group: str) -> None:
    """Raise ``Limited`` if this client went over ``group``'s limit in the current window,
    without counting this request (django-ratelimit's own check would write). One read of
    the store; if it cannot be reached, the request goes on."""
    try:
        until = _cache().get(_blocked_key(group, request))
    except STORE_ERRORS as error:
        _store_failed(group, error)
        return
    now = time.time()
    if until is not None and until > now:
        raise Limited(until - now)


def limit(group: str, methods=("POST",)):
    """View decorator: ``@limit("submit")`` counts POSTs from one client address."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            check(request, group, methods)
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


class RateLimitedMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Ratelimited):
            retry_after = getattr(exception, "retry_after", 60)
            response = render(request, "429.html", {"retry_after": retry_after}, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        return None

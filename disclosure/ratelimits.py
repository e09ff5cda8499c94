"""Rate limits (django-ratelimit) with a 429 answer and an honest client address.

Each limit is a group with a rate from the settings (``RATELIMIT_<GROUP>``). The counters
live in the cache named by ``RATELIMIT_USE_CACHE`` (Redis with ``REDIS_URL``; otherwise
files under ``DATA_DIR``, shared by all processes on the machine but not atomic, so a burst
can let a few extra requests through). A
blocked request raises ``Limited``; ``RateLimitedMiddleware`` turns it into a friendly
429 page with ``Retry-After``.
"""

import functools
import pickle
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.shortcuts import render
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited


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


def check(request, group: str, methods=("POST",)) -> None:
    """Count this request against ``group``; raise ``Limited`` once over the limit, and
    remember the block until the window ends (see ``refuse_if_blocked``)."""
    usage = get_usage(request, group=f"disclosure.{group}", key=client_ip, rate=settings.RATE_LIMITS[group],
                      method=list(methods), increment=True)
    if usage and usage["should_limit"]:
        retry_after = max(int(usage["time_left"]), 1)
        key, now = _blocked_key(group, request), time.time()
        _cache().set(key, now + retry_after, retry_after)
        _remember_block(key, now + retry_after, now)
        raise Limited(retry_after)


# What each process last read of the shared block markers: a block until it ends, "not
# blocked" for a second. A busy page then costs one shared-cache read per address per
# second rather than one per request; a client blocked by another process can still read
# a page it holds the link to for at most that second (its misses are refused at once).
_blocks: OrderedDict[str, tuple[float, float]] = OrderedDict()
_blocks_lock = threading.Lock()
BLOCK_MEMO_SECONDS, BLOCK_MEMO_SIZE = 1.0, 4096


def _remember_block(key: str, until: float, now: float) -> None:
    with _blocks_lock:
        _blocks[key] = (until, now)
        _blocks.move_to_end(key)
        while len(_blocks) > BLOCK_MEMO_SIZE:
            _blocks.popitem(last=False)


def delete_expired_counters() -> int:
    """Delete counter and block-marker files whose time is up; returns how many.

    Each window's counter has a key of its own, and Django's file cache deletes an
    expired file only when it is read again, which a past window's counter never is: left
    alone they pile up until the cache culls at random, live counters included. (Redis
    expires keys itself; the database cache deletes expired rows first when it culls.)
    Uses the file cache's own expiry check, so the file format stays Django's business.
    """
    store = _cache()
    if not isinstance(store, FileBasedCache):
        return 0
    removed = 0
    for path in store._list_cache_files():
        try:
            with open(path, "rb") as handle:
                removed += store._is_expired(handle)  # deletes the file when expired
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            continue
    return removed


def forget() -> None:
    """Drop this process's memo of block markers (tests, after clearing the cache)."""
    with _blocks_lock:
        _blocks.clear()


def refuse_if_blocked(request, group: str) -> None:
    """Raise ``Limited`` if this client went over ``group``'s limit in the current window,
    without counting this request (django-ratelimit's own check would write)."""
    key, now = _blocked_key(group, request), time.time()
    memo = _blocks.get(key)
    if memo is None or (memo[0] <= now and now - memo[1] >= BLOCK_MEMO_SECONDS):
        until = _cache().get(key) or 0.0
        _remember_block(key, until, now)
    else:
        until = memo[0]
    if until > now:
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

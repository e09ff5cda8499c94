"""Rate-limit counters in one database table: the store when ``REDIS_URL`` is not set.

``CounterTableCache`` is a Django cache backend over the ``RateLimitCounter`` table, for
SQLite (3.35 or later) and PostgreSQL alike. It is a counter store, not a general cache:
it holds integers only (django-ratelimit's counts, and our "blocked until" markers as an
epoch second) and raises ``TypeError`` for any other value. Each operation is one SQL
statement, so every process and every host using the database counts in the same rows,
and no two requests can read the same count:

- ``add`` is ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expires_at <= now``: it
  inserts the key, or takes over a row whose time is up, and its row count says whether it
  did either.
- ``incr`` is ``UPDATE ... SET value = value + delta WHERE key = ... AND expires_at > now
  RETURNING value``: the database adds in place under its row lock, and the counter keeps
  its window's expiry. A missing or expired key raises ``ValueError``, as in Django's caches.

Expired rows are deleted by the hourly housekeeping (``delete_expired``), in one DELETE.
Inside a transaction each statement runs in a savepoint, so one that fails (the rate
limits then let the request through, see ``disclosure.ratelimits``) leaves the caller's
transaction usable.
"""

from contextlib import nullcontext
from datetime import UTC, datetime

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.db import connections, models, router, transaction
from django.utils import timezone

# What "never expires" (a timeout of None) is stored as.
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


class RateLimitCounter(models.Model):
    """One counter or block marker of the rate limits (see ``CounterTableCache``)."""

    key = models.CharField(max_length=255, unique=True, help_text="The cache key, with its prefix and version.")
    value = models.BigIntegerField(help_text="A request count, or the epoch second a block ends.")
    expires_at = models.DateTimeField(db_index=True, help_text="When the row stops counting; deleted hourly after.")

    def __str__(self):
        return self.key


def _integer(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"The rate-limit counter store holds integers only, not {type(value).__name__}")
    return value


def _execute(template: str, params, *, fetch=False):
    """Run one statement on the counters' database, in a savepoint when inside a
    transaction; return its first row with ``fetch``, else its row count. ``template``
    names the table and columns {t}, {k} (key), {v} (value) and {e} (expires_at); every
    value is a parameter."""
    alias = router.db_for_write(RateLimitCounter)
    connection = connections[alias]
    meta, quote = RateLimitCounter._meta, connection.ops.quote_name
    sql = template.format(t=quote(meta.db_table), **{letter: quote(meta.get_field(name).column) for letter, name
                                                       in (("k", "key"), ("v", "value"), ("e", "expires_at"))})
    params = [connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p for p in params]
    with transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else cursor.rowcount


class CounterTableCache(BaseCache):
    def __init__(self, location, params):
        super().__init__(params)

    def _expiry(self, timeout) -> datetime:
        moment = self.get_backend_timeout(timeout)
        return FOREVER if moment is None else datetime.fromtimestamp(moment, tz=UTC)

    def validate_key(self, key):
        super().validate_key(key)
        if len(key) > RateLimitCounter._meta.get_field("key").max_length:
            raise ValueError(f"Rate-limit key longer than the table's column: {key!r}")

    # --- the cache API --------------------------------------------------------------
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key, value = self.make_and_validate_key(key, version), _integer(value)
        return _execute("INSERT INTO {t} ({k}, {v}, {e}) VALUES (%s, %s, %s) "
                        "ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}, {e} = EXCLUDED.{e} "
                        "WHERE {t}.{e} <= %s",
                        [key, value, self._expiry(timeout), timezone.now()]) > 0

    def incr(self, key, delta=1, version=None):
        key, delta = self.make_and_validate_key(key, version), _integer(delta)
        row = _execute("UPDATE {t} SET {v} = {v} + %s WHERE {k} = %s AND {e} > %s RETURNING {v}",
                       [delta, key, timezone.now()], fetch=True)
        if row is None:
            raise ValueError(f"Key '{key}' not found.")
        return row[0]

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version)
        row = _execute("SELECT {v} FROM {t} WHERE {k} = %s AND {e} > %s", [key, timezone.now()], fetch=True)
        return default if row is None else row[0]

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key, value = self.make_and_validate_key(key, version), _integer(value)
        _execute("INSERT INTO {t} ({k}, {v}, {e}) VALUES (%s, %s, %s) "
                 "ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}, {e} = EXCLUDED.{e}",
                 [key, value, self._expiry(timeout)])

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version)
        return _execute("UPDATE {t} SET {e} = %s WHERE {k} = %s AND {e} > %s",
                        [self._expiry(timeout), key, timezone.now()]) > 0

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version)
        return _execute("DELETE FROM {t} WHERE {k} = %s", [key]) > 0

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version)
        return _execute("SELECT 1 FROM {t} WHERE {k} = %s AND {e} > %s", [key, timezone.now()], fetch=True) is not None

    def clear(self):
        _execute("DELETE FROM {t}", [])


def delete_expired(now=None) -> int:
    """Delete every counter and block marker whose time is up, in one DELETE; returns how
    many. (Each window's counter has a key of its own, so a past window's row is never
    read or replaced again.)"""
    return _execute("DELETE FROM {t} WHERE {e} <= %s", [now or timezone.now()])

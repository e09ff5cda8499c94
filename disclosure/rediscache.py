"""Django's Redis cache backend, with one redis-py client per connection pool.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` for every operation. With
redis-py 8 that constructor fills a table of about 170 response callbacks, which cost
more than the round trip itself: a rate-limit count (add, then incr) took about 0.5 ms of
CPU. A client is only a thin, thread-safe wrapper around its pool, so this backend keeps
one per pool and is otherwise Django's own.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients.setdefault(pool, self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

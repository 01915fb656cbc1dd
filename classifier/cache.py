"""The caches that hold the counters: Redis, tolerant of Redis being down, and
the database cache with a counter two workers cannot both miss.

The cache holds only counters (uploads per user, failed sign-ins). If Redis
goes away, signing in and uploading must keep working: the counters are
skipped, with a warning in the log, until it is back. Throttling is briefly
off rather than the whole site down.
"""

import logging

from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, router, transaction

log = logging.getLogger(__name__)


class TolerantRedisCache(RedisCache):
    """Django's RedisCache; a failed call logs a warning and answers as a miss."""

    def _tolerate(self, call, fallback, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except self._lib.RedisError as exc:
            log.warning("cache unavailable (%s): throttling is off until it is back", exc)
            return fallback

    @property
    def _lib(self):
        return self._cache._lib

    def get(self, key, default=None, version=None):
        return self._tolerate(super().get, default, key, default, version)

    def get_many(self, keys, version=None):
        return self._tolerate(super().get_many, {}, keys, version)

    def set(self, key, value, timeout=..., version=None):
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._tolerate(super().set, None, key, value, version=version, **kwargs)

    def add(self, key, value, timeout=..., version=None):
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._tolerate(super().add, False, key, value, version=version, **kwargs)

    def touch(self, key, timeout=..., version=None):
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._tolerate(super().touch, False, key, version=version, **kwargs)

    def incr(self, key, delta=1, version=None):
        # As if this were the first hit of the window: never over a limit.
        return self._tolerate(super().incr, delta, key, delta, version)

    def delete(self, key, version=None):
        return self._tolerate(super().delete, False, key, version)

    def has_key(self, key, version=None):
        return self._tolerate(super().has_key, False, key, version)


class CountingDatabaseCache(DatabaseCache):
    """Django's database cache with an atomic incr().

    Django's incr() is a get() then a set(): two workers counting the same
    key at once both read n and both write n + 1, and a rate limit lets more
    through than it should. Here the row is locked first (an UPDATE that
    changes nothing locks the row in Postgres and takes SQLite's write lock),
    so the second worker waits for the first one's write.
    """

    def incr(self, key, delta=1, version=None):
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        table = connection.ops.quote_name(self._table)
        stored_key = self.make_and_validate_key(key, version=version)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET expires = expires WHERE cache_key = %s",  # noqa: S608
                [stored_key],
            )
            return super().incr(key, delta, version)

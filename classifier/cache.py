"""The Redis cache, tolerant of Redis being down.

The cache holds only counters (uploads per user, failed sign-ins). If Redis
goes away, signing in and uploading must keep working: the counters are
skipped, with a warning in the log, until it is back. Throttling is briefly
off rather than the whole site down.
"""

import logging

from django.core.cache.backends.redis import RedisCache

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

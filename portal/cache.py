"""The shared cache (Redis) as an optimisation only: when Redis is down, reads miss and writes are
dropped, so every page still answers, from the database, instead of failing with it."""
import logging
import time

from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)
_QUIET_SECONDS = 30.0  # after a failure, skip Redis this long (each try would cost a connect timeout)


class TolerantRedisCache(RedisCache):
    _down_until = 0.0

    def _guard(self, call, default):
        if time.monotonic() < TolerantRedisCache._down_until:
            return default
        try:
            return call()
        except Exception as exc:  # redis-py's ConnectionError, TimeoutError and the like
            if TolerantRedisCache._down_until == 0.0 or time.monotonic() >= TolerantRedisCache._down_until:
                logger.warning("cache unavailable (%s: %s); serving without it", type(exc).__name__, exc)
            TolerantRedisCache._down_until = time.monotonic() + _QUIET_SECONDS
            return default


def _wrap(name, default=None):
    method = getattr(RedisCache, name)

    def guarded(self, *args, **kwargs):
        fallback = default(*args, **kwargs) if callable(default) else default
        return self._guard(lambda: method(self, *args, **kwargs), fallback)

    guarded.__name__ = name
    setattr(TolerantRedisCache, name, guarded)


def _default_arg(*args, **kwargs):
    return kwargs.get("default", args[1] if len(args) > 1 else None)


_wrap("get", _default_arg)
_wrap("get_many", {})
_wrap("add", False)
_wrap("set", None)
_wrap("set_many", [])
_wrap("touch", False)
_wrap("delete", False)
_wrap("delete_many", None)
_wrap("has_key", False)
_wrap("clear", None)

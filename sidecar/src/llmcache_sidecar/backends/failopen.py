"""Fail-open policy, written once and wrapped around any backend.

A backend that errors or is too slow must never fail or delay a request beyond its
timeout: a read turns into a miss, a write is dropped. Errors are counted; the log
gets one line when a backend starts failing and one when it recovers, never the
value or the full key. After `trip_after` failures in a row the backend is skipped
for `cooldown` seconds (a circuit breaker), so a dead Redis costs requests nothing
instead of a connect timeout each. `on_error(operation, reason)` hears of every call
answered without the backend: `reason` is the exception's type name, or `SKIPPED` for
a call the breaker kept from the backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from llmcache_sidecar.backends.base import BackendError, BackendStats, CacheBackend
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.telemetry import SKIPPED

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Errors that mean "the backend could not help". Anything else is a bug in a backend,
# still turned into a miss (the cache must never fail a request) but logged with a
# traceback.
_EXPECTED = (BackendError, TimeoutError, OSError)


class FailOpen:
    """Wraps `inner`: timeouts and errors become misses, counted and logged once."""

    self_bounded = True

    def __init__(
        self,
        inner: CacheBackend,
        *,
        timeout: float,
        trip_after: int = 5,
        cooldown: float = 1.0,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._timeout = None if inner.self_bounded else timeout
        self._trip_after = trip_after
        self._cooldown = cooldown
        self._on_error = on_error
        self._failures = 0
        self._open_until = 0.0
        self.errors = 0
        self.skipped = 0

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    async def get(self, key: str) -> CachedResponse | None:
        return await self._call("get", self.inner.get(key), None)

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        await self._call("set", self.inner.set(key, value, ttl), None)

    async def delete(self, key: str) -> bool:
        return await self._call("delete", self.inner.delete(key), False)

    async def get_epoch(self, namespace: str) -> int:
        # Called rarely (the proxy caches epochs); -1 tells the caller "unknown, retry".
        return await self._call("get_epoch", self.inner.get_epoch(namespace), -1)

    async def bump_epoch(self, namespace: str) -> int:
        # A flush must not silently do nothing: this one raises for the admin API.
        return await self._bounded(self.inner.bump_epoch(namespace))

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        # Unknown lease state: go upstream ourselves rather than wait on nobody.
        return await self._call("lease", self.inner.acquire_lease(key, ttl), True)

    async def release_lease(self, key: str) -> None:
        await self._call("lease", self.inner.release_lease(key), None)

    async def keys(self, prefix: str, limit: int) -> list[str]:
        # An export must not silently come out empty: this one raises for the admin API.
        return await self.inner.keys(prefix, limit)

    async def stats(self) -> BackendStats:
        return await self._call("stats", self.inner.stats(), BackendStats(None, None))

    async def ping(self) -> None:
        await self._bounded(self.inner.ping())

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _bounded(self, aw: Awaitable[T]) -> T:
        if self._timeout is None:
            return await aw
        async with asyncio.timeout(self._timeout):
            return await aw

    async def _call(self, op: str, call: Coroutine[Any, Any, T], fallback: T) -> T:
        """Await `call` within the deadline; on a failure, or while tripped, `fallback`."""
        if self._failures >= self._trip_after and time.monotonic() < self._open_until:
            call.close()  # never started: closed, so that it is not reported as never awaited
            self.skipped += 1
            if self._on_error is not None:
                self._on_error(op, SKIPPED)
            return fallback
        try:
            if self._timeout is None:
                result = await call
            else:
                async with asyncio.timeout(self._timeout):
                    result = await call
        except _EXPECTED as exc:
            self._failed(op, exc, unexpected=False)
            return fallback
        except Exception as exc:  # any other error is a bug in a backend: see _EXPECTED
            self._failed(op, exc, unexpected=True)
            return fallback
        if self._failures:
            logger.info("cache backend %s answers again after %d failures", self.name, self._failures)
            self._failures = 0
        return result

    def _failed(self, op: str, exc: BaseException, *, unexpected: bool) -> None:
        self.errors += 1
        self._failures += 1
        reason = type(exc).__name__
        if self._on_error is not None:
            self._on_error(op, reason)
        if self._failures == 1 or unexpected:
            logger.warning(
                "cache backend %s failed on %s (%s: %s); serving without it",
                self.name,
                op,
                reason,
                exc,
                exc_info=unexpected,
            )
        if self._failures >= self._trip_after:
            if self._failures == self._trip_after:
                logger.warning(
                    "cache backend %s skipped for %.1fs after %d failures", self.name, self._cooldown, self._failures
                )
            self._open_until = time.monotonic() + self._cooldown

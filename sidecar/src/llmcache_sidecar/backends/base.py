"""The one interface every cache backend implements.

Small, typed and async-only. Policy (timeouts, fail-open, metrics) is not here: it
is written once in `failopen.FailOpen` and wrapped around any backend. A backend
only stores and fetches, and raises `BackendError` when it cannot; third-party
exceptions are translated where they enter (`raise BackendError(...) from exc`).

Flush is an epoch per namespace, part of every key: `bump_epoch` moves it on, and
entries under the old epoch are never read again and age out by TTL or eviction.
That costs the same on every backend and at any size (no scan, no FLUSHALL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llmcache_sidecar.entry import CachedResponse


class BackendError(Exception):
    """A backend could not answer. `FailOpen` turns it into a miss or a dropped write."""


class ListingUnsupported(BackendError):
    """This kind of store cannot list its keys (`keys`): the admin export says so."""


@dataclass(frozen=True, slots=True)
class BackendStats:
    """Size of what a backend holds; None where it cannot be counted cheaply."""

    entries: int | None
    bytes: int | None


class CacheBackend(Protocol):
    """Storage for cached answers, keyed by the strings `keys.compute` makes."""

    name: str
    """Short backend name for logs and metrics (`memory`, `redis`, ...)."""

    self_bounded: bool
    """True when every call is already bounded by the backend's own I/O timeouts
    (socket timeouts), so `FailOpen` need not add an `asyncio.timeout` per call."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def get_epoch(self, namespace: str) -> int:
        """The namespace's current flush epoch (0 when never flushed)."""
        ...

    async def bump_epoch(self, namespace: str) -> int:
        """Flush a namespace: move its epoch on and return the new one."""
        ...

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        """Claim the right to fetch `key` upstream for `ttl` seconds.

        True when nobody else holds it. Backends shared between processes use it to
        coalesce identical requests across pods; a per-process backend says True.
        """
        ...

    async def release_lease(self, key: str) -> None: ...

    async def keys(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` live keys that start with `prefix`, in no order (the admin port's export).

        Raises `ListingUnsupported` where the store cannot list cheaply, `BackendError`
        when it does not answer; never used on the data path.
        """
        ...

    async def stats(self) -> BackendStats: ...

    async def ping(self) -> None:
        """Return when the backend answers; raise `BackendError` otherwise (/readyz)."""
        ...

    async def aclose(self) -> None: ...

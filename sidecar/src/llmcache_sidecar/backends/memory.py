"""An in-process LRU cache bounded by entries and bytes, with per-entry TTL.

Entries are kept as `CachedResponse` objects, so a hit does no decoding. Expired
entries are dropped when they are read or when they reach the cold end of the LRU.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from llmcache_sidecar.backends.base import BackendStats
from llmcache_sidecar.entry import CachedResponse


class MemoryCache:
    """Least recently used entries are evicted first once a bound is reached."""

    name = "memory"
    self_bounded = True  # no I/O: nothing to time out

    def __init__(self, *, max_bytes: int, max_entries: int) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._items: OrderedDict[str, tuple[CachedResponse, float]] = OrderedDict()
        self._bytes = 0
        self._epochs: dict[str, int] = {}

    async def get(self, key: str) -> CachedResponse | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires_at = item
        if expires_at <= time.monotonic():
            self._remove(key)
            return None
        self._items.move_to_end(key)
        return value

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        if ttl <= 0 or value.size > self._max_bytes:
            return
        if key in self._items:
            self._remove(key)
        self._items[key] = (value, time.monotonic() + ttl)
        self._bytes += value.size
        while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
            self._remove(next(iter(self._items)))

    async def delete(self, key: str) -> bool:
        if key not in self._items:
            return False
        self._remove(key)
        return True

    async def get_epoch(self, namespace: str) -> int:
        return self._epochs.get(namespace, 0)

    async def bump_epoch(self, namespace: str) -> int:
        epoch = self._epochs.get(namespace, 0) + 1
        self._epochs[namespace] = epoch
        return epoch

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        return True  # one process: in-process coalescing already covers it

    async def release_lease(self, key: str) -> None:
        return None

    async def keys(self, prefix: str, limit: int) -> list[str]:
        now = time.monotonic()
        found = [k for k, (_, expires_at) in self._items.items() if k.startswith(prefix) and expires_at > now]
        return found[:limit]

    async def stats(self) -> BackendStats:
        return BackendStats(entries=len(self._items), bytes=self._bytes)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._items.clear()
        self._bytes = 0

    def _remove(self, key: str) -> None:
        value, _ = self._items.pop(key)
        self._bytes -= value.size

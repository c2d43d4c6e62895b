"""Two tiers: a small memory cache in front of a shared one.

A hit below fills the front, with the entry's remaining TTL unknown to the front, so
the front keeps it for at most `front_ttl` seconds: a flush or delete elsewhere is
seen there within that bound. Epochs and leases always come from the back, the tier
that every pod shares.

A stale entry in the front (past its freshness, kept for `staleIfError`) does not
hide a fresh one that another pod has written to the back since: the back is asked,
and the stale front entry is the answer only when the back has nothing better.
"""

from __future__ import annotations

import asyncio
import time

from llmcache_sidecar.backends.base import BackendStats, CacheBackend
from llmcache_sidecar.entry import CachedResponse


class DualCache:
    """`front` answers first; `back` (usually wrapped in FailOpen) is the truth."""

    name = "dual"
    self_bounded = True  # each tier is bounded on its own

    def __init__(self, front: CacheBackend, back: CacheBackend, *, front_ttl: float) -> None:
        self.front = front
        self.back = back
        self._front_ttl = front_ttl

    async def get(self, key: str) -> CachedResponse | None:
        front = await self.front.get(key)
        if front is not None and front.staleness(time.time()) <= 0:
            return front
        value = await self.back.get(key)
        if value is None:
            return front
        if value is not front and (front is None or value.created_at > front.created_at):
            await self.front.set(key, value, self._front_ttl)
            return value
        return front

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        await self.front.set(key, value, min(ttl, self._front_ttl))
        await self.back.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        in_front, in_back = await asyncio.gather(self.front.delete(key), self.back.delete(key))
        return in_front or in_back

    async def get_epoch(self, namespace: str) -> int:
        return await self.back.get_epoch(namespace)

    async def bump_epoch(self, namespace: str) -> int:
        return await self.back.bump_epoch(namespace)

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        return await self.back.acquire_lease(key, ttl)

    async def release_lease(self, key: str) -> None:
        await self.back.release_lease(key)

    async def keys(self, prefix: str, limit: int) -> list[str]:
        return await self.back.keys(prefix, limit)  # the front holds a subset of the back

    async def stats(self) -> BackendStats:
        return await self.back.stats()

    async def ping(self) -> None:
        await self.back.ping()

    async def aclose(self) -> None:
        await asyncio.gather(self.front.aclose(), self.back.aclose())

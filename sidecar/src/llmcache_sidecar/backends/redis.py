"""Redis (standalone) through redis.asyncio: one client and pool per process.

Every call is bounded by the client's socket timeouts (connect and read), which
redis-py enforces inside its reader; no extra `wait_for` per command is added. Values
are `entry.encode()` bytes stored with a millisecond TTL (`SET key value PX ttl`).
Epochs are plain counters (`INCR`), leases `SET NX PX`.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llmcache_sidecar import entry
from llmcache_sidecar.backends.base import BackendError, BackendStats
from llmcache_sidecar.entry import CachedResponse


class RedisCache:
    """Translates every redis-py error into `BackendError` at this boundary."""

    name = "redis"
    self_bounded = True

    def __init__(self, client: aioredis.Redis, *, prefix: str = "llmc:") -> None:
        self._client = client
        self._epoch_prefix = f"{prefix}epoch:"
        self._lease_prefix = f"{prefix}lease:"

    @classmethod
    def from_url(cls, url: str, *, password: str | None, timeout: float, max_connections: int) -> RedisCache:
        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            health_check_interval=0,
        )
        return cls(client)

    async def get(self, key: str) -> CachedResponse | None:
        try:
            data = await self._client.get(key)
        except RedisError as exc:
            raise BackendError(str(exc)) from exc
        if data is None:
            return None
        try:
            return entry.decode(data if isinstance(data, bytes) else data.encode())
        except entry.EntryFormatError as exc:
            raise BackendError(f"unreadable entry: {exc}") from exc

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        ttl_ms = int(ttl * 1000)
        if ttl_ms <= 0:
            return
        try:
            await self._client.set(key, entry.encode(value), px=ttl_ms)
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def delete(self, key: str) -> bool:
        try:
            return bool(await self._client.delete(key))
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def get_epoch(self, namespace: str) -> int:
        try:
            value = await self._client.get(self._epoch_prefix + namespace)
        except RedisError as exc:
            raise BackendError(str(exc)) from exc
        return int(value) if value is not None else 0

    async def bump_epoch(self, namespace: str) -> int:
        try:
            return int(await self._client.incr(self._epoch_prefix + namespace))
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        try:
            return bool(await self._client.set(self._lease_prefix + key, b"1", nx=True, px=int(ttl * 1000)))
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def release_lease(self, key: str) -> None:
        try:
            await self._client.delete(self._lease_prefix + key)
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def stats(self) -> BackendStats:
        """Counts the whole Redis database: give llmcache a database of its own."""
        try:
            entries = await self._client.dbsize()
            memory = await self._client.info("memory")
        except RedisError as exc:
            raise BackendError(str(exc)) from exc
        return BackendStats(entries=int(entries), bytes=int(memory.get("used_memory", 0)))

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

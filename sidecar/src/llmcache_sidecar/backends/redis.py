"""Redis through redis.asyncio: standalone, Sentinel or Cluster; one client per process.

Every call is bounded by `FailOpen`'s deadline (`asyncio.timeout`, a timer per call),
not by redis-py's `socket_timeout`, whose write path costs an `asyncio.wait_for` (a task)
per command; connecting is bounded by `socket_connect_timeout`. Cluster and Sentinel
clients also retry and rediscover internally, which the same deadline holds. Values
are `entry.encode()` bytes stored with a millisecond TTL (`SET key value PX ttl`).
Epochs are plain counters (`INCR`), leases `SET NX PX`, both named by `wire.keys` under
their namespace's prefix, so that one ACL key pattern per namespace covers them.

Every command touches exactly one key, so all of them work on a Redis Cluster
(no cross-slot multi-key commands, no Lua, no MULTI). What a cache saved (`savings`)
is a hash per namespace and minute (`keys.savings_key`): a report is one pipeline of
increments on that one key, and the key's hash tag keeps a namespace's minutes on one
shard, so the operator reads an hour of them in one pipeline too. A namespace's epoch is one key
and lives on one shard; entries of every shard carry the epoch in their key, so a
flush takes effect on all shards at once without visiting them.

With Sentinel, the client asks the Sentinels where the master is and asks again
after a failover; reads and writes both go to the master.

Lookups (`get`) on a standalone Redis and through Sentinel are pipelined automatically
(`autopipeline.py`): the GETs of one event-loop iteration go out as one batch on one
connection. A Cluster client sends each GET on its own (a batch would span shards).
Every other command goes out on its own everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from llmcache_sidecar import entry
from llmcache_sidecar.backends.autopipeline import AutoPipeline
from llmcache_sidecar.backends.base import BackendError, BackendStats
from llmcache_sidecar.backends.savings import KEPT_SECONDS, Savings
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.wire import keys

logger = logging.getLogger(__name__)
Client = aioredis.Redis | RedisCluster
_GLOB_SPECIAL = re.compile(r"[\\*?\[\]]")


class RedisCache:
    """Translates every redis-py error into `BackendError` at this boundary."""

    name = "redis"

    def __init__(
        self,
        client: Client,
        *,
        also_close: Sequence[aioredis.Redis] = (),
        self_bounded: bool = True,
        pipeline_timeout: float | None = None,
    ) -> None:
        """`pipeline_timeout`: pipeline the lookups (`AutoPipeline`), each batch bounded by it.

        Only for a client whose commands all go to one server; refused for a cluster.
        """
        self._client = client
        self._batcher: AutoPipeline | None = None
        if pipeline_timeout is not None:
            if isinstance(client, RedisCluster):
                raise ValueError("a Redis Cluster client cannot pipeline lookups: one batch would span shards")
            self._batcher = AutoPipeline(client, timeout=pipeline_timeout)
        self.self_bounded = self_bounded
        self._also_close = tuple(also_close)
        # redis-py's asyncio RedisCluster races when its first commands run concurrently
        # (several coroutines initialise the topology at once and some get a half-made
        # connection): the first call initialises it alone, under this lock.
        self._initialized = not isinstance(client, RedisCluster)
        self._init_lock = asyncio.Lock()

    @property
    def batcher(self) -> AutoPipeline | None:
        """The lookups' auto-pipeline; None where lookups go one by one (Cluster)."""
        return self._batcher

    @property
    def client(self) -> Client:
        """The redis-py client, for what the cache interface does not cover (admin, tests)."""
        return self._client

    @classmethod
    def from_url(cls, url: str, *, password: str | None, timeout: float, max_connections: int) -> RedisCache:
        """A standalone Redis at `url`.

        No redis-py `socket_timeout`: with one, every command's write runs under an
        `asyncio.wait_for`, a task per call on Python 3.11 (5-7% of a hit). FailOpen's
        `asyncio.timeout` bounds each call instead (a timer, no task); redis-py drops a
        connection whose read was cancelled, so a late answer never reaches the next command.
        """
        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=None,  # explicit: redis-py 8 defaults to 5 s, i.e. a wait_for per command
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            health_check_interval=0,
        )
        return cls(client, self_bounded=False, pipeline_timeout=timeout)

    @classmethod
    def cluster(cls, url: str, *, password: str | None, timeout: float, max_connections: int) -> RedisCache:
        """A Redis Cluster that the node at `url` belongs to; the client discovers the rest."""
        client = RedisCluster.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            health_check_interval=0,
        )
        # Not self-bounded: on a timeout the cluster client refreshes its topology and
        # retries, several socket timeouts in all (measured: ~6x), so FailOpen's deadline
        # is what holds the call to timeoutMs.
        return cls(client, self_bounded=False)

    @classmethod
    def sentinel(
        cls,
        url: str,
        *,
        master_name: str,
        sentinels: Sequence[tuple[str, int]],
        password: str | None,
        sentinel_password: str | None,
        timeout: float,
        max_connections: int,
    ) -> RedisCache:
        """The master that `sentinels` monitor as `master_name`; db and TLS come from `url`."""
        parsed: dict[str, Any] = dict(parse_url(url))
        manager = Sentinel(
            list(sentinels),
            sentinel_kwargs={
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "password": sentinel_password,
            },
            # The master's connections, as standalone: no per-command socket timeout (a
            # wait_for per write and per reply read); FailOpen's deadline bounds each call.
            socket_timeout=None,
            socket_connect_timeout=timeout,
        )
        client = manager.master_for(
            master_name,
            db=parsed.get("db", 0),
            username=parsed.get("username"),
            password=password if password is not None else parsed.get("password"),
            ssl=url.startswith("rediss://"),
            max_connections=max_connections,
            health_check_interval=0,
        )
        # Not self-bounded either: finding the master asks each Sentinel in turn.
        return cls(client, also_close=manager.sentinels, self_bounded=False, pipeline_timeout=timeout)

    async def get(self, key: str) -> CachedResponse | None:
        try:  # `_call` inlined: this is every lookup's path
            if self._batcher is not None:
                data: Any = await self._batcher.get(key)
            else:
                if not self._initialized:
                    await self._initialize()
                data = await self._client.get(key)
        except RedisError as exc:
            raise BackendError(str(exc)) from exc
        if data is None:
            return None
        try:
            return entry.decode(bytes(data))
        except entry.EntryFormatError as exc:
            # Unreadable bytes say nothing about Redis's health: a miss, not a failure.
            logger.debug("redis: unreadable entry treated as a miss: %s", exc)
            return None

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        ttl_ms = int(ttl * 1000)
        if ttl_ms <= 0:
            return
        await self._call(lambda: self._client.set(key, entry.encode(value), px=ttl_ms))

    async def delete(self, key: str) -> bool:
        return bool(await self._call(lambda: self._client.delete(key)))

    async def get_epoch(self, namespace: str) -> int:
        value = await self._call(lambda: self._client.get(keys.epoch_key(namespace)))
        try:
            return int(value) if value is not None else 0
        except ValueError as exc:
            raise BackendError(f"epoch of {namespace!r} is not a number") from exc

    async def bump_epoch(self, namespace: str) -> int:
        return int(await self._call(lambda: self._client.incr(keys.epoch_key(namespace))))

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        px = max(1, int(ttl * 1000))
        return bool(await self._call(lambda: self._client.set(keys.lease_key(key), b"1", nx=True, px=px)))

    async def release_lease(self, key: str) -> None:
        await self._call(lambda: self._client.delete(keys.lease_key(key)))

    async def keys(self, prefix: str, limit: int) -> list[str]:
        """SCAN (every primary of a cluster), a batch at a time: never KEYS, which blocks Redis."""
        pattern = _GLOB_SPECIAL.sub(r"\\\g<0>", prefix) + "*"

        async def scan() -> list[str]:
            found: list[str] = []
            async for key in self._client.scan_iter(match=pattern, count=1000):
                found.append(key.decode() if isinstance(key, bytes) else str(key))
                if len(found) >= limit:
                    break
            return found

        result: list[str] = await self._call(scan)
        return result

    async def add_savings(self, namespace: str, minute: int, delta: Savings) -> None:
        pipe = self._client.pipeline(transaction=False)
        key = self._savings_key(namespace, minute)
        pipe.hincrby(key, "requests", delta.requests)
        pipe.hincrby(key, "hits", delta.hits)
        pipe.hincrby(key, "tokens", delta.tokens)
        pipe.hincrbyfloat(key, "costUSD", delta.cost_usd)
        pipe.expire(key, KEPT_SECONDS)
        await self._call(pipe.execute)

    async def read_savings(self, namespace: str, minutes: Sequence[int]) -> Savings:
        pipe = self._client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(self._savings_key(namespace, minute))
        total = Savings()
        for found in await self._call(pipe.execute):
            fields = {bytes(k).decode(): bytes(v) for k, v in (found or {}).items()}
            try:
                total += Savings(
                    int(fields.get("requests", 0)),
                    int(fields.get("hits", 0)),
                    int(fields.get("tokens", 0)),
                    float(fields.get("costUSD", 0)),
                )
            except ValueError as exc:
                raise BackendError(f"savings of {namespace!r} are not numbers: {exc}") from exc
        return total

    def _savings_key(self, namespace: str, minute: int) -> str:
        return keys.savings_key(namespace, minute)

    async def stats(self) -> BackendStats:
        """Counts the whole Redis database (every shard of a cluster): give llmcache its own."""
        client = self._client
        if isinstance(client, RedisCluster):
            counts: Any = await self._call(lambda: client.dbsize(target_nodes=RedisCluster.PRIMARIES))
            entries = sum(counts.values()) if isinstance(counts, dict) else int(counts)
            # Asked of every primary, a cluster answers {node name: {field: value}}.
            per_node: dict[str, Any] = await self._call(
                lambda: client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            )
            used = sum(int(node.get("used_memory", 0)) for node in per_node.values())
        else:
            entries = await self._call(client.dbsize)
            memory: dict[str, Any] = await self._call(lambda: client.info("memory"))
            used = int(memory.get("used_memory", 0))
        return BackendStats(entries=int(entries), bytes=used)

    async def ping(self) -> None:
        await self._call(self._client.ping)

    async def _initialize(self) -> None:
        async with self._init_lock:
            if not self._initialized and isinstance(self._client, RedisCluster):
                await self._client.initialize()
                self._initialized = True

    async def aclose(self) -> None:
        if self._batcher is not None:
            await self._batcher.aclose()
        await self._client.aclose()
        for extra in self._also_close:
            await extra.aclose()

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        try:
            if not self._initialized:
                await self._initialize()
            return await command()
        except RedisError as exc:
            raise BackendError(str(exc)) from exc

"""Automatic pipelining of Redis GETs: lookups made in one event-loop iteration share a round trip.

Under load many requests look up their keys at the same moment. Sent one by one, each
GET pays redis-py's per-command path (pool lock, connection checks, retry wrapper) and
a socket write of its own. Here the first lookup of an iteration opens a batch and
schedules its flush with `call_soon`; every lookup made before the loop gets there joins
it; the flush sends them all as one pipeline (one write, the replies read back in order) on
one pooled connection, and hands each caller its own reply, by position. The idea is
ioredis' `enableAutoPipelining`.

Only for a client that sends every command to one server (standalone, or the master
that Sentinel names): on a Redis Cluster the keys of one batch live on different
shards, and this module does not split batches by slot.

Failure is per batch and never crosses callers: a batch that errors or outlives
`timeout` fails every caller still waiting with `BackendError` (FailOpen turns that into
a miss), and an error reply to one GET fails that caller alone. A caller that stops
waiting (its own deadline, a client gone) only drops out: the batch runs on in a task
owned by this object, bounded by `timeout`, and a cancelled read makes redis-py drop
that connection, so a late reply can never reach another batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from llmcache_sidecar.backends.base import BackendError

logger = logging.getLogger(__name__)
Waiter = tuple[str, "asyncio.Future[Any]"]


class AutoPipeline:
    """Batches `get` calls of one event-loop iteration into one Redis pipeline."""

    def __init__(self, client: aioredis.Redis, *, timeout: float, max_batch: int = 128) -> None:
        self._client = client
        self._timeout = timeout
        self._max_batch = max_batch
        self._pending: list[Waiter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batches sent so far (for tests and the curious: lookups / batches = mean batch size)."""

    def get(self, key: str) -> asyncio.Future[Any]:
        """A future of the raw value at `key` (bytes, or None when absent)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((key, waiter))
        if len(self._pending) >= self._max_batch:
            self._flush()  # the call_soon above then finds a new batch, or nothing
        return waiter

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        batch = [w for w in batch if not w[1].done()]  # callers that already gave up
        if not batch:
            return
        self.batches += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Waiter]) -> None:
        pool = self._client.connection_pool
        conn = None
        try:
            async with asyncio.timeout(self._timeout):
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]
                replies = await self._exchange(conn, [key for key, _ in batch])
        except (RedisError, TimeoutError, OSError) as exc:
            self._fail(batch, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        except asyncio.CancelledError:
            # Shut down mid-batch (aclose, loop teardown): a miss for whoever still waits.
            self._fail(batch, "the cache is closing")
            raise
        except Exception as exc:  # a bug here, not Redis: say so loudly, and still a miss for each caller
            logger.exception("pipelined GET failed unexpectedly")
            self._fail(batch, f"unexpected {type(exc).__name__}")
            return
        finally:
            # Outside the deadline, so that its expiry cannot leave the connection checked
            # out. A connection whose exchange was cut short was closed by redis-py; the
            # pool reconnects it on its next use.
            if conn is not None:
                await pool.release(conn)
        for (_, waiter), reply in zip(batch, replies, strict=True):
            if waiter.done():
                continue
            if isinstance(reply, ResponseError):  # an error reply to this GET alone
                waiter.set_exception(BackendError(str(reply)))
            else:
                waiter.set_result(reply)

    @staticmethod
    async def _exchange(conn: AbstractConnection, keys: list[str]) -> list[Any]:
        """One write of every GET, then their replies in order.

        Straight on redis-py's connection rather than through its `Pipeline`, whose
        retry wrapper, metrics hooks and HIMPORT preparation cost about a sixth of a
        lookup's CPU here. The pool's checkout still reconnects a connection that Redis
        closed; what this gives up is redis-py's retry of a batch that fails mid-way:
        that batch is a miss for its callers, and the next batch reconnects.
        """
        await conn.send_packed_command(conn.pack_commands([("GET", key) for key in keys]))
        replies: list[Any] = []
        for _ in keys:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:  # the connection is still in step: read the rest
                replies.append(exc)
        return replies

    @staticmethod
    def _fail(batch: list[Waiter], reason: str) -> None:
        for _, waiter in batch:
            if not waiter.done():  # one exception each: a raised exception collects its own traceback
                waiter.set_exception(BackendError(f"pipelined GET failed ({reason})"))

    async def aclose(self) -> None:
        """Stop: lookups not yet sent and batches in flight fail (FailOpen: misses), none hangs."""
        pending, self._pending = self._pending, []
        self._fail(pending, "the cache is closing")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

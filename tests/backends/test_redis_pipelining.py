"""Lookups on standalone Redis and through Sentinel are pipelined: what a user relies on.

Concurrent lookups of one event-loop iteration travel as one batch, which Redis itself
shows (one connection, one read event for the batch, every GET counted); each caller
gets its own key's value; a batch that fails, or a Redis that freezes (SIGSTOP), is a
miss for every caller of the batch; a caller that gives up disturbs nobody. All against
real redis-server processes; nothing is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from llmcache_sidecar import config, entry
from llmcache_sidecar.backends import build_backend
from llmcache_sidecar.backends.failopen import FailOpen
from llmcache_sidecar.backends.redis import RedisCache
from tests import realparts
from tests.backends.test_contract import answer, new_key
from tests.realparts import Servers

pytestmark = pytest.mark.outage  # the backends here are built by the tests, which check their errors


Errors = list[tuple[str, str]]


def build(block: dict[str, Any], errors: Errors) -> FailOpen:
    settings = config.parse(config.BackendSettings, {"type": "redis", "redis": block}, "backend")
    backend = build_backend(settings, on_error=lambda op, reason: errors.append((op, reason)))
    assert isinstance(backend, FailOpen)
    return backend


def standalone(port: int, timeout_ms: int = 2000) -> dict[str, Any]:
    return {"url": f"redis://127.0.0.1:{port}/0", "timeoutMs": timeout_ms}


def batcher_of(backend: FailOpen) -> Any:
    inner = backend.inner
    assert isinstance(inner, RedisCache)
    return inner.batcher


@pytest.fixture(params=["standalone", "sentinel"])
def topology(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Servers]:
    """The Redis block of each topology that pipelines, and the server its lookups reach."""
    if request.param == "standalone":
        srv: Servers = request.getfixturevalue("redis_server")
        return standalone(srv.port), srv
    master, sentinel = request.getfixturevalue("redis_sentinel")
    block = {
        "url": "redis://ignored:1/0",
        "timeoutMs": 2000,
        "sentinel": {"masterName": "mymaster", "addresses": [f"127.0.0.1:{sentinel.port}"]},
    }
    return block, master


@pytest.fixture
async def probe(topology: tuple[dict[str, Any], Servers]) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the server the lookups reach: plants values, reads Redis's counters."""
    client = aioredis.Redis(host="127.0.0.1", port=topology[1].port)
    try:
        yield client
    finally:
        await client.aclose()


async def plant(probe: aioredis.Redis, count: int) -> tuple[list[str], list[bytes]]:
    keys = [new_key() for _ in range(count)]
    bodies = [f'{{"answer": {i}, "key": "{key}"}}'.encode() for i, key in enumerate(keys)]
    for key, body in zip(keys, bodies, strict=True):
        await probe.set(key, entry.encode(answer(body)), px=60_000)
    return keys, bodies


async def redis_counters(probe: aioredis.Redis) -> tuple[int, int, int]:
    """(connections accepted, read events processed, GET calls) so far, as Redis counts them."""
    stats: dict[str, Any] = await probe.info("stats")
    commands: dict[str, Any] = await probe.info("commandstats")
    gets = int(commands.get("cmdstat_get", {}).get("calls", 0))
    return int(stats["total_connections_received"]), int(stats["total_reads_processed"]), gets


async def test_lookups_made_together_reach_redis_as_one_batch_on_one_connection(
    topology: tuple[dict[str, Any], Servers], probe: aioredis.Redis
) -> None:
    errors: Errors = []
    backend = build(topology[0], errors)
    keys, bodies = await plant(probe, 32)
    try:
        connections, reads, gets = await redis_counters(probe)
        got = await asyncio.gather(*(backend.get(key) for key in keys))
        connections_after, reads_after, gets_after = await redis_counters(probe)
    finally:
        await backend.aclose()
    assert [g.body if g else None for g in got] == bodies
    assert gets_after - gets == 32
    # One GET per caller reached Redis, all of them over one new connection and in a
    # handful of socket reads (the probe's own INFO commands are two of them; one
    # GET at a time would be 32 more).
    assert connections_after - connections == 1
    assert reads_after - reads < 8
    assert batcher_of(backend).batches == 1
    assert errors == []


async def test_many_concurrent_lookups_of_different_keys_each_get_their_own_value(
    topology: tuple[dict[str, Any], Servers], probe: aioredis.Redis
) -> None:
    errors: Errors = []
    backend = build(topology[0], errors)
    keys, bodies = await plant(probe, 300)
    asked = []
    for i, key in enumerate(keys):
        asked += [key, new_key()] if i % 3 == 0 else [key]  # a miss now and then
    expected = {key: body for key, body in zip(keys, bodies, strict=True)}

    async def look(key: str, delay_iterations: int) -> bytes | None:
        for _ in range(delay_iterations):  # spread the callers over several iterations: several batches
            await asyncio.sleep(0)
        got = await backend.get(key)
        return got.body if got else None

    try:
        got = await asyncio.gather(*(look(key, i % 5) for i, key in enumerate(asked)))
        batches = batcher_of(backend).batches
    finally:
        await backend.aclose()
    assert got == [expected.get(key) for key in asked]
    assert 5 <= batches < len(asked) // 10
    assert errors == []


async def test_an_error_reply_to_one_lookup_is_a_miss_for_that_caller_alone(
    topology: tuple[dict[str, Any], Servers], probe: aioredis.Redis
) -> None:
    errors: Errors = []
    backend = build(topology[0], errors)
    keys, bodies = await plant(probe, 9)
    wrong_type = new_key()
    await probe.rpush(wrong_type, b"a list, not a string")  # GET answers -WRONGTYPE
    asked = [*keys[:4], wrong_type, *keys[4:]]
    try:
        got = await asyncio.gather(*(backend.get(key) for key in asked))
        assert batcher_of(backend).batches == 1
    finally:
        await backend.aclose()
    assert [g.body if g else None for g in got] == [*bodies[:4], None, *bodies[4:]]
    assert errors == [("get", "BackendError")]


async def test_a_frozen_redis_is_a_miss_for_every_caller_and_a_late_reply_reaches_nobody(
    topology: tuple[dict[str, Any], Servers], probe: aioredis.Redis
) -> None:
    errors: Errors = []
    block = {**topology[0], "timeoutMs": 300}
    backend = build(block, errors)
    frozen_keys, _ = await plant(probe, 16)
    keys, bodies = await plant(probe, 16)
    await backend.get(new_key())  # connected before the freeze: the batch is sent, then stalls
    try:
        with topology[1].paused():
            during = await asyncio.gather(*(backend.get(key) for key in frozen_keys))
        assert during == [None] * 16
        assert len(errors) == 16  # every caller counted its own failure
        # Redis now answers the stalled batch; those replies must reach no later caller.
        deadline = time.monotonic() + 30
        while True:
            got = await asyncio.gather(*(backend.get(key) for key in keys))
            # None while the circuit breaker skips Redis; never another key's value.
            assert all(g is None or g.body == body for g, body in zip(got, bodies, strict=True))
            if all(got):
                break
            assert time.monotonic() < deadline, "lookups did not come back after the freeze"
            await asyncio.sleep(0.2)  # the circuit breaker's cooldown
    finally:
        await backend.aclose()


async def test_a_caller_that_gives_up_does_not_disturb_the_others(
    topology: tuple[dict[str, Any], Servers], probe: aioredis.Redis
) -> None:
    errors: Errors = []
    backend = build(topology[0], errors)
    keys, bodies = await plant(probe, 20)
    await backend.get(new_key())  # connected before the freeze
    try:
        with topology[1].paused():
            tasks = [asyncio.create_task(backend.get(key)) for key in keys]
            await asyncio.sleep(0.1)  # the batch is on the wire, its replies not yet
            assert batcher_of(backend).batches == 2
            for task in tasks[::3]:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await backend.aclose()
    for i, (result, body) in enumerate(zip(results, bodies, strict=True)):
        if i % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert not isinstance(result, BaseException) and result is not None
            assert result.body == body
    assert errors == []


async def test_a_batch_cut_off_by_a_redis_crash_is_a_miss_for_every_caller(tmp_path: Path) -> None:
    with realparts.redis(tmp_path) as srv:
        errors: Errors = []
        backend = build(standalone(srv.port), errors)
        async with aioredis.Redis(host="127.0.0.1", port=srv.port) as client:
            keys, _ = await plant(client, 12)
        await backend.get(new_key())  # connected
        try:
            with _stopped_then_killed(srv):
                tasks = [asyncio.create_task(backend.get(key)) for key in keys]
                await asyncio.sleep(0.1)  # the batch is on the wire
            results = await asyncio.gather(*tasks)
        finally:
            await backend.aclose()
    assert results == [None] * 12
    assert len(errors) == 12 and {op for op, _ in errors} == {"get"}


@contextlib.contextmanager
def _stopped_then_killed(srv: Servers) -> Iterator[None]:
    """Freeze the server, and kill it (SIGKILL) on leaving: a crash mid-batch."""
    process = srv.processes[0]
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.kill()
        process.wait(10)


async def test_a_cluster_backend_does_not_pipeline_lookups(redis_cluster: Servers) -> None:
    errors: Errors = []
    backend = build({**standalone(redis_cluster.port), "cluster": True}, errors)
    try:
        assert batcher_of(backend) is None
        inner = backend.inner
        assert isinstance(inner, RedisCache)
        with pytest.raises(ValueError, match="span shards"):
            RedisCache(inner.client, pipeline_timeout=1.0)
    finally:
        await backend.aclose()


async def test_a_bug_in_the_batcher_is_logged_loudly_and_is_still_a_miss_for_every_caller(
    topology: tuple[dict[str, Any], Servers],
    probe: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The one injected fault here: the exchange itself raises what no Redis failure would.
    async def broken(conn: Any, keys: list[str]) -> list[Any]:
        raise ValueError("a bug")

    errors: Errors = []
    backend = build(topology[0], errors)
    keys, _ = await plant(probe, 4)
    monkeypatch.setattr(type(batcher_of(backend)), "_exchange", staticmethod(broken))
    try:
        got = await asyncio.gather(*(backend.get(key) for key in keys))
    finally:
        await backend.aclose()
    assert got == [None] * 4
    assert [op for op, _ in errors] == ["get"] * 4
    logged = [r for r in caplog.records if r.getMessage() == "pipelined GET failed unexpectedly"]
    assert len(logged) == 1 and logged[0].exc_info is not None and logged[0].levelname == "ERROR"

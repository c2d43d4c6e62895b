"""Each sidecar adds what it saved to its shared Redis every few seconds, off the data path.

Real parts: the sidecar's apps on real sockets and a real redis-server (a fresh one per
test: one test stops it); the provider is the fake one (tests/fakes/provider.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestServer

from llmcache_sidecar.server.app import make_app
from tests.conftest import Upstream, sidecar_settings
from tests.realparts import RedisServer, free_port
from tests.realparts import redis as real_redis

POLLS = 100


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with real_redis(tmp_path) as server:
        yield server


def saved(server: RedisServer, namespace: str) -> dict[str, float]:
    """Every minute of `namespace`, summed, as the operator reads them."""
    client = redis.Redis(port=server.port)
    total: dict[str, float] = {}
    for key in client.scan_iter(f"llmc:2:{namespace}:savings:*"):
        for field, value in client.hgetall(key).items():
            total[field.decode()] = total.get(field.decode(), 0) + float(value)
    client.close()
    return total


async def until_saved(server: RedisServer, namespace: str, requests: int) -> dict[str, float]:
    for _ in range(POLLS):
        found = saved(server, namespace)
        if found.get("requests") == requests:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saved {requests} requests: {saved(server, namespace)}")


async def start(upstream: Upstream, redis_url: str, namespace: str, interval: str) -> TestServer:
    settings = sidecar_settings(
        upstream.url,
        namespace=namespace,
        backend={"type": "redis", "redis": {"url": redis_url, "timeoutMs": 500}},
        telemetry={"savingsInterval": interval},
    )
    server = TestServer(make_app(settings), host="127.0.0.1")
    await server.start_server()
    return server


SEEN: list[str] = []
"""The Cache-Status of every chat answer of the running test."""


@pytest.fixture(autouse=True)
def _seen() -> None:
    SEEN.clear()


def hits_seen() -> int:
    return sum(status.startswith("llmcache; hit") for status in SEEN)  # coalesced ones are hits too


async def ask(server: TestServer, prompt: str, **body: Any) -> str:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-savings"}) as http:
        async with http.post(
            server.make_url("/openai/v1/chat/completions"),
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **body},
        ) as r:
            await r.read()
            SEEN.append(r.headers.get("Cache-Status", ""))
            return SEEN[-1]


async def until_hit(server: TestServer, prompt: str) -> None:
    for _ in range(POLLS):  # the answer is stored after it is sent
        if await ask(server, prompt) == "llmcache; hit":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{prompt!r} never hit")


async def test_requests_hits_tokens_and_money_reach_the_shared_backend(
    upstream: Upstream, own_redis: RedisServer
) -> None:
    server = await start(upstream, own_redis.url, "team-a", "100ms")
    try:
        await ask(server, "what is a cache?")
        await until_hit(server, "what is a cache?")  # a miss, perhaps a miss again, then a hit
        await ask(server, "what is a cache?")
        async with aiohttp.ClientSession() as http:  # a pass-through is not a cacheable request
            async with http.get(server.make_url("/openai/v1/models")) as r:
                await r.read()
        found = await until_saved(own_redis, "team-a", len(SEEN))
    finally:
        await server.close()
    assert found["hits"] == hits_seen() >= 2
    assert found["tokens"] > 0 and found["costUSD"] > 0
    # Only the minute of the report holds them (one minute, or two across a boundary).
    minutes = list(redis.Redis(port=own_redis.port).scan_iter("llmc:2:team-a:savings:*"))
    assert 1 <= len(minutes) <= 2
    assert abs(int(minutes[0].rsplit(b":", 1)[1]) - time.time() // 60) <= 1


async def test_a_sidecar_that_stops_reports_its_last_counts_on_the_way_out(
    upstream: Upstream, own_redis: RedisServer
) -> None:
    server = await start(upstream, own_redis.url, "team-b", "1h")  # no report before the end
    await ask(server, "stopping soon")
    await until_hit(server, "stopping soon")
    assert saved(own_redis, "team-b") == {}
    await server.close()
    found = saved(own_redis, "team-b")
    assert found["requests"] == len(SEEN) and found["hits"] == hits_seen() >= 1


async def test_a_report_the_backend_missed_is_added_to_the_next_one(upstream: Upstream, tmp_path: Path) -> None:
    port = free_port()
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
    with real_redis(tmp_path / "first", port=port) as first:
        server = await start(upstream, first.url, "team-c", "100ms")
        await ask(server, "before the outage")
        await until_saved(first, "team-c", 1)
    try:
        # Redis is gone: the requests are answered (fail open) and their counts wait.
        for i in range(3):
            await ask(server, f"during the outage {i}")
        await asyncio.sleep(0.5)  # several reports fail meanwhile
        with real_redis(tmp_path / "second", port=port) as second:  # back, empty
            found = await until_saved(second, "team-c", 3)
            assert found["hits"] == 0
    finally:
        await server.close()


async def test_a_memory_cache_keeps_no_savings_and_reports_nothing(upstream: Upstream, own_redis: RedisServer) -> None:
    settings = sidecar_settings(upstream.url, namespace="team-d", telemetry={"savingsInterval": "100ms"})
    server = TestServer(make_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        await ask(server, "in memory")
        await until_hit(server, "in memory")
        await asyncio.sleep(0.3)
    finally:
        await server.close()
    assert list(redis.Redis(port=own_redis.port).scan_iter("llmc:*:savings:*")) == []

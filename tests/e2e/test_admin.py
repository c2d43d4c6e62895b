"""The admin port: health, readiness, stats, flush, one key at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests import realparts
from tests.conftest import Sidecar, SidecarFactory, Upstream

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello admin"}]}


async def call(sidecar: Sidecar) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer k"}
        ) as resp,
    ):
        await resp.read()
        return dict(resp.headers)


async def admin(sidecar: Sidecar, method: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, f"{sidecar.admin_url}{path}") as resp:
        return resp.status, await resp.json()


async def test_healthz_and_readyz_answer_when_the_backend_does(sidecar: Sidecar) -> None:
    assert (await admin(sidecar, "GET", "/healthz"))[0] == 200
    status, body = await admin(sidecar, "GET", "/readyz")
    assert (status, body["status"]) == (200, "ready")


async def test_readyz_says_unavailable_while_redis_is_down(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    with realparts.redis(tmp_path) as redis:
        sidecar = await make_sidecar(backend={"type": "redis", "redis": {"url": redis.url}})
        assert (await admin(sidecar, "GET", "/readyz"))[0] == 200
    status, body = await admin(sidecar, "GET", "/readyz")
    assert status == 503
    assert body["backend"] == "redis"


async def test_stats_count_hits_misses_and_entries(sidecar: Sidecar, upstream: Upstream) -> None:
    await call(sidecar)
    await sidecar.state.drain(5)
    await call(sidecar)
    await call(sidecar)

    status, stats = await admin(sidecar, "GET", "/cache/stats")
    assert status == 200
    assert (stats["hits"], stats["misses"], stats["stored"]) == (2, 1, 1)
    assert stats["hitRate"] == round(2 / 3, 4)
    assert stats["backend"]["entries"] == 1
    assert stats["backend"]["bytes"] > 0


async def test_flush_empties_the_namespace_at_once(sidecar: Sidecar, upstream: Upstream) -> None:
    before = await call(sidecar)
    status, flushed = await admin(sidecar, "POST", "/cache/flush")
    after = await call(sidecar)

    assert status == 200
    assert flushed == {"namespace": "default", "epoch": 1, "flushed": True}
    assert after["Cache-Status"] == "llmcache; fwd=miss; stored"
    assert after["x-llmcache-key"] != before["x-llmcache-key"]
    assert ":e1:" in after["x-llmcache-key"]


async def test_flush_through_redis_reaches_every_sidecar_sharing_it(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server, request
) -> None:
    backend = {"type": "redis", "redis": {"url": redis_server.url}}
    one = await make_sidecar(backend=backend, namespace=request.node.name[:60])
    two = await make_sidecar(backend=backend, namespace=request.node.name[:60])
    await call(one)
    await one.state.drain(5)
    assert (await call(two))["Cache-Status"] == "llmcache; hit"

    await admin(one, "POST", "/cache/flush")
    two.state.epoch = None  # instead of waiting out the one-second epoch refresh
    assert (await call(two))["Cache-Status"].startswith("llmcache; fwd=miss")


async def test_one_key_can_be_inspected_and_deleted(sidecar: Sidecar, upstream: Upstream) -> None:
    key = (await call(sidecar))["x-llmcache-key"]
    await sidecar.state.drain(5)

    status, entry = await admin(sidecar, "GET", f"/cache/keys/{key}")
    assert status == 200
    assert entry["status"] == 200
    assert entry["model"] == "gpt-4o-mini"
    assert entry["body"]["choices"]
    assert entry["usage"]["inputTokens"] > 0
    assert (entry["ttl"], entry["stale"]) == (sidecar.settings.ttl, False)

    assert await admin(sidecar, "DELETE", f"/cache/keys/{key}") == (200, {"key": key, "deleted": True})
    assert (await admin(sidecar, "GET", f"/cache/keys/{key}"))[0] == 404
    assert (await call(sidecar))["Cache-Status"].startswith("llmcache; fwd=miss")


async def test_a_key_that_is_not_ours_is_refused_clearly(sidecar: Sidecar) -> None:
    status, body = await admin(sidecar, "GET", "/cache/keys/somethingelse")
    assert status == 400
    assert "x-llmcache-key" in body["error"]

"""Namespaces sharing one Redis: the admin port acts on its own namespace only (issue 15, finding 5).

The issue's reproduction, on a real redis-server: team-a stored an answer and flushed;
through its own admin port team-b read team-a's flushed entry, deleted team-a's epoch key,
and team-a's next call was a hit returning the pre-flush answer.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.e2e.test_admin import admin, call


@pytest.fixture
async def teams(
    make_sidecar: SidecarFactory, redis_server: Any, request: pytest.FixtureRequest
) -> tuple[Sidecar, Sidecar]:
    backend = {"type": "redis", "redis": {"url": redis_server.url, "timeoutMs": 2000}}
    suffix = str(abs(hash(request.node.name)))[:8]
    return (
        await make_sidecar(backend=backend, namespace=f"team-a-{suffix}"),
        await make_sidecar(backend=backend, namespace=f"team-b-{suffix}"),
    )


async def test_another_namespaces_entries_and_epoch_are_out_of_reach_of_an_admin_port(
    teams: tuple[Sidecar, Sidecar], upstream: Upstream, redis_server: Any
) -> None:
    team_a, team_b = teams
    key = (await call(team_a))["x-llmcache-key"]
    await team_a.state.drain(5)
    assert (await admin(team_a, "POST", "/cache/flush"))[0] == 200
    epoch_key = f"llmc:2:{team_a.settings.namespace}:epoch"

    assert (await admin(team_b, "GET", f"/cache/keys/{key}"))[0] == 403
    assert (await admin(team_b, "DELETE", f"/cache/keys/{key}"))[0] == 403
    status, body = await admin(team_b, "DELETE", f"/cache/keys/{epoch_key}")
    assert status == 400 and "not an llmcache entry key" in body["error"]

    assert (await call(team_a))["Cache-Status"] == "llmcache; fwd=miss; stored"  # still flushed
    assert upstream.fake.count("/chat/completions") == 2
    async with aioredis.Redis.from_url(redis_server.url) as root:
        assert await root.get(epoch_key) == b"1"  # what every team-a pod reads: untouched


async def test_an_admin_port_reads_and_deletes_its_own_and_its_sub_namespaces_entries(
    teams: tuple[Sidecar, Sidecar],
) -> None:
    team_a, _ = teams
    own = (await call(team_a))["x-llmcache-key"]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{team_a.url}/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "sub"}]},
            headers={"Authorization": "Bearer k", "x-llmcache-namespace": "experiment-1"},
        ) as r:
            sub = r.headers["x-llmcache-key"]
    await team_a.state.drain(5)
    assert f":{team_a.settings.namespace}/experiment-1:" in sub
    for key in (own, sub):
        assert (await admin(team_a, "GET", f"/cache/keys/{key}"))[0] == 200
        assert (await admin(team_a, "DELETE", f"/cache/keys/{key}"))[0] == 200
        assert (await admin(team_a, "GET", f"/cache/keys/{key}"))[0] == 404


@pytest.mark.parametrize(
    "suffix",
    [":lease", ""],
    ids=["a-lease-key", "an-old-format-key"],
)
async def test_keys_that_are_not_entries_are_refused(teams: tuple[Sidecar, Sidecar], suffix: str) -> None:
    team_a, _ = teams
    key = (await call(team_a))["x-llmcache-key"]
    other = key + suffix if suffix else key.replace("llmc:2:", "llmc:1:", 1)
    for bad in (other, f"llmc:2:{team_a.settings.namespace}:sem:{'0' * 40}", "llmc:epoch:x", "llmc:2:..:e0:anon:x"):
        status, _ = await admin(team_a, "GET", f"/cache/keys/{bad}")
        assert status == 400, bad

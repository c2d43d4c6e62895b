"""A shared Redis backend, and what users see when it goes away: nothing but misses."""

from __future__ import annotations

from pathlib import Path

import openai

from tests import realparts
from tests.conftest import Sidecar, SidecarFactory, Upstream


async def ask(sidecar: Sidecar, text: str) -> tuple[str, str]:
    async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
        return raw.headers["cache-status"], raw.parse().id


async def test_answers_stored_in_redis_are_shared_by_two_sidecars(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server, request
) -> None:
    backend = {"type": "redis", "redis": {"url": redis_server.url}}
    namespace = request.node.name[:60]
    one = await make_sidecar(backend=backend, namespace=namespace)
    two = await make_sidecar(backend=backend, namespace=namespace)

    status_one, id_one = await ask(one, "shared question")
    await one.state.drain(5)  # the write happens after the answer
    status_two, id_two = await ask(two, "shared question")

    assert status_one == "llmcache; fwd=miss; stored"
    assert status_two == "llmcache; hit"
    assert id_two == id_one
    assert upstream.fake.count() == 1


async def test_requests_still_succeed_while_redis_is_down_and_caching_resumes_after(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    with realparts.redis(tmp_path) as redis:
        sidecar = await make_sidecar(backend={"type": "redis", "redis": {"url": redis.url, "timeoutMs": 100}})
        assert (await ask(sidecar, "before"))[0] == "llmcache; fwd=miss; stored"
        await sidecar.state.drain(5)
        assert (await ask(sidecar, "before"))[0] == "llmcache; hit"
        port = redis.port
        redis.stop()

        for i in range(8):  # enough to trip the circuit breaker and to be answered past it
            status, answer_id = await ask(sidecar, f"during {i}")
            assert status == "llmcache; fwd=miss"  # not "stored": nothing can be (issue 14)
            assert answer_id
        assert sidecar.state.runtime.backend.errors >= 1  # type: ignore[attr-defined]

    with realparts.redis(tmp_path, port=port):
        sidecar.state.runtime.backend._open_until = 0  # type: ignore[attr-defined]  # skip the breaker's cooldown
        await ask(sidecar, "after")
        await sidecar.state.drain(5)
        assert (await ask(sidecar, "after"))[0] == "llmcache; hit"


async def test_a_dual_backend_answers_from_memory_after_redis_filled_it(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server, request
) -> None:
    backend = {"type": "dual", "redis": {"url": redis_server.url}}
    namespace = request.node.name[:60]
    writer = await make_sidecar(backend=backend, namespace=namespace)
    reader = await make_sidecar(backend=backend, namespace=namespace)

    await ask(writer, "two tiers")
    await writer.state.drain(5)
    assert (await ask(reader, "two tiers"))[0] == "llmcache; hit"  # from redis, fills memory
    stats = await reader.state.runtime.backend.front.stats()  # type: ignore[attr-defined]
    assert stats.entries == 1

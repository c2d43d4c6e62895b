"""Identical requests in flight at once go upstream once; failures are never shared."""

from __future__ import annotations

import asyncio

import aiohttp
import openai

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.fakes.provider import Behaviour

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "everyone asks this"}]}
URL = "/openai/v1/chat/completions"


async def post_many(sidecar: Sidecar, n: int, body: dict[str, object] = BODY) -> list[tuple[int, str, bytes]]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as http:

        async def one() -> tuple[int, str, bytes]:
            async with http.post(sidecar.url + URL, json=body) as resp:
                return resp.status, resp.headers["Cache-Status"], await resp.read()

        return await asyncio.gather(*(one() for _ in range(n)))


async def test_fifty_identical_requests_reach_the_provider_once(sidecar: Sidecar, upstream: Upstream) -> None:
    upstream.fake.default_delay_ms = 300
    results = await post_many(sidecar, 50)

    assert upstream.fake.count() == 1
    assert {status for status, _, _ in results} == {200}
    assert len({body for _, _, body in results}) == 1
    statuses = [s for _, s, _ in results]
    assert statuses.count("llmcache; fwd=miss; stored") == 1
    assert statuses.count("llmcache; hit; detail=coalesced") == 49


async def test_fifty_identical_streams_reach_the_provider_once_and_all_receive_it(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.default_chunk_delay_ms = 30

    async def stream() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(**BODY, stream=True)  # type: ignore[call-overload]
            text = "".join([ch.choices[0].delta.content or "" async for ch in raw.parse() if ch.choices])
            return text, raw.headers["cache-status"]

    results = await asyncio.gather(*(stream() for _ in range(50)))
    assert upstream.fake.count() == 1
    assert len({text for text, _ in results}) == 1
    assert sum(status == "llmcache; hit; detail=coalesced" for _, status in results) == 49


async def test_a_follower_of_a_stream_receives_it_live_not_after_it_ends(sidecar: Sidecar, upstream: Upstream) -> None:
    upstream.fake.default_chunk_delay_ms = 150
    loop = asyncio.get_running_loop()

    async def first_byte_after() -> float:
        started = loop.time()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as http:
            async with http.post(sidecar.url + URL, json={**BODY, "stream": True}) as resp:
                await resp.content.readany()
                first = loop.time() - started
                await resp.read()
                return first

    leader = asyncio.create_task(first_byte_after())
    await asyncio.sleep(0.2)
    follower_first_byte = await first_byte_after()
    await leader
    # The whole stream takes > 1 s; a follower that waited for its end would see that.
    assert follower_first_byte < 0.5
    assert upstream.fake.count() == 1


async def test_a_leader_that_gets_an_error_does_not_hand_it_to_followers(sidecar: Sidecar, upstream: Upstream) -> None:
    upstream.fake.plan(Behaviour(status=500, delay_ms=300))
    results = await post_many(sidecar, 5)

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 200, 200, 500]
    assert upstream.fake.count() == 5  # the leader's failed call, then one call per follower


async def test_coalescing_can_be_switched_off(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(coalesce={"enabled": False})
    upstream.fake.default_delay_ms = 200
    await post_many(sidecar, 5)
    assert upstream.fake.count() == 5


async def test_a_follower_waits_no_longer_than_max_wait(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(coalesce={"maxWait": "100ms"})
    upstream.fake.plan(Behaviour(delay_ms=1500))
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as http:
        leader = asyncio.create_task(http.post(sidecar.url + URL, json=BODY))
        await asyncio.sleep(0.05)
        started = loop.time()
        async with http.post(sidecar.url + URL, json=BODY) as resp:
            assert resp.status == 200
            took = loop.time() - started
        (await leader).release()
    assert took < 1.0  # it made its own call instead of waiting out the slow leader
    assert upstream.fake.count() == 2


async def test_a_leader_whose_client_hangs_up_still_answers_followers_and_stores(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.default_chunk_delay_ms = 50
    stream_body = {**BODY, "stream": True}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as http:
        leader = await http.post(sidecar.url + URL, json=stream_body)
        await leader.content.readany()
        follower = asyncio.create_task(post_many(sidecar, 1, stream_body))
        await asyncio.sleep(0.05)
        leader.close()  # the leader's client goes away mid-stream
        ((status, cache_status, body),) = await follower
    assert status == 200
    assert cache_status == "llmcache; hit; detail=coalesced"
    assert body.rstrip().endswith(b"data: [DONE]")
    await sidecar.state.drain(5)
    ((_, again, _),) = await post_many(sidecar, 1, stream_body)
    assert again == "llmcache; hit"


async def test_pods_sharing_redis_coalesce_through_a_lease(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server, request
) -> None:
    backend = {"type": "redis", "redis": {"url": redis_server.url}}
    pods = [await make_sidecar(backend=backend, namespace=request.node.name[:60]) for _ in range(3)]
    upstream.fake.default_delay_ms = 400

    results = await asyncio.gather(*(post_many(pod, 3) for pod in pods))
    flat = [r for pod_results in results for r in pod_results]
    assert {status for status, _, _ in flat} == {200}
    assert len({body for _, _, body in flat}) == 1
    assert upstream.fake.count() == 1
    # One pod fetched (its leader a miss, its two followers coalesced in-process); the
    # other two pods waited on its lease and served its stored answer to all of theirs.
    statuses = sorted(s for _, s, _ in flat)
    assert statuses == sorted(
        ["llmcache; fwd=miss; stored"]
        + ["llmcache; hit; detail=coalesced"] * 2
        + ["llmcache; hit; detail=coalesced-peer"] * 6
    )

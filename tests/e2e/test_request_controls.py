"""What a caller can ask of the cache: Cache-Control, x-llmcache-* headers, the body's "cache"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.conftest import Sidecar, Upstream

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def post(
    sidecar: Sidecar, body: dict[str, Any] = BODY, **headers: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Authorization": "Bearer sk-a", **headers}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sidecar.url}/openai/v1/chat/completions", json=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.json()


async def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer(sidecar: Sidecar, upstream: Upstream) -> None:
    _, _, first = await post(sidecar)
    _, headers, fresh = await post(sidecar, **{"Cache-Control": "no-cache"})
    _, after, again = await post(sidecar)

    assert fresh["id"] != first["id"]
    assert headers["Cache-Status"] == "llmcache; fwd=request; stored"
    assert again["id"] == fresh["id"]
    assert after["Cache-Status"] == "llmcache; hit"


async def test_no_store_answers_without_storing(sidecar: Sidecar, upstream: Upstream) -> None:
    _, headers, _ = await post(sidecar, **{"Cache-Control": "no-store"})
    _, second, _ = await post(sidecar)

    assert headers["Cache-Status"] == "llmcache; fwd=miss"
    assert second["Cache-Status"] == "llmcache; fwd=miss; stored"
    assert upstream.fake.count() == 2


async def test_max_age_refuses_an_entry_older_than_asked(sidecar: Sidecar, upstream: Upstream) -> None:
    await post(sidecar)
    await asyncio.sleep(0.05)  # the entry is older than 0 s (max-age counts whole seconds, RFC 9111)
    _, young, _ = await post(sidecar, **{"Cache-Control": "max-age=60"})
    _, old, _ = await post(sidecar, **{"Cache-Control": "max-age=0"})

    assert young["Cache-Status"] == "llmcache; hit"
    assert old["Cache-Status"] == "llmcache; fwd=miss; stored"


async def test_x_llmcache_ttl_sets_how_long_an_answer_is_kept(sidecar: Sidecar, upstream: Upstream) -> None:
    await post(sidecar, **{"x-llmcache-ttl": "500ms"})
    _, soon, _ = await post(sidecar)
    await asyncio.sleep(0.7)
    _, later, _ = await post(sidecar)

    assert soon["Cache-Status"] == "llmcache; hit"
    assert later["Cache-Status"] == "llmcache; fwd=miss; stored"


async def test_x_llmcache_namespace_keeps_entries_apart_below_the_configured_one(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    _, plain, _ = await post(sidecar)
    _, sub, _ = await post(sidecar, **{"x-llmcache-namespace": "experiment-1"})
    _, sub_again, _ = await post(sidecar, **{"x-llmcache-namespace": "experiment-1"})

    assert sub["Cache-Status"].startswith("llmcache; fwd=miss")
    assert sub_again["Cache-Status"] == "llmcache; hit"
    assert sub["x-llmcache-key"].startswith("llmc:2:default/experiment-1:")
    assert plain["x-llmcache-key"].startswith("llmc:2:default:")


async def test_a_namespace_header_that_tries_to_escape_is_refused_and_the_call_still_goes_through(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    status, headers, answer = await post(sidecar, **{"x-llmcache-namespace": "../other:team"})

    assert status == 200
    assert answer["choices"]
    assert headers["Cache-Status"] == "llmcache; fwd=bypass; detail=invalid-namespace"


async def test_a_caller_chosen_key_answers_different_bodies_alike(sidecar: Sidecar, upstream: Upstream) -> None:
    other = {**BODY, "messages": [{"role": "user", "content": "something else"}]}
    _, _, first = await post(sidecar, **{"x-llmcache-key": "greeting"})
    _, headers, second = await post(sidecar, other, **{"x-llmcache-key": "greeting"})

    assert headers["Cache-Status"] == "llmcache; hit"
    assert second["id"] == first["id"]


async def test_litellm_cache_field_in_the_body_is_honoured_and_never_sent_upstream(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    await post(sidecar, {**BODY, "cache": {"no-store": True}})
    _, headers, _ = await post(sidecar, {**BODY, "cache": {"ttl": 60}})
    _, hit, _ = await post(sidecar)

    sent = [json.loads(r.body) for r in upstream.fake.received]
    assert all("cache" not in body for body in sent)
    assert headers["Cache-Status"] == "llmcache; fwd=miss; stored"
    assert hit["Cache-Status"] == "llmcache; hit"


async def test_an_unreadable_ttl_bypasses_the_cache_and_says_why(sidecar: Sidecar, upstream: Upstream) -> None:
    status, headers, _ = await post(sidecar, **{"x-llmcache-ttl": "soon"})

    assert status == 200
    assert headers["Cache-Status"] == "llmcache; fwd=bypass; detail=invalid-x-llmcache-ttl"

"""Serving stale when the provider fails (RFC 5861 stale-if-error), max-stale, and only-if-cached.

Entries are made old with a clock the test controls: the stored entry is written back
with an earlier `created_at` (the backend's own interface), so no test sleeps through
a ttl. The provider fails on demand (tests/fakes: a status, a delay beyond the
sidecar's provider timeout, a hang-up) or is simply not listening.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.fakes.provider import Behaviour, make_fake_provider
from tests.realparts import RedisServer

MESSAGES = [{"role": "user", "content": "Is the provider up?"}]
TTL = 60
STALE_FOR = 30  # how far past its ttl `age` puts an entry
STALE_STATUS = re.compile(r"^llmcache; fwd=stale; fwd-status=(\d+); ttl=-3\d; detail=stale-if-error$")


def oai(sidecar: Sidecar, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0, default_headers=headers
    )


async def ask(sidecar: Sidecar, **headers: str) -> tuple[str, dict[str, str]]:
    """One plain chat completion: its id and the answer's headers."""
    async with oai(sidecar, **headers) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        return raw.parse().id, dict(raw.headers)


async def age(sidecar: Sidecar, key: str, seconds: float) -> None:
    """Make the entry under `key` `seconds` older (its freshness and stale window move with it)."""
    backend = sidecar.state.runtime.backend
    entry = await backend.get(key)
    assert entry is not None
    await backend.set(key, dataclasses.replace(entry, created_at=entry.created_at - seconds), 3600)


async def stored_then_stale(sidecar: Sidecar, **headers: str) -> str:
    """Store an answer, make it STALE_FOR seconds stale; its id."""
    first, answer_headers = await ask(sidecar, **headers)
    await sidecar.state.drain(5)
    await age(sidecar, answer_headers["x-llmcache-key"], TTL + STALE_FOR)
    return first


@pytest.fixture
async def stale_sidecar(make_sidecar: SidecarFactory) -> Sidecar:
    return await make_sidecar(ttl=TTL, staleIfError="10m")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_stale_answer_is_served_when_the_provider_fails_with(
    stale_sidecar: Sidecar, upstream: Upstream, status: int
) -> None:
    first = await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=status))

    again, headers = await ask(stale_sidecar)

    assert again == first
    match = STALE_STATUS.match(headers["cache-status"])
    assert match is not None and int(match.group(1)) == status
    assert int(headers["age"]) >= TTL + STALE_FOR  # beyond the ttl, as it is
    assert upstream.fake.count() == 2  # the provider was asked first


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError)],
)
async def test_a_client_error_from_the_provider_is_never_hidden_by_a_stale_answer(
    stale_sidecar: Sidecar, upstream: Upstream, status: int, error: type[Exception]
) -> None:
    await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=status))
    with pytest.raises(error):
        await ask(stale_sidecar)


async def test_a_stale_answer_is_served_when_the_provider_times_out(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(
        ttl=TTL, staleIfError="10m", providers={"openai": {"upstream": upstream.url, "timeout": "300ms"}}
    )
    first = await stored_then_stale(sidecar)
    upstream.fake.plan(Behaviour(delay_ms=3000))

    again, headers = await ask(sidecar)

    assert again == first
    assert re.match(r"^llmcache; fwd=stale; ttl=-3\d; detail=stale-if-error$", headers["cache-status"])


async def test_a_stale_answer_is_served_when_the_provider_hangs_up(stale_sidecar: Sidecar, upstream: Upstream) -> None:
    first = await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(hang_up=1))
    again, headers = await ask(stale_sidecar)
    assert again == first
    assert headers["cache-status"].startswith("llmcache; fwd=stale; ttl=-")


async def test_a_stale_answer_is_served_when_the_provider_refuses_connections(
    make_sidecar: SidecarFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    provider = await aiohttp_server(make_fake_provider())
    url = str(provider.make_url("")).rstrip("/")
    sidecar = await make_sidecar(ttl=TTL, staleIfError="10m", providers={"openai": {"upstream": url}})
    first = await stored_then_stale(sidecar)
    await provider.close()  # nothing listens there any more: connection refused

    again, headers = await ask(sidecar)

    assert again == first
    assert headers["cache-status"].startswith("llmcache; fwd=stale; ttl=-")


async def test_without_a_stale_entry_a_failed_provider_fails_the_call_as_before(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.plan(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        await ask(stale_sidecar)


async def test_an_entry_past_its_stale_window_is_not_served(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(ttl=TTL, staleIfError="10m")
    _, headers = await ask(sidecar)
    await sidecar.state.drain(5)
    await age(sidecar, headers["x-llmcache-key"], TTL + 601)
    upstream.fake.plan(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        await ask(sidecar)


async def test_with_stale_if_error_off_an_expired_entry_is_gone(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(ttl="300ms")
    await ask(sidecar)
    await sidecar.state.drain(5)
    await asyncio.sleep(0.4)
    upstream.fake.plan(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        await ask(sidecar)


async def test_a_fresh_answer_replaces_a_stale_entry_when_the_provider_is_back(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    first = await stored_then_stale(stale_sidecar)
    fresh, headers = await ask(stale_sidecar)
    await stale_sidecar.state.drain(5)
    again, after = await ask(stale_sidecar)

    assert fresh != first
    assert headers["cache-status"] == "llmcache; fwd=stale; stored"  # RFC 9211: a stale entry was found
    assert (again, after["cache-status"]) == (fresh, "llmcache; hit")


async def test_stale_if_error_on_the_request_keeps_and_serves_an_entry_the_config_would_not(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(ttl=TTL)  # staleIfError: 0
    first = await stored_then_stale(sidecar, **{"Cache-Control": "stale-if-error=600"})
    upstream.fake.plan(Behaviour(status=502))
    again, headers = await ask(sidecar, **{"Cache-Control": "stale-if-error=600"})
    assert again == first
    assert STALE_STATUS.match(headers["cache-status"])


async def test_stale_if_error_zero_on_the_request_turns_it_off_for_that_request(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        await ask(stale_sidecar, **{"Cache-Control": "stale-if-error=0"})


async def test_a_streaming_caller_gets_a_stale_json_entry_as_a_stream(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    first = await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=500))
    async with oai(stale_sidecar) as c:
        async with c.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:  # type: ignore[arg-type]
            final = await stream.get_final_completion()
    assert final.id == first
    assert final.choices[0].message.content


async def test_an_anthropic_caller_gets_a_stale_message_when_the_api_is_overloaded(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    async with anthropic.AsyncAnthropic(base_url=f"{stale_sidecar.url}/anthropic", api_key="k", max_retries=0) as c:
        raw = await c.messages.with_raw_response.create(model="claude-fake", max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        first = await raw.parse()
        await stale_sidecar.state.drain(5)
        await age(stale_sidecar, raw.headers["x-llmcache-key"], TTL + STALE_FOR)
        upstream.fake.plan(Behaviour(status=529))
        async with c.messages.stream(model="claude-fake", max_tokens=64, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            again = await stream.get_final_message()
            status = stream.response.headers["cache-status"]
    assert again.model_dump(exclude_none=True) == first.model_dump(exclude_none=True)
    assert STALE_STATUS.match(status) and "fwd-status=529" in status


async def test_followers_of_a_leader_that_got_a_500_get_the_stale_answer_too(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    first = await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=500, delay_ms=300))

    answers = await asyncio.gather(*(ask(stale_sidecar) for _ in range(5)))

    assert {answer_id for answer_id, _ in answers} == {first}
    assert all(STALE_STATUS.match(headers["cache-status"]) for _, headers in answers)
    assert upstream.fake.count() == 2  # one to store, one that failed for all five


async def test_stale_answers_are_counted_by_reason(stale_sidecar: Sidecar, upstream: Upstream) -> None:
    async def served() -> float:
        async with aiohttp.ClientSession() as http, http.get(f"{stale_sidecar.admin_url}/metrics") as resp:
            text = await resp.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "llmcache_stale_served_total" and sample.labels.get("llmcache_reason") == "429"
        )

    before = await served()
    await stored_then_stale(stale_sidecar)
    upstream.fake.plan(Behaviour(status=429))
    await ask(stale_sidecar)
    assert await served() == before + 1


async def test_a_stale_answer_works_on_redis_too(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server: RedisServer
) -> None:
    backend = {"type": "redis", "redis": {"url": redis_server.url}}
    sidecar = await make_sidecar(ttl=TTL, staleIfError="10m", backend=backend, namespace="stale-on-redis")
    first = await stored_then_stale(sidecar)
    upstream.fake.plan(Behaviour(status=500))
    again, headers = await ask(sidecar)
    assert again == first
    assert STALE_STATUS.match(headers["cache-status"])


# --------------------------------------------------------------------------- max-stale


@pytest.mark.parametrize("directive", ["max-stale=60", "max-stale"])
async def test_max_stale_takes_a_stale_entry_without_asking_the_provider(
    stale_sidecar: Sidecar, upstream: Upstream, directive: str
) -> None:
    first = await stored_then_stale(stale_sidecar)
    again, headers = await ask(stale_sidecar, **{"Cache-Control": directive})
    assert again == first
    assert re.match(r"^llmcache; hit; ttl=-3\d; detail=stale$", headers["cache-status"])
    assert upstream.fake.count() == 1


async def test_max_stale_shorter_than_the_staleness_goes_to_the_provider(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    first = await stored_then_stale(stale_sidecar)
    again, headers = await ask(stale_sidecar, **{"Cache-Control": "max-stale=10"})
    assert again != first
    assert headers["cache-status"] == "llmcache; fwd=stale; stored"


# --------------------------------------------------------------------------- only-if-cached


async def test_only_if_cached_without_an_entry_is_a_504_and_never_reaches_the_provider(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        await ask(sidecar, **{"Cache-Control": "only-if-cached"})
    assert refused.value.status_code == 504
    assert refused.value.response.headers["cache-status"] == "llmcache; detail=only-if-cached"
    assert "only-if-cached" in refused.value.message
    assert upstream.fake.count() == 0


async def test_only_if_cached_with_an_entry_is_a_hit(sidecar: Sidecar, upstream: Upstream) -> None:
    first, _ = await ask(sidecar)
    await sidecar.state.drain(5)
    again, headers = await ask(sidecar, **{"Cache-Control": "only-if-cached"})
    assert (again, headers["cache-status"]) == (first, "llmcache; hit")
    assert upstream.fake.count() == 1


async def test_only_if_cached_refuses_a_stale_entry_unless_max_stale_accepts_it(
    stale_sidecar: Sidecar, upstream: Upstream
) -> None:
    first = await stored_then_stale(stale_sidecar)
    with pytest.raises(openai.APIStatusError) as refused:
        await ask(stale_sidecar, **{"Cache-Control": "only-if-cached"})
    again, _ = await ask(stale_sidecar, **{"Cache-Control": "only-if-cached, max-stale"})
    assert refused.value.status_code == 504
    assert again == first
    assert upstream.fake.count() == 1


async def test_only_if_cached_streams_a_stored_answer_to_a_streaming_caller(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    first, _ = await ask(sidecar)
    await sidecar.state.drain(5)
    async with oai(sidecar, **{"Cache-Control": "only-if-cached"}) as c:
        stream: Any = await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        ids = {chunk.id async for chunk in stream}
    assert ids == {first}
    assert upstream.fake.count() == 1

"""Policy rules, as a platform team writes them, seen through the official SDKs.

Real: the sidecar on a real socket, the openai and anthropic SDKs as clients, a real
redis-server where a TTL is checked. The provider is the local fake (tests/fakes), which
counts the calls that reach it.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
import redis

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.realparts import RedisServer

MESSAGES = [{"role": "user", "content": "Name a colour."}]
DETERMINISTIC_ONLY = {
    "when": "!(has(body.temperature) && body.temperature == 0.0) && !has(body.seed)",
    "action": "bypass",
    "reason": "not-deterministic",
}
NO_EMAIL = {"when": '"send_email" in tools', "action": "bypass", "reason": "sends-email"}
EMAIL_TOOL = {
    "type": "function",
    "function": {"name": "send_email", "parameters": {"type": "object", "properties": {}}},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def openai_client(sidecar: Sidecar, api_key: str = "sk-policy") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key=api_key, max_retries=0)


async def chat(sidecar: Sidecar, **params: Any) -> tuple[str, str]:
    """The answer's id and Cache-Status of one chat completion."""
    async with openai_client(sidecar) as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, **params)
        return raw.parse().id, raw.headers["cache-status"]


async def twice(sidecar: Sidecar, **params: Any) -> list[tuple[str, str]]:
    first = await chat(sidecar, **params)
    await sidecar.state.drain(5)
    return [first, await chat(sidecar, **params)]


async def test_only_requests_with_temperature_zero_or_a_seed_are_cached(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(rules=[DETERMINISTIC_ONLY])

    warm = await twice(sidecar, temperature=0.7)
    cold = await twice(sidecar, temperature=0)
    seeded = await twice(sidecar, temperature=1.2, seed=7)
    unset = await twice(sidecar)

    assert warm[0][0] != warm[1][0]
    assert [status for _, status in warm] == ["llmcache; fwd=bypass; detail=not-deterministic"] * 2
    assert cold[1] == (cold[0][0], "llmcache; hit")
    assert seeded[1] == (seeded[0][0], "llmcache; hit")
    assert unset[1][1] == "llmcache; fwd=bypass; detail=not-deterministic"
    assert upstream.fake.count("/chat/completions") == 2 + 1 + 1 + 2


async def test_requests_whose_tools_include_send_email_are_never_cached(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(rules=[NO_EMAIL])

    emailing = await twice(sidecar, tools=[WEATHER_TOOL, EMAIL_TOOL])
    weather = await twice(sidecar, tools=[WEATHER_TOOL])

    assert [status for _, status in emailing] == ["llmcache; fwd=bypass; detail=sends-email"] * 2
    assert weather[1] == (weather[0][0], "llmcache; hit")
    assert upstream.fake.count("/chat/completions") == 3


async def test_the_tools_rule_reads_anthropic_tools_too(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(rules=[NO_EMAIL])
    tool = {"name": "send_email", "description": "Send an email", "input_schema": {"type": "object"}}
    async with anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key="sk-ant", max_retries=0) as c:
        statuses = []
        for _ in range(2):
            raw = await c.messages.with_raw_response.create(
                model="claude-fake-model", max_tokens=64, messages=MESSAGES, tools=[tool]
            )
            statuses.append(raw.headers["cache-status"])
            await sidecar.state.drain(5)

    assert statuses == ["llmcache; fwd=bypass; detail=sends-email"] * 2
    assert upstream.fake.count("/messages") == 2


async def test_embeddings_are_kept_for_30_days_and_chat_for_an_hour(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    rules = [
        {"when": 'endpoint == "embeddings"', "action": "cache", "ttl": "720h"},
        {"when": 'endpoint == "chat/completions"', "action": "cache", "ttl": "1h"},
    ]
    sidecar = await make_sidecar(
        rules=rules,
        ttl="5m",
        namespace=f"policy-ttl-{request.node.name[-20:]}".replace("_", "-"),
        backend={"type": "redis", "redis": {"url": redis_server.url, "timeoutMs": 5000}},  # no write dropped under load
    )
    async with openai_client(sidecar) as client:
        embedded = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
        chatted = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        completed = await client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
    await sidecar.state.drain(5)

    with redis.Redis.from_url(redis_server.url) as r:
        ttl_of = {name: r.pttl(raw.headers["x-llmcache-key"]) / 1000 for name, raw in
                  (("embeddings", embedded), ("chat", chatted), ("completions", completed))}  # fmt: skip
    assert 30 * 86400 - 60 < ttl_of["embeddings"] <= 30 * 86400
    assert 3600 - 60 < ttl_of["chat"] <= 3600
    assert 300 - 60 < ttl_of["completions"] <= 300  # no rule: the cache's own ttl


async def test_a_caller_can_shorten_a_rule_ttl_but_not_lengthen_it(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    sidecar = await make_sidecar(
        rules=[{"when": "true", "action": "cache", "ttl": "1h"}],
        namespace=f"policy-cap-{request.node.name[-20:]}".replace("_", "-"),
        backend={"type": "redis", "redis": {"url": redis_server.url, "timeoutMs": 5000}},  # no write dropped under load
    )
    keys = []
    async with openai_client(sidecar) as client:
        for ttl, text in (("60", "short"), ("86400", "long")):
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}],
                extra_headers={"x-llmcache-ttl": ttl},
            )
            keys.append(raw.headers["x-llmcache-key"])
    await sidecar.state.drain(5)

    with redis.Redis.from_url(redis_server.url) as r:
        short, long = (r.pttl(k) / 1000 for k in keys)
    assert 0 < short <= 60
    assert 3600 - 60 < long <= 3600


async def test_a_responses_request_with_a_conversation_always_goes_to_the_provider(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    """Built in, with no rule configured: a conversation is state the provider changes on every turn."""
    async with openai_client(sidecar) as client:
        answers = []
        for _ in range(2):
            raw = await client.responses.with_raw_response.create(
                model="gpt-4o-mini", input="Next step?", conversation="conv_123"
            )
            answers.append((raw.parse().id, raw.headers["cache-status"]))
            await sidecar.state.drain(5)

    assert answers[0][0] != answers[1][0]
    assert [status for _, status in answers] == ["llmcache; fwd=bypass; detail=conversation"] * 2
    assert upstream.fake.count("/responses") == 2


async def test_previous_response_id_and_store_true_are_cached_by_default(sidecar: Sidecar, upstream: Upstream) -> None:
    """Immutable provider state: the same request gets the same answer, whose id the provider did store."""
    async with openai_client(sidecar) as client:
        first = await client.responses.create(model="gpt-4o-mini", input="Hello", store=True)
        await sidecar.state.drain(5)
        answers = []
        for _ in range(2):
            raw = await client.responses.with_raw_response.create(
                model="gpt-4o-mini", input="And then?", previous_response_id=first.id, store=True
            )
            answers.append((raw.parse().id, raw.headers["cache-status"]))
            await sidecar.state.drain(5)

    assert answers[1] == (answers[0][0], "llmcache; hit")
    assert upstream.fake.count("/responses") == 2


async def test_a_rule_that_cannot_be_read_on_a_request_bypasses_the_cache(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    """`body.temperature` on a body without one is an error at evaluation: the safe side is upstream."""
    sidecar = await make_sidecar(rules=[{"when": "body.temperature > 0.5", "action": "bypass", "reason": "warm"}])

    unset = await twice(sidecar)
    cold = await twice(sidecar, temperature=0)

    assert [status for _, status in unset] == ["llmcache; fwd=bypass; detail=rule-0-error"] * 2
    assert cold[1] == (cold[0][0], "llmcache; hit")


async def test_the_first_matching_rule_with_an_action_decides(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(
        rules=[
            {"when": 'model == "gpt-4o-mini"', "semantic": False},
            {"when": 'model.startsWith("gpt-4o")', "action": "bypass"},
            {"when": "true", "action": "cache"},
        ]
    )

    mini = await twice(sidecar)

    assert [status for _, status in mini] == ["llmcache; fwd=bypass; detail=rule-1"] * 2

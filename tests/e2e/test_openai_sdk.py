"""The official openai SDK, pointed at the sidecar with a base URL, as users do."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.fakes.provider import Behaviour

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def client(sidecar: Sidecar, api_key: str = "sk-test-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key=api_key, max_retries=0)


async def chat(sidecar: Sidecar, api_key: str = "sk-test-a", **params: object):
    params = {"model": "gpt-4o-mini", "messages": MESSAGES, **params}
    async with client(sidecar, api_key) as c:
        raw = await c.chat.completions.with_raw_response.create(**params)  # type: ignore[call-overload]
        return raw.headers, raw.parse()


async def test_a_repeated_chat_completion_is_answered_from_the_cache(sidecar: Sidecar, upstream: Upstream) -> None:
    first_headers, first = await chat(sidecar)
    second_headers, second = await chat(sidecar)

    assert upstream.fake.count("/chat/completions") == 1
    assert second.id == first.id
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage == first.usage
    assert first_headers["cache-status"] == "llmcache; fwd=miss; stored"
    assert second_headers["cache-status"] == "llmcache; hit"
    assert int(second_headers["age"]) >= 0
    assert first_headers["x-llmcache-key"] == second_headers["x-llmcache-key"]
    assert first_headers["x-llmcache-key"].startswith("llmc:2:default:e0:")


async def test_a_hit_returns_the_original_body_bytes_and_content_type(sidecar: Sidecar, upstream: Upstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as http:
        async with http.post(f"{sidecar.url}/openai/v1/chat/completions", json=body) as r1:
            miss = await r1.read()
        async with http.post(f"{sidecar.url}/openai/v1/chat/completions", json=body) as r2:
            hit = await r2.read()
            assert r2.status == 200
            assert r2.headers["Content-Type"] == r1.headers["Content-Type"]
    assert hit == miss


async def test_key_order_and_whitespace_do_not_make_a_new_entry(sidecar: Sidecar, upstream: Upstream) -> None:
    compact = json.dumps({"model": "m", "messages": MESSAGES, "temperature": 0}, separators=(",", ":"))
    spaced = json.dumps({"temperature": 0, "messages": MESSAGES, "model": "m"}, indent=4)
    async with aiohttp.ClientSession(
        headers={"Authorization": "Bearer sk-a", "Content-Type": "application/json"}
    ) as http:
        for body in (compact, spaced):
            async with http.post(f"{sidecar.url}/openai/v1/chat/completions", data=body) as resp:
                assert resp.status == 200
                status = resp.headers["Cache-Status"]
    assert status == "llmcache; hit"
    assert upstream.fake.count("/chat/completions") == 1


async def test_two_api_keys_never_share_an_entry(sidecar: Sidecar, upstream: Upstream) -> None:
    _, first = await chat(sidecar, api_key="sk-tenant-a")
    headers, second = await chat(sidecar, api_key="sk-tenant-b")

    assert second.id != first.id
    assert headers["cache-status"].startswith("llmcache; fwd=miss")
    assert upstream.fake.count("/chat/completions") == 2


async def test_namespace_isolation_shares_answers_between_api_keys(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(isolation="namespace")
    _, first = await chat(sidecar, api_key="sk-tenant-a")
    headers, second = await chat(sidecar, api_key="sk-tenant-b")

    assert second.id == first.id
    assert headers["cache-status"] == "llmcache; hit"


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"temperature": 0.7},
        {"max_tokens": 5},
        {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
        {"messages": [{"role": "system", "content": "Answer in French."}, *MESSAGES]},
    ],
    ids=["model", "temperature", "max_tokens", "prompt", "system-prompt"],
)
async def test_a_different_model_or_parameter_is_never_answered_from_another_entry(
    sidecar: Sidecar, upstream: Upstream, change: dict[str, object]
) -> None:
    _, first = await chat(sidecar)
    headers, second = await chat(sidecar, **change)

    assert second.id != first.id
    assert headers["cache-status"].startswith("llmcache; fwd=miss")


async def test_excluded_fields_such_as_user_do_not_change_the_key(sidecar: Sidecar, upstream: Upstream) -> None:
    _, first = await chat(sidecar, user="alice")
    headers, second = await chat(sidecar, user="bob")

    assert second.id == first.id
    assert headers["cache-status"] == "llmcache; hit"


async def test_include_list_keys_only_on_the_named_fields(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(keyParams={"include": ["model", "messages"]})
    _, first = await chat(sidecar, temperature=0.1)
    headers, second = await chat(sidecar, temperature=0.9)

    assert second.id == first.id
    assert headers["cache-status"] == "llmcache; hit"


@pytest.mark.parametrize("status", [400, 429, 500])
async def test_error_answers_reach_the_caller_and_are_never_stored(
    sidecar: Sidecar, upstream: Upstream, status: int
) -> None:
    upstream.fake.plan(Behaviour(status=status))
    with pytest.raises(openai.APIStatusError) as error:
        await chat(sidecar)
    assert error.value.status_code == status

    headers, answer = await chat(sidecar)
    assert answer.choices[0].message.content
    assert headers["cache-status"] == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2


async def test_embeddings_are_cached(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        first = await c.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog"])
        second = await c.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog"])
    assert [e.embedding for e in second.data] == [e.embedding for e in first.data]
    assert upstream.fake.count("/embeddings") == 1


async def test_legacy_completions_are_cached(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        first = await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
        second = await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert second.id == first.id
    assert upstream.fake.count("/completions") == 1


async def test_responses_api_answers_are_cached(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        first = await c.responses.create(model="gpt-4o-mini", input="Tell me a joke")
        second = await c.responses.create(model="gpt-4o-mini", input="Tell me a joke")
    assert second.id == first.id
    assert second.output_text == first.output_text
    assert upstream.fake.count("/responses") == 1


async def test_requests_that_are_not_cacheable_pass_through_untouched(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sidecar.url}/openai/v1/models", headers={"Authorization": "Bearer k"}) as resp:
                assert resp.status == 200
                assert "Cache-Status" not in resp.headers
        models = await c.models.list()
    assert models.data
    assert upstream.fake.count("/models") == 2


async def test_concurrent_distinct_requests_each_get_their_own_answer(sidecar: Sidecar, upstream: Upstream) -> None:
    async def ask(i: int) -> str:
        _, answer = await chat(sidecar, messages=[{"role": "user", "content": f"question {i}"}])
        return answer.choices[0].message.content or ""

    answers = await asyncio.gather(*(ask(i) for i in range(20)))
    for i, text in enumerate(answers):
        assert text.endswith(f"question {i}")

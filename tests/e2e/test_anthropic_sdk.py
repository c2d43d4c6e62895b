"""The official anthropic SDK through the sidecar (ANTHROPIC_BASE_URL style)."""

from __future__ import annotations

import inspect

import anthropic

from tests.conftest import Sidecar, Upstream


def client(sidecar: Sidecar, api_key: str = "sk-ant-a", **kwargs: object) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key=api_key, max_retries=0, **kwargs)  # type: ignore[arg-type]


async def ask(c: anthropic.AsyncAnthropic, text: str = "Name a prime number.", **params: object):
    raw = await c.messages.with_raw_response.create(
        model="claude-fake-model",
        max_tokens=64,
        messages=[{"role": "user", "content": text}],
        **params,  # type: ignore[arg-type]
    )
    parsed = raw.parse()
    return raw.headers, (await parsed) if inspect.isawaitable(parsed) else parsed


async def test_a_repeated_message_is_answered_from_the_cache(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        h1, first = await ask(c)
        h2, second = await ask(c)

    assert second.id == first.id
    assert second.content == first.content
    assert second.usage.input_tokens == first.usage.input_tokens
    assert h1["cache-status"] == "llmcache; fwd=miss; stored"
    assert h2["cache-status"] == "llmcache; hit"
    assert upstream.fake.count("/v1/messages") == 1


async def test_two_anthropic_api_keys_never_share_an_entry(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar, "sk-ant-a") as a, client(sidecar, "sk-ant-b") as b:
        _, first = await ask(a)
        _, second = await ask(b)
    assert second.id != first.id


async def test_a_different_anthropic_beta_header_is_a_different_entry(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as plain, client(sidecar, default_headers={"anthropic-beta": "some-feature"}) as beta:
        _, first = await ask(plain)
        headers, second = await ask(beta)
    assert second.id != first.id
    assert headers["cache-status"].startswith("llmcache; fwd=miss")


async def test_a_different_system_prompt_is_a_different_entry(sidecar: Sidecar, upstream: Upstream) -> None:
    async with client(sidecar) as c:
        _, first = await ask(c)
        _, second = await ask(c, system="You are terse.")
    assert second.id != first.id

"""One entry, two renderings: a streamed caller is answered from a stored JSON answer, and the reverse.

Each test asks twice through an official SDK, once in each delivery, and checks that
the second call is a hit that reads exactly as the provider's own answer in that
delivery would: the SDK's streaming helpers (`chat.completions.stream`,
`responses.stream`, anthropic's `messages.stream`) see the same text, tool calls and
usage as on a real stream, and a plain call gets the same object as a real JSON
answer. "The same" is checked against the fake provider's real answer in that delivery
(a second sidecar with shared entries off asks it), with the per-call serial number
that the fake puts in ids and text written as N.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import anthropic
import httpx
import openai
import pytest

from tests.conftest import Sidecar, SidecarFactory, Upstream

MESSAGES = [{"role": "user", "content": "Render me both ways"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
_SERIAL = re.compile(r"(fake[-_]|#|\"serial\": ?|'serial': )\d+")


def same(value: Any) -> Any:
    """A parsed answer with the fake's serial numbers (and creation times) written as N."""
    if isinstance(value, dict):
        return {
            k: "N" if k == "serial" else same(v)
            for k, v in value.items()
            if k not in ("created", "created_at", "completed_at")
        }
    if isinstance(value, list):
        return [same(v) for v in value]
    if isinstance(value, str):
        return _SERIAL.sub(lambda m: m.group(1) + "N", value)
    return value


def oai(sidecar: Sidecar, seen: list[str] | None = None) -> openai.AsyncOpenAI:
    """An OpenAI client; the `Cache-Status` of each answer goes into `seen` (the helpers hide headers)."""

    async def record(response: httpx.Response) -> None:
        if seen is not None:
            seen.append(response.headers.get("cache-status", ""))

    http = httpx.AsyncClient(event_hooks={"response": [record]})
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0, http_client=http)


def claude(sidecar: Sidecar) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key="k", max_retries=0)


@pytest.fixture
async def real(make_sidecar: SidecarFactory) -> Sidecar:
    """A sidecar that never shares entries and caches nothing: the provider's own answers."""
    return await make_sidecar(shareStreamEntries=False, namespace="real")


# --------------------------------------------------------------------------- chat completions


async def chat_helper(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], list[str], str]:
    """The SDK's `chat.completions.stream` helper: final completion, event types, Cache-Status."""
    seen: list[str] = []
    async with oai(sidecar, seen) as c:
        async with c.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, **params) as stream:  # type: ignore[arg-type]
            kinds = [event.type async for event in stream]
            final = await stream.get_final_completion()
    return final.model_dump(exclude_none=True), sorted(set(kinds)), seen[0]


async def chat_plain(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], str]:
    async with oai(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, **params)
        return raw.parse().model_dump(exclude_none=True), raw.headers["cache-status"]


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["text", "tool-call"])
@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
async def test_the_chat_stream_helper_on_a_stored_json_answer_sees_what_a_real_stream_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any, include_usage: bool
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    stored, _ = await chat_plain(sidecar, **extra)
    await sidecar.state.drain(5)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}

    final, kinds, status = await chat_helper(sidecar, **extra, **options)
    real_final, real_kinds, _ = await chat_helper(real, **extra, **options)

    assert status == "llmcache; hit"
    assert upstream.fake.count("/chat/completions") == 2  # the first call, and the real stream
    assert same(final) == same(real_final)
    assert kinds == real_kinds
    message = final["choices"][0]["message"]
    assert message.get("content") == stored["choices"][0]["message"].get("content")
    assert message.get("tool_calls", []) == [
        {**call, "index": i} for i, call in enumerate(stored["choices"][0]["message"].get("tool_calls", []))
    ]
    assert final.get("usage") == (stored["usage"] if include_usage else None)


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["text", "tool-call"])
async def test_a_plain_chat_call_on_a_stored_stream_gets_what_a_real_json_answer_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    streamed, _, _ = await chat_helper(sidecar, stream_options={"include_usage": True}, **extra)
    await sidecar.state.drain(5)

    answer, status = await chat_plain(sidecar, **extra)
    real_answer, _ = await chat_plain(real, **extra)

    assert status == "llmcache; hit"
    assert same(answer) == same(real_answer)
    assert answer["id"] == streamed["id"]
    assert answer["usage"] == streamed["usage"]


async def test_a_stored_stream_without_usage_cannot_answer_a_plain_call_so_the_provider_does(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    await chat_helper(sidecar)  # no include_usage: the stream never says how many tokens
    await sidecar.state.drain(5)

    _, status = await chat_plain(sidecar)
    await sidecar.state.drain(5)
    final, _, again = await chat_helper(sidecar, stream_options={"include_usage": True})

    assert status == "llmcache; fwd=miss; stored"  # never a JSON answer without its usage
    assert again == "llmcache; hit"  # the JSON answer now serves streams too, usage included
    assert final["usage"]["total_tokens"] > 0
    assert upstream.fake.count() == 2


async def test_a_stream_without_include_usage_never_gets_the_usage_chunk_from_a_stored_stream_with_it(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    await chat_helper(sidecar, stream_options={"include_usage": True})
    await sidecar.state.drain(5)
    async with oai(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[call-overload]
        chunks = [chunk async for chunk in raw.parse()]

    assert raw.headers["cache-status"] == "llmcache; hit"
    assert all(chunk.choices for chunk in chunks)  # `chunk.choices[0]` works on every chunk, as upstream
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks).startswith("Echo #1")


async def test_a_stream_that_asks_for_usage_is_not_answered_by_a_stored_stream_without_it(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    await chat_helper(sidecar)
    await sidecar.state.drain(5)
    final, _, status = await chat_helper(sidecar, stream_options={"include_usage": True})
    assert status == "llmcache; fwd=miss; stored"
    assert final["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    "params",
    [{"n": 2}, {"logprobs": True}, {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}],
    ids=["n-2", "logprobs", "audio"],
)
async def test_chat_requests_whose_deliveries_differ_keep_separate_entries(
    sidecar: Sidecar, upstream: Upstream, params: dict[str, Any]
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **params}
    url = f"{sidecar.url}/openai/v1/chat/completions"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as http:
        async with http.post(url, json=body) as resp:
            await resp.read()
        await sidecar.state.drain(5)
        async with http.post(url, json={**body, "stream": True}) as resp:
            await resp.read()
            status = resp.headers["Cache-Status"]
    assert status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count() == 2


# --------------------------------------------------------------------------- Responses API


async def responses_helper(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], str, str]:
    """The SDK's `responses.stream` helper: final response, the text (or arguments) its deltas add up to,
    Cache-Status."""
    seen: list[str] = []
    async with oai(sidecar, seen) as c:
        async with c.responses.stream(model="gpt-4o-mini", input="Render a response", **params) as stream:
            deltas = ("response.output_text.delta", "response.function_call_arguments.delta")
            text = "".join([e.delta async for e in stream if e.type in deltas])
            final = await stream.get_final_response()
    return final.model_dump(exclude_none=True), text, seen[0]


async def responses_plain(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], str]:
    async with oai(sidecar) as c:
        raw = await c.responses.with_raw_response.create(model="gpt-4o-mini", input="Render a response", **params)
        return raw.parse().model_dump(exclude_none=True), raw.headers["cache-status"]


@pytest.mark.parametrize("tools", [None, RESPONSES_TOOLS], ids=["text", "function-call"])
async def test_the_responses_stream_helper_on_a_stored_json_response_sees_what_a_real_stream_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    stored, _ = await responses_plain(sidecar, **extra)
    await sidecar.state.drain(5)

    final, text, status = await responses_helper(sidecar, **extra)
    real_final, real_text, _ = await responses_helper(real, **extra)

    assert status == "llmcache; hit"
    assert same(final) == same(real_final)
    assert same(text) == same(real_text)
    assert final["output"] == stored["output"]
    assert final["usage"] == stored["usage"]
    if tools:
        assert final["output"][0]["type"] == "function_call" and final["output"][0]["arguments"]
    else:
        assert text == stored["output"][0]["content"][0]["text"]


@pytest.mark.parametrize("tools", [None, RESPONSES_TOOLS], ids=["text", "function-call"])
async def test_a_plain_responses_call_on_a_stored_stream_gets_what_a_real_json_response_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    streamed, _, _ = await responses_helper(sidecar, **extra)
    await sidecar.state.drain(5)

    answer, status = await responses_plain(sidecar, **extra)
    real_answer, _ = await responses_plain(real, **extra)

    assert status == "llmcache; hit"
    assert same(answer) == same(real_answer)
    assert answer["id"] == streamed["id"]


async def test_responses_with_a_built_in_tool_keep_separate_entries(sidecar: Sidecar, upstream: Upstream) -> None:
    tools = [{"type": "web_search"}]
    await responses_plain(sidecar, tools=tools)
    await sidecar.state.drain(5)
    _, _, status = await responses_helper(sidecar, tools=tools)
    assert status == "llmcache; fwd=miss; stored"


# --------------------------------------------------------------------------- Anthropic messages


async def anthropic_helper(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], str, list[str], str]:
    """anthropic's `messages.stream` helper: final message, its text stream, event types, Cache-Status."""
    async with claude(sidecar) as c:
        async with c.messages.stream(model="claude-fake", max_tokens=64, messages=MESSAGES, **params) as stream:  # type: ignore[arg-type]
            kinds, text = [], ""
            async for event in stream:
                kinds.append(event.type)
                if event.type == "text":
                    text += event.text
            final = await stream.get_final_message()
        status = stream.response.headers["cache-status"]
    return final.model_dump(exclude_none=True), text, sorted(set(kinds) - {"ping"}), status


async def anthropic_plain(sidecar: Sidecar, **params: Any) -> tuple[dict[str, Any], str]:
    async with claude(sidecar) as c:
        raw = await c.messages.with_raw_response.create(model="claude-fake", max_tokens=64, messages=MESSAGES, **params)  # type: ignore[arg-type]
        return (await raw.parse()).model_dump(exclude_none=True), raw.headers["cache-status"]


@pytest.mark.parametrize("tools", [None, ANTHROPIC_TOOLS], ids=["text", "tool-use"])
async def test_the_anthropic_stream_helper_on_a_stored_json_message_sees_what_a_real_stream_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    stored, _ = await anthropic_plain(sidecar, **extra)
    await sidecar.state.drain(5)

    final, text, kinds, status = await anthropic_helper(sidecar, **extra)
    real_final, real_text, real_kinds, _ = await anthropic_helper(real, **extra)

    assert status == "llmcache; hit"
    assert same(final) == same(real_final)
    assert same(text) == same(real_text)
    assert kinds == real_kinds
    assert final["content"] == stored["content"]
    assert final["usage"] == stored["usage"]


@pytest.mark.parametrize("tools", [None, ANTHROPIC_TOOLS], ids=["text", "tool-use"])
async def test_a_plain_anthropic_call_on_a_stored_stream_gets_what_a_real_json_message_gives(
    sidecar: Sidecar, real: Sidecar, upstream: Upstream, tools: Any
) -> None:
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    streamed, _, _, _ = await anthropic_helper(sidecar, **extra)
    await sidecar.state.drain(5)

    answer, status = await anthropic_plain(sidecar, **extra)
    real_answer, _ = await anthropic_plain(real, **extra)

    assert status == "llmcache; hit"
    assert same(answer) == same(real_answer)
    assert answer == streamed


# --------------------------------------------------------------------------- in flight, and opt-out


async def test_a_streamed_and_a_plain_caller_in_flight_at_once_share_one_upstream_call(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.default_delay_ms = 1000
    (stream_final, _, stream_status), (plain, plain_status) = await asyncio.gather(
        chat_helper(sidecar, stream_options={"include_usage": True}),
        _behind_a_leader(sidecar, chat_plain(sidecar)),
    )
    assert upstream.fake.count() == 1
    assert stream_status == "llmcache; fwd=miss; stored"
    assert plain_status == "llmcache; hit; detail=coalesced"
    assert plain["id"] == stream_final["id"]
    assert plain["choices"][0]["message"]["content"] == stream_final["choices"][0]["message"]["content"]
    assert plain["usage"] == stream_final["usage"]


async def test_a_plain_leader_in_flight_answers_a_streamed_follower_rendered(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.default_delay_ms = 1000
    (plain, _), (final, _, status) = await asyncio.gather(
        chat_plain(sidecar), _behind_a_leader(sidecar, chat_helper(sidecar, stream_options={"include_usage": True}))
    )
    assert upstream.fake.count() == 1
    assert status == "llmcache; hit; detail=coalesced"
    assert final["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert final["usage"] == plain["usage"]


async def test_a_follower_that_asks_for_usage_a_leaders_stream_lacks_makes_its_own_call(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.default_delay_ms = 1000
    _, (final, _, status) = await asyncio.gather(
        chat_helper(sidecar), _behind_a_leader(sidecar, chat_helper(sidecar, stream_options={"include_usage": True}))
    )
    assert upstream.fake.count() == 2
    assert status.startswith("llmcache; fwd=miss")
    assert final["usage"]["total_tokens"] > 0


async def _behind_a_leader(sidecar: Sidecar, aw: Any) -> Any:
    """Run `aw` once the other caller leads a flight (no sleep: the flight is there or not)."""
    while not len(sidecar.state.coalescer):
        await asyncio.sleep(0.005)
    return await aw


async def test_with_shared_entries_off_a_stored_json_answer_never_answers_a_stream(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(shareStreamEntries=False)
    await anthropic_plain(sidecar)
    await sidecar.state.drain(5)
    _, _, _, status = await anthropic_helper(sidecar)
    assert status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count() == 2

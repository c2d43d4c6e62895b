"""Streamed answers (Server-Sent Events): recorded while they pass, replayed on a hit."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.fakes.provider import Behaviour

MESSAGES = [{"role": "user", "content": "Tell me about streams"}]


def oai(sidecar: Sidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0)


async def stream_chat(sidecar: Sidecar, **params: object) -> tuple[str, str, object, str]:
    """Text, chunk ids, usage and Cache-Status of one streamed chat completion."""
    async with oai(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **params,  # type: ignore[call-overload]
        )
        stream = raw.parse()
        text, ids, usage = [], set(), None
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        return "".join(text), ",".join(sorted(ids)), usage, raw.headers["cache-status"]


async def test_a_streamed_chat_completion_is_replayed_with_the_same_text_and_usage(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    text, ids, usage, status = await stream_chat(sidecar)
    await sidecar.state.drain(5)
    text2, ids2, usage2, status2 = await stream_chat(sidecar)

    assert (text2, ids2, usage2) == (text, ids, usage)
    assert text and usage is not None
    assert status == "llmcache; fwd=miss; stored"
    assert status2 == "llmcache; hit"
    assert upstream.fake.count("/chat/completions") == 1


async def test_streamed_tool_calls_are_replayed_whole(sidecar: Sidecar, upstream: Upstream) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    async def tool_call() -> tuple[str, str]:
        async with oai(sidecar) as c:
            stream = await c.chat.completions.create(model="m", messages=MESSAGES, tools=tools, stream=True)  # type: ignore[arg-type]
            name, args = "", ""
            async for chunk in stream:
                for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    name += call.function.name or "" if call.function else ""
                    args += call.function.arguments or "" if call.function else ""
            return name, args

    first = await tool_call()
    await sidecar.state.drain(5)
    assert await tool_call() == first
    assert first[0] == "get_weather"
    assert upstream.fake.count() == 1


async def test_with_shared_entries_off_the_same_prompt_streamed_and_not_streamed_are_separate_entries(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(shareStreamEntries=False)
    await stream_chat(sidecar)
    await sidecar.state.drain(5)
    async with oai(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["cache-status"].startswith("llmcache; fwd=miss")


async def test_with_shared_entries_off_stream_options_are_part_of_the_key(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(shareStreamEntries=False)
    await stream_chat(sidecar)
    await sidecar.state.drain(5)
    async with oai(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[call-overload]
        async for _ in raw.parse():
            pass
    assert raw.headers["cache-status"].startswith("llmcache; fwd=miss")


async def test_a_stream_the_provider_cuts_is_not_stored_and_the_caller_sees_the_break(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    upstream.fake.plan(Behaviour(cut_after=2))
    with pytest.raises(openai.APIConnectionError):  # a broken connection, never a clean short stream
        await stream_chat(sidecar)
    await sidecar.state.drain(5)

    text, _, usage, status = await stream_chat(sidecar)
    assert status == "llmcache; fwd=miss; stored"
    assert text and usage is not None
    assert upstream.fake.count() == 2


async def test_a_stream_with_an_error_event_is_not_stored(sidecar: Sidecar, upstream: Upstream) -> None:
    upstream.fake.plan(Behaviour(error_after=2))
    with pytest.raises(openai.APIError):
        await stream_chat(sidecar)
    await sidecar.state.drain(5)
    _, _, _, status = await stream_chat(sidecar)
    assert status == "llmcache; fwd=miss; stored"


async def test_a_miss_streams_chunk_by_chunk_without_waiting_for_the_end(sidecar: Sidecar, upstream: Upstream) -> None:
    upstream.fake.default_chunk_delay_ms = 100
    async with oai(sidecar) as c:
        started = time.monotonic()
        stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[call-overload]
        arrivals = [time.monotonic() - started async for _ in stream]
    # The first chunk arrives long before the last: nothing buffered the whole answer.
    assert arrivals[-1] - arrivals[0] >= 0.1 * (len(arrivals) - 2)


async def test_paced_replay_keeps_the_original_gaps(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(replay="paced")
    upstream.fake.default_chunk_delay_ms = 60
    await stream_chat(sidecar)
    await sidecar.state.drain(5)
    started = time.monotonic()
    _, _, _, status = await stream_chat(sidecar)
    took = time.monotonic() - started

    entry = await sidecar.state.runtime.backend.get(_only_key(sidecar))
    assert status == "llmcache; hit"
    assert entry is not None
    assert took >= entry.chunk_times[-1][1] * 0.9


def _only_key(sidecar: Sidecar) -> str:
    items = sidecar.state.runtime.backend._items  # type: ignore[attr-defined]
    (key,) = items
    return key


async def test_an_anthropic_stream_is_replayed_through_the_sdk_helper(sidecar: Sidecar, upstream: Upstream) -> None:
    async def run() -> tuple[str, int, int]:
        async with anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key="k", max_retries=0) as c:
            async with c.messages.stream(
                model="claude-fake-model", max_tokens=50, messages=[{"role": "user", "content": "Stream me"}]
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
        return text, final.usage.input_tokens, final.usage.output_tokens

    first = await run()
    await sidecar.state.drain(5)
    second = await run()
    assert second == first
    assert first[0]
    assert upstream.fake.count("/v1/messages") == 1


async def test_a_responses_api_stream_is_replayed(sidecar: Sidecar, upstream: Upstream) -> None:
    async def run() -> tuple[str, str]:
        async with oai(sidecar) as c:
            stream = await c.responses.create(model="gpt-4o-mini", input="stream a response", stream=True)
            text, final_id = "", ""
            async for event in stream:
                if event.type == "response.output_text.delta":
                    text += event.delta
                if event.type == "response.completed":
                    final_id = event.response.id
        return text, final_id

    first = await run()
    await sidecar.state.drain(5)
    assert await run() == first
    assert upstream.fake.count("/responses") == 1

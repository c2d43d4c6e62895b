"""The fake provider, driven by the official SDKs pointed straight at it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from pytest_aiohttp import AiohttpClient, AiohttpServer

from tests.fakes.provider import (
    FAKE,
    Behaviour,
    FakeProvider,
    Received,
    make_fake_provider,
)

# google-genai's aiohttp transport subclasses aiohttp.ClientSession, which aiohttp deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged:DeprecationWarning"
)

USER: Any = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(make_fake_provider())


@pytest.fixture
def fake(server: TestServer) -> FakeProvider:
    return server.app[FAKE]


@pytest.fixture
def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http(aiohttp_client: AiohttpClient, server: TestServer) -> TestClient[Any, Any]:
    return await aiohttp_client(server)


@pytest.fixture
async def oai(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key="sk-test", base_url=f"{url}/v1", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=url, max_retries=0) as client:
        yield client


@pytest.fixture(params=["aiohttp", "httpx2"])
async def gemini(url: str, request: pytest.FixtureRequest) -> AsyncIterator[genai.client.AsyncClient]:
    """google-genai's async client, on each of its two transports (aiohttp is its default when installed)."""
    async with httpx2.AsyncClient() as transport:
        options = genai_types.HttpOptions(
            base_url=url,
            api_version="v1beta",
            httpx_async_client=transport if request.param == "httpx2" else None,
        )
        client = genai.Client(api_key="gem-test", http_options=options)
        try:
            yield client.aio
        finally:
            await client.aio.aclose()
            client.close()


# --------------------------------------------------------------------------- OpenAI


async def test_chat_json(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.id == "chatcmpl-fake-1"
    assert reply.model == "gpt-4o-mini"
    assert reply.choices[0].message.content == "Echo #1: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
        reply.usage.total_tokens,
    ) == (2, 4, 6)


async def test_chat_stream_with_usage(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo #1: hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_without_usage(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices and c.usage is None for c in chunks)


async def test_chat_tool_call_json(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(model="m", messages=USER, tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_fake_1" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"echo": "hello there", "serial": 1}


async def test_chat_tool_call_streamed(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="m", messages=USER, tools=[WEATHER_TOOL], stream=True)
    deltas = [c.choices[0].delta for c in [chunk async for chunk in stream]]
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert calls[0].id == "call_fake_1" and calls[0].function and calls[0].function.name == "get_weather"
    arguments = "".join(call.function.arguments or "" for call in calls if call.function)
    assert len(calls) > 2  # really streamed in pieces
    assert json.loads(arguments) == {"echo": "hello there", "serial": 1}


async def test_chat_stream_helper_accumulates(oai: openai.AsyncOpenAI) -> None:
    async with oai.chat.completions.stream(model="m", messages=USER) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "Echo #1: hello there"


async def test_legacy_completions(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    assert reply.id == "cmpl-fake-1" and reply.choices[0].text == "Echo #1: say hi"
    stream = await oai.completions.create(model="m", prompt="say hi", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == "Echo #2: say hi"


async def test_embeddings(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    default = await oai.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog", "a cat"])
    assert fake.received[-1].json()["encoding_format"] == "base64"  # what the SDK asks for by default
    vectors = [item.embedding for item in default.data]
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert vectors[0] == vectors[2] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-5
    as_floats = await oai.embeddings.create(model="m", input="a cat", encoding_format="float")
    assert as_floats.data[0].embedding == vectors[0]  # base64 and float agree exactly
    assert as_floats.usage.prompt_tokens == 2
    wide = await oai.embeddings.create(model="m", input="a cat", dimensions=32)
    assert len(wide.data[0].embedding) == 32


async def test_embeddings_serial_header(oai: openai.AsyncOpenAI) -> None:
    first = await oai.embeddings.with_raw_response.create(model="m", input="x")
    second = await oai.embeddings.with_raw_response.create(model="m", input="x")
    assert (first.headers["x-fake-serial"], second.headers["x-fake-serial"]) == (
        "1",
        "2",
    )


async def test_responses_json(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.responses.create(model="gpt-4o-mini", input="hello there", instructions="be brief")
    assert reply.id == "resp_fake_1" and reply.status == "completed"
    assert reply.output_text == "Echo #1: hello there"
    assert reply.usage is not None and reply.usage.input_tokens == 4 and reply.usage.output_tokens == 4


async def test_responses_stream(oai: openai.AsyncOpenAI, http: TestClient[Any, Any]) -> None:
    stream = await oai.responses.create(model="m", input=[{"role": "user", "content": "hello there"}], stream=True)
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo #1: hello there"
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == text
    raw = await http.post(
        "/v1/responses",
        json={"input": "x", "stream": True},
        headers={"Authorization": "Bearer k"},
    )
    assert (await raw.text()).startswith("event: response.created\ndata: {")


async def test_responses_function_call_json_and_streamed(oai: openai.AsyncOpenAI) -> None:
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    reply = await oai.responses.create(model="m", input="weather?", tools=tools)
    (item,) = reply.output
    assert item.type == "function_call" and item.name == "get_weather"
    assert json.loads(item.arguments)["echo"] == "weather?"
    async with oai.responses.stream(model="m", input="weather?", tools=tools) as stream:
        deltas = "".join([e.delta async for e in stream if e.type == "response.function_call_arguments.delta"])
        final = await stream.get_final_response()
    (streamed,) = final.output
    assert streamed.type == "function_call" and deltas == streamed.arguments
    assert json.loads(streamed.arguments)["echo"] == "weather?"


async def test_responses_stream_helper(oai: openai.AsyncOpenAI) -> None:
    async with oai.responses.stream(model="m", input="hello there") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Echo #1: hello there"


async def test_models_list(oai: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in oai.models.list()]
    assert "gpt-4o-mini" in models


# --------------------------------------------------------------------------- Azure OpenAI


async def test_azure_chat_and_embeddings(url: str, fake: FakeProvider) -> None:
    async with openai.AsyncAzureOpenAI(
        api_key="az-test", azure_endpoint=url, api_version="2024-10-21", max_retries=0
    ) as client:
        reply = await client.chat.completions.create(model="my-gpt", messages=USER)
        vectors = await client.embeddings.create(model="my-embedder", input="a cat")
    assert reply.choices[0].message.content == "Echo #1: hello there"
    assert len(vectors.data[0].embedding) == 8
    chat, embed = fake.received
    assert chat.path == "/openai/deployments/my-gpt/chat/completions"
    assert embed.path == "/openai/deployments/my-embedder/embeddings"
    assert chat.query == {"api-version": "2024-10-21"} and chat.headers["api-key"] == "az-test"


async def test_azure_refusals(http: TestClient[Any, Any]) -> None:
    path = "/openai/deployments/d/chat/completions"
    no_key = await http.post(f"{path}?api-version=1", json={"messages": USER})
    assert no_key.status == 401 and (await no_key.json())["error"]["code"] == "401"
    no_version = await http.post(path, json={"messages": USER}, headers={"api-key": "k"})
    assert no_version.status == 404


# --------------------------------------------------------------------------- Anthropic


async def test_anthropic_json(claude: anthropic.AsyncAnthropic, fake: FakeProvider) -> None:
    reply = await claude.messages.create(model="claude-x", max_tokens=100, system="be nice", messages=USER)
    assert fake.received[0].headers["authorization"] == "Bearer sk-ant-test"  # this SDK sends no x-api-key
    assert reply.id == "msg_fake_1" and reply.stop_reason == "end_turn"
    assert reply.content[0].type == "text" and reply.content[0].text == "Echo #1: hello there"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (4, 4)


async def test_anthropic_stream_helper(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(model="claude-x", max_tokens=100, messages=USER) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Echo #1: hello there"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 4)


async def test_anthropic_raw_event_order(claude: anthropic.AsyncAnthropic) -> None:
    stream = await claude.messages.create(model="c", max_tokens=10, messages=USER, stream=True)
    types = [event.type async for event in stream]
    deltas = types.count("content_block_delta")
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK skips the ping


async def test_anthropic_tool_use(claude: anthropic.AsyncAnthropic) -> None:
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    reply = await claude.messages.create(model="c", max_tokens=10, messages=USER, tools=tools)
    block = reply.content[0]
    assert reply.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.name == "get_weather" and block.input == {
        "echo": "hello there",
        "serial": 1,
    }
    async with claude.messages.stream(model="c", max_tokens=10, messages=USER, tools=tools) as stream:
        final = await stream.get_final_message()
    streamed = final.content[0]
    assert streamed.type == "tool_use" and streamed.input == {
        "echo": "hello there",
        "serial": 2,
    }


# --------------------------------------------------------------------------- Gemini


async def test_gemini_generate(gemini: genai.client.AsyncClient, fake: FakeProvider) -> None:
    reply = await gemini.models.generate_content(model="gemini-2.0-flash", contents="hello there")
    assert reply.text == "Echo #1: hello there"
    assert reply.response_id == "fake-1"
    assert reply.candidates and reply.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert reply.usage_metadata is not None and reply.usage_metadata.total_token_count == 6
    assert fake.received[0].path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert fake.received[0].headers["x-goog-api-key"] == "gem-test"


async def test_gemini_stream(gemini: genai.client.AsyncClient, fake: FakeProvider) -> None:
    stream = await gemini.models.generate_content_stream(model="gemini-2.0-flash", contents="hello there")
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == "Echo #1: hello there"
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.candidates_token_count == 4
    assert fake.received[0].query == {"alt": "sse"}


async def test_gemini_sdk_default_api_version(url: str, fake: FakeProvider) -> None:
    client = genai.Client(api_key="gem-test", http_options={"base_url": url})
    try:
        reply = await client.aio.models.generate_content(model="gemini-2.0-flash", contents="hi")
    finally:
        await client.aio.aclose()
        client.close()
    assert reply.text == "Echo #1: hi"
    assert fake.received[0].path == "/v1/models/gemini-2.0-flash:generateContent"


async def test_gemini_function_call(gemini: genai.client.AsyncClient) -> None:
    tool = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(name="get_weather")])
    config = genai_types.GenerateContentConfig(tools=[tool])
    reply = await gemini.models.generate_content(model="gemini-2.0-flash", contents="hello there", config=config)
    (call,) = reply.function_calls or []
    assert call.name == "get_weather" and call.args == {
        "echo": "hello there",
        "serial": 1,
    }


async def test_gemini_raw_wire(http: TestClient[Any, Any]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    sse = await http.post(f"{path}?alt=sse&key=k", json=body)
    assert (await sse.text()).endswith("}\r\n\r\n")
    array = await http.post(f"{path}?key=k", json=body)
    assert isinstance(await array.json(), list)
    no_key = await http.post(path, json=body)
    assert no_key.status == 403 and (await no_key.json())["error"]["status"] == "PERMISSION_DENIED"


# --------------------------------------------------------------------------- failures seen through the SDKs


async def test_error_status_raises_matching_sdk_errors(
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    gemini: genai.client.AsyncClient,
    fake: FakeProvider,
) -> None:
    fake.plan(Behaviour(status=429), Behaviour(status=500))
    with pytest.raises(openai.RateLimitError) as rate_limited:
        await oai.chat.completions.create(model="m", messages=USER)
    assert rate_limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        await oai.chat.completions.create(model="m", messages=USER, stream=True)

    fake.plan(Behaviour(status=529))
    with pytest.raises(anthropic.OverloadedError):
        await claude.messages.create(model="c", max_tokens=5, messages=USER)

    fake.plan(Behaviour(status=429))
    with pytest.raises(genai_errors.ClientError) as exhausted:
        await gemini.models.generate_content(model="g", contents="hi")
    assert exhausted.value.code == 429 and exhausted.value.status == "RESOURCE_EXHAUSTED"


async def test_error_status_by_header(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-status": "400"})


async def test_missing_credentials_raise(url: str, claude: anthropic.AsyncAnthropic) -> None:
    async with openai.AsyncOpenAI(api_key="unused", base_url=f"{url}/v1", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.models.list(extra_headers={"Authorization": openai.omit})
    assert isinstance(refused.value.body, dict) and refused.value.body["type"] == "invalid_request_error"
    with pytest.raises(anthropic.AuthenticationError) as denied:
        await claude.messages.create(
            model="c",
            max_tokens=5,
            messages=USER,
            extra_headers={"Authorization": anthropic.omit},
        )
    assert denied.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        },
        "request_id": "req_fake",
    }


async def test_cut_stream_raises_in_each_sdk(
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    gemini: genai.client.AsyncClient,
    fake: FakeProvider,
) -> None:
    fake.plan(Behaviour(cut_after=2), Behaviour(cut_after=2), Behaviour(cut_after=1))
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 2

    with pytest.raises(httpx2.RemoteProtocolError):  # the anthropic SDK does not wrap it
        async with claude.messages.stream(model="c", max_tokens=5, messages=USER) as text_stream:
            await text_stream.get_final_message()

    with pytest.raises((aiohttp.ClientPayloadError, httpx2.RemoteProtocolError)):  # per google-genai transport
        async for _ in await gemini.models.generate_content_stream(model="g", contents="hello there"):
            pass


async def test_a_hang_up_closes_the_connection_without_an_answer(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, fake: FakeProvider
) -> None:
    fake.plan(Behaviour(hang_up=1), Behaviour(hang_up=1))
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.APIConnectionError):
        await claude.messages.create(model="c", max_tokens=5, messages=USER)
    assert fake.count() == 2
    assert (await oai.chat.completions.create(model="m", messages=USER)).choices[0].message.content


async def test_cut_after_more_events_than_exist_still_withholds_the_end(
    http: TestClient[Any, Any],
) -> None:
    headers = {"Authorization": "Bearer k", "x-fake-cut-after": "1000"}
    response = await http.post("/v1/chat/completions", json={"messages": USER, "stream": True}, headers=headers)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


async def test_error_event_mid_stream(
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    gemini: genai.client.AsyncClient,
    fake: FakeProvider,
) -> None:
    fake.plan(*[Behaviour(error_after=2)] * 4)
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        _ = [chunk async for chunk in stream]

    responses_stream = await oai.responses.create(model="m", input="hello there", stream=True)
    events = [event async for event in responses_stream]
    assert [e.type for e in events][-1] == "error" and events[-1].sequence_number == 2

    with pytest.raises(anthropic.APIStatusError) as overloaded:
        async with claude.messages.stream(model="c", max_tokens=5, messages=USER) as text_stream:
            await text_stream.get_final_message()
    assert isinstance(overloaded.value.body, dict) and overloaded.value.body["error"]["type"] == "overloaded_error"

    with pytest.raises(genai_errors.ServerError):
        async for _ in await gemini.models.generate_content_stream(model="g", contents="hello there"):
            pass


# --------------------------------------------------------------------------- serials, knobs, recording


async def test_serial_changes_per_call(oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic) -> None:
    first = await oai.chat.completions.create(model="m", messages=USER)
    second = await oai.chat.completions.create(model="m", messages=USER)
    third = await claude.messages.create(model="c", max_tokens=5, messages=USER)
    assert (first.id, second.id, third.id) == (
        "chatcmpl-fake-1",
        "chatcmpl-fake-2",
        "msg_fake_3",
    )
    assert first.choices[0].message.content != second.choices[0].message.content


async def test_plan_is_consumed_in_order_and_headers_win(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    fake.plan(Behaviour(status=500), Behaviour(status=503))
    with pytest.raises(openai.InternalServerError) as first:
        await oai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-status": "400"})
    ok = await oai.chat.completions.create(model="m", messages=USER)
    assert first.value.status_code == 500
    assert ok.id == "chatcmpl-fake-3"


async def test_delays(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    fake.plan(Behaviour(delay_ms=150))
    started = time.monotonic()
    await oai.models.list()
    assert time.monotonic() - started >= 0.15
    fake.default_chunk_delay_ms = 30  # 7 events in this stream -> at least 6 gaps
    started = time.monotonic()
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    _ = [chunk async for chunk in stream]
    assert time.monotonic() - started >= 0.18


async def test_bad_knob_is_a_400(http: TestClient[Any, Any]) -> None:
    response = await http.post("/v1/messages", json={}, headers={"x-api-key": "k", "x-fake-status": "soon"})
    assert response.status == 400


async def test_recording_count_and_reset(
    oai: openai.AsyncOpenAI, http: TestClient[Any, Any], fake: FakeProvider
) -> None:
    await oai.chat.completions.create(model="m", messages=USER, extra_query={"trace": "1"})
    await oai.embeddings.create(model="m", input="x")
    await http.get("/nowhere")
    first = fake.received[0]
    assert (first.method, first.path, first.query) == (
        "POST",
        "/v1/chat/completions",
        {"trace": "1"},
    )
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.json()["messages"] == USER
    assert (
        fake.count(),
        fake.count("/chat/completions"),
        fake.count("/embeddings"),
    ) == (3, 1, 1)
    fake.plan(Behaviour(status=500))
    fake.default_delay_ms = 5
    fake.reset()
    assert fake.count() == 0 and fake.default_delay_ms == 0
    reply = await oai.chat.completions.create(model="m", messages=USER)
    assert reply.id == "chatcmpl-fake-3"  # the plan is gone; serials never go back


def test_keep_last_bounds_the_record() -> None:
    fake = FakeProvider(keep_last=2)
    for n in range(5):
        fake.record(Received("GET", f"/{n}", {}, {}, b""))
    assert [r.path for r in fake.received] == ["/3", "/4"]


async def test_runnable_entry_point() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.provider", "--port", "0", "--host", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.removeprefix("listening on ")
        async with openai.AsyncOpenAI(api_key="k", base_url=f"{base}/v1", max_retries=0) as client:
            reply = await client.chat.completions.create(model="m", messages=USER)
        assert reply.choices[0].message.content == "Echo #1: hello there"
    finally:
        process.terminate()
        await process.wait()

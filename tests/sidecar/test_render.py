"""One entry, two renderings, without HTTP: which requests share an entry, and the conversions.

The provider answers compared here come from the fake provider's own builders
(tests/fakes), which write the JSON answer and the event stream of one call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.wire import render, sse
from llmcache_sidecar.wire.render import AS_STORED, Shape, anthropic, chat, responses
from llmcache_sidecar.wire.render.frames import NotRenderable
from tests.fakes import provider_anthropic, provider_openai, provider_responses
from tests.fakes.provider_core import Call, FakeProvider, Stream

MESSAGES = [{"role": "user", "content": "two renderings"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def built(builder: Any, body: dict[str, Any], newline: str = "\n") -> bytes:
    """What the fake provider sends for `body`: JSON bytes, or the SSE bytes of its stream."""
    reply = builder(Call(body, 7, {}, {}, FakeProvider()))
    if isinstance(reply, Stream):
        return b"".join(event.encode(newline) for event in reply.events)
    return orjson.dumps(reply)


def without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in ("created", "created_at", "completed_at")}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


# --------------------------------------------------------------------------- which requests share


@pytest.mark.parametrize(
    ("kind", "endpoint", "body", "expected"),
    [
        ("openai", "chat/completions", {}, Shape(False, "chat")),
        ("openai", "chat/completions", {"stream": True}, Shape(True, "chat")),
        (
            "azure",
            "chat/completions",
            {"stream": True, "stream_options": {"include_usage": True}},
            Shape(True, "chat", include_usage=True),
        ),
        ("openai", "chat/completions", {"n": 2}, Shape(False)),
        ("openai", "chat/completions", {"n": 1, "stream": True}, Shape(True, "chat")),
        ("openai", "chat/completions", {"logprobs": True, "top_logprobs": 2}, Shape(False)),
        ("openai", "chat/completions", {"modalities": ["text", "audio"]}, Shape(False)),
        ("openai", "chat/completions", {"stream": True, "stream_options": {"chunk": 1}}, Shape(True)),
        ("openai", "responses", {"stream": True}, Shape(True, "responses")),
        ("openai", "responses", {"tools": [{"type": "function", "name": "f"}]}, Shape(False, "responses")),
        ("openai", "responses", {"tools": [{"type": "web_search"}]}, Shape(False)),
        ("openai", "responses", {"background": True}, Shape(False)),
        ("openai", "responses", {"include": ["message.output_text.logprobs"]}, Shape(False)),
        ("anthropic", "messages", {"stream": True, "tools": [{"name": "t"}]}, Shape(True, "anthropic")),
        ("openai", "completions", {"stream": True}, Shape(True)),
        ("openai", "embeddings", {}, Shape(False)),
        ("gemini", "streamGenerateContent", {}, AS_STORED),
        ("openai", "chat/completions", {"stream": "yes"}, AS_STORED),
    ],
)
def test_which_requests_share_one_entry_for_both_deliveries(
    kind: str, endpoint: str, body: dict[str, Any], expected: Shape
) -> None:
    assert render.shape_of(kind, endpoint, body, share=True) == expected


def test_with_sharing_off_no_request_shares() -> None:
    assert render.shape_of("anthropic", "messages", {"stream": True}, share=False) == Shape(True)


def test_a_shared_key_leaves_the_delivery_out_and_never_equals_an_unshared_one() -> None:
    plain = {"model": "m", "messages": MESSAGES}
    streamed = {**plain, "stream": True, "stream_options": {"include_usage": True}}
    assert render.key_fields(plain) == render.key_fields(streamed)
    assert render.key_fields(plain) != plain


# --------------------------------------------------------------------------- chat completions


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["text", "tool-call"])
def test_a_chat_stream_adds_up_to_the_json_answer_of_the_same_call(tools: Any) -> None:
    body = {"model": "m", "messages": MESSAGES, **({"tools": tools} if tools else {})}
    answer = orjson.loads(built(provider_openai.chat_completions, body))
    stream = built(
        provider_openai.chat_completions, {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert without_times(orjson.loads(chat.to_json(stream))) == without_times(answer)


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": "plain text", "refusal": None},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "assistant", "content": "cited", "refusal": None, "annotations": [{"type": "url_citation"}]},
        {"role": "assistant", "content": "after thought", "refusal": None, "reasoning_content": "thinking..."},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
    ],
    ids=["text", "refusal", "annotations", "reasoning-content", "two-tool-calls"],
)
@pytest.mark.parametrize("include_usage", [True, False])
def test_a_chat_answer_rendered_as_a_stream_adds_back_up_to_itself(message: Any, include_usage: bool) -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    stream = chat.to_stream(orjson.dumps(answer), include_usage)
    events = sse.parse(stream)
    assert events[-1].data == b"[DONE]"
    assert all(e.json is None or e.json["object"] == "chat.completion.chunk" for e in events)
    has_usage_chunk = any(e.json is not None and e.json["choices"] == [] for e in events)
    assert has_usage_chunk is include_usage
    if include_usage:
        assert orjson.loads(chat.to_json(stream)) == answer
    else:
        with pytest.raises(NotRenderable):  # a stream without usage does not say how many tokens
            chat.to_json(stream)


def test_dropping_the_usage_chunk_keeps_every_other_event_byte_for_byte() -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    stream = built(provider_openai.chat_completions, body)
    dropped = chat.drop_usage(stream)
    kept = [e for e in sse.parse(stream) if not (e.json is not None and e.json["choices"] == [])]
    assert sse.parse(dropped) == kept
    assert len(dropped) < len(stream) and dropped.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": []},
        {"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]},
        {"choices": [{"message": {"content": "a"}, "logprobs": {"content": []}}]},
        {"choices": [{"message": {"content": [{"type": "text"}]}}]},
        {"choices": [{"message": {"content": "a", "audio": {"id": "x"}}}]},
    ],
    ids=["no-choice", "two-choices", "logprobs", "content-parts", "audio"],
)
def test_a_chat_answer_that_has_no_exact_stream_form_is_not_rendered(answer: dict[str, Any]) -> None:
    with pytest.raises(NotRenderable):
        chat.to_stream(orjson.dumps({"id": "x", **answer, "usage": {}}), False)


# --------------------------------------------------------------------------- Responses


@pytest.mark.parametrize("tools", [None, [{"type": "function", "name": "f"}]], ids=["text", "function-call"])
def test_a_responses_stream_ends_with_its_json_answer(tools: Any) -> None:
    body = {"model": "m", "input": "two renderings", **({"tools": tools} if tools else {})}
    answer = orjson.loads(built(provider_responses.responses, body))
    stream = built(provider_responses.responses, {**body, "stream": True})
    assert without_times(orjson.loads(responses.to_json(stream))) == without_times(answer)


@pytest.mark.parametrize(
    "output",
    [
        [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
          "content": [{"type": "output_text", "text": "hi", "annotations": [{"type": "url_citation"}], "logprobs": []}]}],
        [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
          "content": [{"type": "refusal", "refusal": "no"}]}],
        [{"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "why"}]},
         {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}',
          "status": "completed"}],
    ],
    ids=["text-with-annotation", "refusal", "reasoning-and-function-call"],
)  # fmt: skip
def test_a_response_rendered_as_events_numbers_them_and_ends_with_itself(output: list[Any]) -> None:
    answer = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "output": output,
        "usage": {"total_tokens": 3},
    }
    events = sse.parse(responses.to_stream(orjson.dumps(answer)))
    assert [e.json["sequence_number"] for e in events if e.json] == list(range(len(events)))
    assert all(e.name == (e.json or {}).get("type") for e in events)
    assert events[0].name == "response.created" and events[-1].name == "response.completed"
    assert orjson.loads(responses.to_json(responses.to_stream(orjson.dumps(answer)))) == answer


def test_a_response_with_a_built_in_tool_item_is_not_rendered() -> None:
    answer = {"id": "r", "status": "completed", "output": [{"id": "ws_1", "type": "web_search_call"}]}
    with pytest.raises(NotRenderable):
        responses.to_stream(orjson.dumps(answer))


# --------------------------------------------------------------------------- Anthropic


@pytest.mark.parametrize(
    "tools", [None, [{"name": "lookup", "input_schema": {"type": "object"}}]], ids=["text", "tool"]
)
def test_an_anthropic_stream_adds_up_to_the_json_message_of_the_same_call(tools: Any) -> None:
    body = {"model": "c", "max_tokens": 9, "messages": MESSAGES, **({"tools": tools} if tools else {})}
    answer = orjson.loads(built(provider_anthropic.messages, body))
    stream = built(provider_anthropic.messages, {**body, "stream": True})
    assert orjson.loads(anthropic.to_json(stream)) == answer


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "hello", "citations": [{"type": "char_location", "cited_text": "x"}]}],
        [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "so"}],
        [{"type": "redacted_thinking", "data": "opaque"}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"query": "q"}},
         {"type": "web_search_tool_result", "tool_use_id": "s", "content": []}],
    ],
    ids=["citations", "thinking", "redacted-and-empty-input", "server-tool"],
)  # fmt: skip
def test_an_anthropic_message_rendered_as_events_adds_back_up_to_itself(content: list[Any]) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 0},
    }
    stream = anthropic.to_stream(orjson.dumps(message))
    assert sse.parse(stream)[-1].name == "message_stop"
    assert orjson.loads(anthropic.to_json(stream)) == message


def test_an_anthropic_stream_with_an_unknown_delta_is_not_assembled() -> None:
    body = {"model": "c", "max_tokens": 9, "messages": MESSAGES, "stream": True}
    stream = built(provider_anthropic.messages, body).replace(b'"text_delta"', b'"future_delta"', 1)
    with pytest.raises(NotRenderable):
        anthropic.to_json(stream)


# --------------------------------------------------------------------------- fit: what a hit serves


SOME_USAGE = Usage(3, 4)


def stored(body: bytes, *, stream: bool, usage: Usage = SOME_USAGE) -> CachedResponse:
    content_type = "text/event-stream" if stream else "application/json"
    return CachedResponse(200, (("Content-Type", content_type), ("x-request-id", "r")), body, 1.0, stream, usage=usage)


def test_an_entry_in_the_asked_delivery_is_served_as_it_is() -> None:
    entry = stored(b"{}", stream=False)
    assert render.fit(entry, Shape(False, "chat")) is entry
    assert render.fit(entry, AS_STORED) is entry


def test_a_rendered_entry_says_so_and_has_the_right_content_type() -> None:
    body = {"model": "c", "max_tokens": 9, "messages": MESSAGES}
    fitted = render.fit(stored(built(provider_anthropic.messages, body), stream=False), Shape(True, "anthropic"))
    assert fitted is not None and fitted.is_stream
    headers = dict(fitted.headers)
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-llmcache-rendered"] == "stream"
    assert headers["x-request-id"] == "r"


def test_an_unshared_entry_in_the_other_delivery_is_never_served() -> None:
    assert render.fit(stored(b"data: {}\n\n", stream=True), Shape(False)) is None


def test_a_chat_stream_without_usage_serves_neither_a_plain_caller_nor_one_who_asks_for_usage() -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    entry = stored(built(provider_openai.chat_completions, body), stream=True, usage=Usage())
    assert render.fit(entry, Shape(True, "chat")) is entry
    assert render.fit(entry, Shape(True, "chat", include_usage=True)) is None
    assert render.fit(entry, Shape(False, "chat")) is None


def test_a_chat_stream_with_usage_loses_its_usage_chunk_for_a_caller_who_did_not_ask() -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    entry = stored(built(provider_openai.chat_completions, body), stream=True)
    fitted = render.fit(entry, Shape(True, "chat"))
    assert fitted is not None and fitted.body == chat.drop_usage(entry.body)
    assert render.fit(entry, Shape(True, "chat", include_usage=True)) is entry


def test_a_stored_answer_that_cannot_be_rendered_is_a_miss_not_an_error() -> None:
    entry = dataclasses.replace(stored(b'{"choices": []}', stream=False))
    assert render.fit(entry, Shape(True, "chat")) is None


def test_the_same_delivery_lets_a_follower_read_the_leaders_flight_live() -> None:
    assert render.same_delivery(Shape(True, "chat"), Shape(True, "chat"))
    assert not render.same_delivery(Shape(True, "chat"), Shape(False, "chat"))
    assert not render.same_delivery(Shape(True, "chat"), Shape(True, "chat", include_usage=True))
    assert render.same_delivery(Shape(True, "anthropic"), Shape(True, "anthropic"))
    assert render.same_delivery(Shape(True), AS_STORED)

"""Which finished answers become entries: complete, successful streams and JSON only."""

from __future__ import annotations

import pytest

from llmcache_sidecar.entry import Usage
from llmcache_sidecar.proxy import streaming
from llmcache_sidecar.proxy.coalesce import Head
from llmcache_sidecar.wire.providers import KINDS

SSE = (("Content-Type", "text/event-stream"),)
JSON = (
    ("Content-Type", "application/json"),
    ("x-ratelimit-remaining-requests", "99"),
    ("openai-processing-ms", "12"),
    ("x-request-id", "r"),
    ("OpenAI-Organization", "org-a"),
    ("openai-project", "proj_a"),
)

OPENAI_DONE = [
    b'data: {"id":"c1","choices":[{"delta":{"content":"Hi"}}]}\n\n',
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]
ANTHROPIC_DONE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
GEMINI_DONE = [
    b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\r\n\r\n',
    b'data: {"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}\r\n\r\n',
]
RESPONSES_DONE = [
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n',
    b'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":3}}}\n\n',
]


def entry_of(kind: str, chunks: list[bytes], status: int = 200, headers=SSE):
    head = Head(status, headers, is_stream=headers is SSE)
    return streaming.to_entry(head, chunks, [0.01 * i for i in range(len(chunks))], kind=KINDS[kind], model="m")


@pytest.mark.parametrize(
    ("kind", "chunks", "usage"),
    [
        ("openai", OPENAI_DONE, Usage(5, 2)),
        ("anthropic", ANTHROPIC_DONE, Usage(7, 9)),
        ("gemini", GEMINI_DONE, Usage(3, 4)),
        ("openai", RESPONSES_DONE, Usage(2, 3)),
    ],
    ids=["openai", "anthropic", "gemini", "responses"],
)
def test_a_complete_stream_is_stored_with_its_usage_and_timing(kind: str, chunks: list[bytes], usage: Usage) -> None:
    entry = entry_of(kind, chunks)
    assert entry is not None
    assert entry.body == b"".join(chunks)
    assert entry.usage == usage
    assert entry.is_stream
    assert [end for end, _ in entry.chunk_times][-1] == len(entry.body)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("openai", {"usage": {"prompt_tokens": -5, "completion_tokens": -2}}),
        ("openai", {"type": "response.completed", "response": {"usage": {"input_tokens": -5, "output_tokens": -2}}}),
        ("anthropic", {"usage": {"input_tokens": -5, "output_tokens": -2}}),
        ("gemini", {"usageMetadata": {"promptTokenCount": -5, "candidatesTokenCount": -2}}),
    ],
    ids=["openai", "responses", "anthropic", "gemini"],
)
def test_negative_token_counts_from_a_provider_are_read_as_zero(kind: str, body: dict[str, object]) -> None:
    """They would make the tokens- and cost-saved counters go down."""
    assert KINDS[kind].usage(body) == Usage(0, 0)


@pytest.mark.parametrize(
    ("kind", "chunks"),
    [
        ("openai", OPENAI_DONE[:-1]),
        ("openai", [*OPENAI_DONE[:1], b'data: {"error":{"message":"overloaded"}}\n\n', b"data: [DONE]\n\n"]),
        ("openai", [*OPENAI_DONE[:-1], b"data: [DO"]),
        ("anthropic", ANTHROPIC_DONE[:-1]),
        ("anthropic", [*ANTHROPIC_DONE[:2], b'event: error\ndata: {"type":"error"}\n\n', ANTHROPIC_DONE[-1]]),
        ("gemini", GEMINI_DONE[:1]),
        ("openai", RESPONSES_DONE[:1]),
        ("openai", []),
    ],
    ids=["no-done", "error-event", "cut-marker", "no-stop", "anthropic-error", "no-finish", "no-completed", "empty"],
)
def test_an_incomplete_or_failed_stream_is_never_stored(kind: str, chunks: list[bytes]) -> None:
    assert entry_of(kind, chunks) is None


def test_an_error_status_is_never_stored() -> None:
    assert entry_of("openai", [b'{"error": {}}'], status=500, headers=JSON) is None


def test_a_json_answer_keeps_its_headers_but_not_rate_limits_nor_who_called() -> None:
    entry = entry_of("openai", [b'{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}}'], headers=JSON)
    assert entry is not None
    assert entry.usage == Usage(1, 2)
    assert dict(entry.headers) == {"Content-Type": "application/json", "openai-processing-ms": "12"}


def test_a_2xx_answer_that_is_not_json_is_not_stored() -> None:
    assert entry_of("openai", [b"<html>"], headers=(("Content-Type", "text/html"),)) is None
    assert entry_of("openai", [b"{broken"], headers=JSON) is None


# --- a large JSON answer: its usage read from its end, never the whole parsed (issue 15, finding 7) ---

BIG = b'{"object":"list","data":[' + b",".join([b'{"embedding":[0.125,0.25,-0.5],"index":0}'] * 20_000) + b"]"
assert len(BIG) > streaming.WHOLE_PARSE_BYTES


@pytest.mark.parametrize(
    ("kind", "end", "usage"),
    [
        ("openai", b',"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}', Usage(7, 0)),
        ("openai", b',"usage":{"prompt_tokens":3,"completion_tokens":4,"details":{"x":1}},"system_fingerprint":"f"}', Usage(3, 4)),
        ("gemini", b',"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":6}}', Usage(5, 6)),
        ("openai", b',"note":"text that says \\"usage\\": {\\"prompt_tokens\\": 99}"}', Usage(0, 0)),
    ],
    ids=["usage-last", "usage-then-more", "gemini", "usage-only-in-a-string"],
)  # fmt: skip
def test_a_large_json_answer_has_its_usage_read_from_its_end(kind: str, end: bytes, usage: Usage) -> None:
    entry = entry_of(kind, [BIG[:1000], BIG[1000:], end], headers=JSON)
    assert entry is not None
    assert entry.usage == usage
    assert entry.body == BIG + end


def test_a_large_answer_that_does_not_end_its_json_object_is_not_stored() -> None:
    """The cheap check of a large answer (a cut body is otherwise caught by the HTTP framing)."""
    assert entry_of("openai", [BIG, b',"usage":{"prompt_tokens":1'], headers=JSON) is None
    assert entry_of("openai", [b"[" + BIG[1:], b"]"], headers=JSON) is None

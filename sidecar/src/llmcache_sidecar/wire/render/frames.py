"""What every format's rendering shares: a stored body read, SSE events written, one error."""

from __future__ import annotations

from typing import Any

import orjson

from llmcache_sidecar.wire import sse

Json = dict[str, Any]


class NotRenderable(ValueError):
    """The stored answer cannot be given exactly in the other delivery: a miss, never a guess."""


def load(body: bytes) -> Json:
    """A stored JSON answer; `NotRenderable` when it is not a JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotRenderable(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise NotRenderable("not a JSON object")
    return value


def events(body: bytes) -> list[sse.Event]:
    """The events of a stored stream, each a JSON object unless it is OpenAI's `[DONE]`."""
    parsed = sse.parse(body)
    if not parsed:
        raise NotRenderable("no events")
    for event in parsed:
        if event.json is None and event.data != b"[DONE]":
            raise NotRenderable("an event that is not a JSON object")
    return parsed


def event(payload: Json, name: str | None = None) -> bytes:
    """One SSE event: an `event:` line when named (Anthropic, Responses), then one `data:` line."""
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"event: " + name.encode() + b"\n" + data if name else data


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)

"""Anthropic messages: a `message` as its stream events, and back.

Rendering writes what the API streams: `message_start` (the message with no content
and no stop reason), per content block `content_block_start`, its deltas
(`text_delta` and `citations_delta`, `thinking_delta` and `signature_delta`,
`input_json_delta` for tool input) and `content_block_stop`, then `message_delta`
(stop reason and the cumulative usage) and `message_stop`. Blocks that the API sends
whole in their start event (redacted thinking, tool results) are sent whole.
Assembling applies the same events in order, as the SDK's `accumulate_event` does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from llmcache_sidecar.wire.render.frames import Json, NotRenderable, dumps, event, events, load

_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking"}


def exact(body: Mapping[str, Any]) -> bool:
    """Every messages request: both deliveries carry the same message."""
    return True


def to_stream(body: bytes, include_usage: bool = False) -> bytes:
    """The events of a stored message, as the API streams them."""
    message = load(body)
    content = message.get("content")
    usage = message.get("usage")
    if not isinstance(content, list) or not isinstance(usage, dict):
        raise NotRenderable("a message without content or usage")
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    if "stop_details" in message:
        start["stop_details"] = None

    def emit(kind: str, **fields: Any) -> bytes:
        return event({"type": kind, **fields}, kind)

    out = [emit("message_start", message=start)]
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise NotRenderable("a content block that is not an object")
        head, deltas = _split(block)
        out.append(emit("content_block_start", index=index, content_block=head))
        out.extend(emit("content_block_delta", index=index, delta=delta) for delta in deltas)
        out.append(emit("content_block_stop", index=index))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    for name in ("stop_details", "container"):
        if message.get(name) is not None:
            delta[name] = message[name]
    out.append(emit("message_delta", delta=delta, usage=usage))
    out.append(emit("message_stop"))
    return b"".join(out)


def _split(block: Json) -> tuple[Json, list[Json]]:
    """A block as its start event's `content_block` and the deltas that complete it."""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        citations = block.get("citations")
        head = {**block, "text": ""}
        deltas: list[Json] = []
        if isinstance(citations, list) and citations:
            head["citations"] = []
            deltas.extend({"type": "citations_delta", "citation": c} for c in citations)
        if block["text"]:
            deltas.append({"type": "text_delta", "text": block["text"]})
        return head, deltas
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}] if block["thinking"] else []
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {**block, "thinking": "", "signature": ""}, deltas
    if kind in _TOOL_BLOCKS:
        tool_input = block.get("input")
        if not isinstance(tool_input, dict):
            raise NotRenderable("tool input that is not an object")
        deltas = [{"type": "input_json_delta", "partial_json": dumps(tool_input).decode()}] if tool_input else []
        return {**block, "input": {}}, deltas
    return block, []


def to_json(body: bytes) -> bytes:
    """The message a stored stream adds up to."""
    message: Json | None = None
    partial: dict[int, str] = {}
    finished = False
    for ev in events(body):
        data = ev.json or {}
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            message = copy.deepcopy(data["message"])
            message["content"] = []
        elif message is None or kind == "error":
            raise NotRenderable(f"{kind} before message_start, or an error")
        elif kind == "content_block_start":
            if data.get("index") != len(message["content"]) or not isinstance(data.get("content_block"), dict):
                raise NotRenderable("content blocks out of order")
            message["content"].append(copy.deepcopy(data["content_block"]))
        elif kind == "content_block_delta":
            _apply(_block(message, data), data.get("delta"), partial, data["index"])
        elif kind == "content_block_stop":
            block = _block(message, data)
            if partial.get(data["index"]):
                try:
                    block["input"] = orjson.loads(partial.pop(data["index"]))
                except orjson.JSONDecodeError as exc:
                    raise NotRenderable("tool input that is not JSON") from exc
        elif kind == "message_delta":
            message.update(data.get("delta") or {})
            usage = message.setdefault("usage", {})
            usage.update((k, v) for k, v in (data.get("usage") or {}).items() if v is not None)
        elif kind == "message_stop":
            finished = True
    if message is None or not finished:
        raise NotRenderable("no message_stop")
    return dumps(message)


def _block(message: Json, data: Json) -> Json:
    index = data.get("index")
    if not isinstance(index, int) or not 0 <= index < len(message["content"]):
        raise NotRenderable("a delta for a block that never started")
    block: Json = message["content"][index]
    return block


def _apply(block: Json, delta: Any, partial: dict[int, str], index: int) -> None:
    kind = delta.get("type") if isinstance(delta, dict) else None
    if kind in _DELTA_FIELDS:
        name = _DELTA_FIELDS[kind]
        block[name] = (block.get(name) or "") + str(delta[name])
    elif kind == "input_json_delta":
        partial[index] = partial.get(index, "") + str(delta["partial_json"])
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "citations_delta":
        block["citations"] = [*(block.get("citations") or []), delta["citation"]]
    else:
        raise NotRenderable(f"delta {kind!r}")

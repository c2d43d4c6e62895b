"""OpenAI's Responses API: a `response` object as its typed events, and back.

Assembling is exact by design of the API: the stream's last event,
`response.completed`, carries the whole response. Rendering writes the event sequence
the API streams for the items a stored answer can hold without loss: messages (text
with its annotations, refusals), function calls and reasoning summaries, each as
`output_item.added`, its parts with one delta each, and `output_item.done`, between
`response.created`/`response.in_progress` and `response.completed` (or
`response.incomplete`). Every event carries its `sequence_number`. Items of built-in
tools (web search, file search, code interpreter, ...) stream progress events of
their own that a stored answer does not record: such an answer is not rendered.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

from llmcache_sidecar.wire.render.frames import Json, NotRenderable, dumps, event, events, load

_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")
_FINAL = {"completed": "response.completed", "incomplete": "response.incomplete"}


def exact(body: Mapping[str, Any]) -> bool:
    """No background mode, no logprobs, function tools only."""
    tools = body.get("tools")
    include = body.get("include")
    options = body.get("stream_options")
    return (
        not body.get("background")
        and body.get("top_logprobs") is None
        and not (isinstance(include, list) and any("logprobs" in str(x) for x in include))
        and (tools is None or (isinstance(tools, list) and all(_is_function(t) for t in tools)))
        and (options is None or (isinstance(options, dict) and set(options) <= {"include_obfuscation"}))
    )


def _is_function(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "function"


def to_json(body: bytes) -> bytes:
    """The response a stored stream ends with (its last event, read without parsing the others)."""
    at = max(body.rfind(b"response.completed"), body.rfind(b"response.incomplete"))
    found = [(body.rfind(end, 0, at), len(end)) for end in _EVENT_ENDS] if at > 0 else []
    start = max((i + n for i, n in found if i >= 0), default=0)
    for tail in (body[start:], body):
        for ev in reversed(events(tail)):
            final = ev.json
            if final is not None and final.get("type") in _FINAL.values() and isinstance(final.get("response"), dict):
                return dumps(final["response"])
    raise NotRenderable("no response.completed event")


def to_stream(body: bytes, include_usage: bool = False) -> bytes:
    """The events of a stored response, as the API streams them."""
    response = load(body)
    output = response.get("output")
    final = _FINAL.get(str(response.get("status")))
    if final is None or not isinstance(output, list) or not isinstance(response.get("id"), str):
        raise NotRenderable("not a finished response")
    numbers = itertools.count()
    out: list[bytes] = []

    def emit(kind: str, /, **fields: Any) -> None:
        out.append(event({"type": kind, **fields, "sequence_number": next(numbers)}, kind))

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    for name in ("completed_at", "incomplete_details", "error"):
        if name in response:
            pending[name] = None
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    for index, item in enumerate(output):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise NotRenderable("an output item without an id")
        render = _ITEMS.get(str(item.get("type")))
        if render is None:
            raise NotRenderable(f"output item {item.get('type')!r} streams events a stored answer lacks")
        render(emit, index, item)
    emit(final, response=response)
    return b"".join(out)


class Emit(Protocol):
    """The `emit` closure of `to_stream`: one numbered event."""

    def __call__(self, kind: str, /, **fields: Any) -> None: ...


def _message(emit: Emit, index: int, item: Json) -> None:
    content = item.get("content")
    if not isinstance(content, list):
        raise NotRenderable("a message without content")
    emit("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
    for part_index, part in enumerate(content):
        where = {"item_id": item["id"], "output_index": index, "content_index": part_index}
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "output_text" and isinstance(part.get("text"), str):
            if part.get("logprobs"):
                raise NotRenderable("logprobs")
            text = part["text"]
            emit("response.content_part.added", **where, part={**part, "text": "", "annotations": []})
            emit("response.output_text.delta", **where, delta=text, logprobs=[])
            for number, annotation in enumerate(part.get("annotations") or []):
                emit("response.output_text.annotation.added", **where, annotation_index=number, annotation=annotation)
            emit("response.output_text.done", **where, text=text, logprobs=[])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            emit("response.content_part.added", **where, part={**part, "refusal": ""})
            emit("response.refusal.delta", **where, delta=part["refusal"])
            emit("response.refusal.done", **where, refusal=part["refusal"])
        else:
            raise NotRenderable(f"message part {kind!r}")
        emit("response.content_part.done", **where, part=part)
    emit("response.output_item.done", output_index=index, item=item)


def _function_call(emit: Emit, index: int, item: Json) -> None:
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        raise NotRenderable("function call arguments that are not text")
    emit("response.output_item.added", output_index=index, item={**item, "arguments": "", "status": "in_progress"})
    where = {"item_id": item["id"], "output_index": index}
    emit("response.function_call_arguments.delta", **where, delta=arguments)
    emit("response.function_call_arguments.done", **where, arguments=arguments)
    emit("response.output_item.done", output_index=index, item=item)


def _reasoning(emit: Emit, index: int, item: Json) -> None:
    summary = item.get("summary") or []
    if item.get("content") or not isinstance(summary, list):
        raise NotRenderable("reasoning text, streamed as events of its own")
    emit("response.output_item.added", output_index=index, item={**item, "summary": []})
    for number, part in enumerate(summary):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise NotRenderable("a summary part that is not text")
        where = {"item_id": item["id"], "output_index": index, "summary_index": number}
        emit("response.reasoning_summary_part.added", **where, part={**part, "text": ""})
        emit("response.reasoning_summary_text.delta", **where, delta=part["text"])
        emit("response.reasoning_summary_text.done", **where, text=part["text"])
        emit("response.reasoning_summary_part.done", **where, part=part)
    emit("response.output_item.done", output_index=index, item=item)


_ITEMS = {"message": _message, "function_call": _function_call, "reasoning": _reasoning}

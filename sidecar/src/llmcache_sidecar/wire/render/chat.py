"""OpenAI chat completions: a `chat.completion` as `chat.completion.chunk` events, and back.

A rendered stream has the provider's shape: a first chunk with the role, then one
chunk per piece of the message (reasoning text of compatible servers, content,
refusal, each tool call's head and its arguments, annotations), a last chunk with
`finish_reason`, the usage chunk (`choices: []`) when the caller asked for it, and
`data: [DONE]`. Assembling merges the deltas as the SDK's own `ChatCompletionStreamState`
does (strings appended, lists merged by `index`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llmcache_sidecar.wire import sse
from llmcache_sidecar.wire.render.frames import Json, NotRenderable, dumps, event, events, load

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_TAIL_BYTES = 16384
_TAIL_EVENTS = 3
_DONE = b"data: [DONE]\n\n"
# Message fields with a delta of their own below; any other string field (say a
# compatible server's `reasoning_content`) is streamed as one delta of the same name.
_OWN_DELTAS = frozenset({"role", "content", "refusal", "tool_calls", "function_call", "annotations"})
_STREAM_OPTIONS = frozenset({"include_usage", "include_obfuscation"})
_CHOICE_FIELDS = frozenset({"index", "message", "delta", "logprobs", "finish_reason"})


def exact(body: Mapping[str, Any]) -> bool:
    """One choice, no logprobs, no audio: what a stream and a JSON answer carry alike."""
    options = body.get("stream_options")
    modalities = body.get("modalities")
    return (
        body.get("n") in (None, 1)
        and not body.get("logprobs")
        and body.get("top_logprobs") is None
        and body.get("audio") is None
        and not (isinstance(modalities, list) and "audio" in modalities)
        and (options is None or (isinstance(options, dict) and set(options) <= _STREAM_OPTIONS))
    )


def to_stream(body: bytes, include_usage: bool) -> bytes:
    """The chunk stream of a stored JSON answer; its usage chunk only if `include_usage`."""
    doc = load(body)
    choices = doc.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise NotRenderable("not exactly one choice")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict) or choice.get("logprobs") is not None or message.get("audio") is not None:
        raise NotRenderable("no message, or logprobs or audio")
    usage = doc.get("usage")
    if include_usage and not isinstance(usage, dict):
        raise NotRenderable("usage asked for, none stored")
    head: Json = {k: v for k, v in doc.items() if k not in ("choices", "usage")}
    head["object"] = "chat.completion.chunk"
    tail: Json = {"usage": None} if include_usage else {}
    index = choice.get("index", 0)

    def chunk(delta: Json, finish_reason: Any = None, extra: Json | None = None) -> bytes:
        one = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **(extra or {})}
        return event({**head, "choices": [one], **tail})

    content, refusal = message.get("content"), message.get("refusal")
    if not isinstance(content, str | None) or not isinstance(refusal, str | None):
        raise NotRenderable("content or refusal that is not text")
    out = [chunk({"role": message.get("role", "assistant"), "content": "" if isinstance(content, str) else None})]
    for name, value in message.items():
        if name in _OWN_DELTAS or value is None:
            continue
        if not isinstance(value, str):
            raise NotRenderable(f"message field {name!r} has no stream form")
        out.append(chunk({name: value}))
    if isinstance(content, str) and content:
        out.append(chunk({"content": content}))
    if isinstance(refusal, str):
        out.append(chunk({"refusal": refusal}))
    out.extend(chunk(delta) for delta in _call_deltas(message))
    if isinstance(message.get("annotations"), list) and message["annotations"]:
        out.append(chunk({"annotations": message["annotations"]}))
    extra = {k: v for k, v in choice.items() if k not in _CHOICE_FIELDS}
    out.append(chunk({}, choice.get("finish_reason"), extra))
    if include_usage:
        out.append(event({**head, "choices": [], "usage": usage}))
    out.append(_DONE)
    return b"".join(out)


def _call_deltas(message: Json) -> list[Json]:
    """Each tool call as its head (id, type, name) and then its arguments; the legacy function_call alike."""
    deltas: list[Json] = []
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise NotRenderable("a tool call without a function")
        arguments = function.get("arguments") or ""
        head = {k: v for k, v in call.items() if k != "function"}
        deltas.append({"tool_calls": [{"index": i, **head, "function": {**function, "arguments": ""}}]})
        if arguments:
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": arguments}}]})
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        deltas.append({"function_call": {**legacy, "arguments": ""}})
        if legacy.get("arguments"):
            deltas.append({"function_call": {"arguments": legacy["arguments"]}})
    return deltas


def to_json(body: bytes) -> bytes:
    """The `chat.completion` a stored chunk stream adds up to."""
    doc: Json = {}
    message: Json = {}
    extra: Json = {}
    usage: Any = None
    finish_reason: Any = None
    for ev in events(body):
        chunk = ev.json
        if chunk is None:  # [DONE]
            break
        for name, value in chunk.items():
            if name not in ("choices", "usage", "obfuscation") and (value is not None or name not in doc):
                doc[name] = value
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                raise NotRenderable("more than one choice")
            if choice.get("logprobs") is not None:
                raise NotRenderable("logprobs")
            delta = choice.get("delta")
            if isinstance(delta, dict):
                accumulate(message, delta)
            if choice.get("finish_reason") is not None:
                finish_reason = choice["finish_reason"]
            extra.update((k, v) for k, v in choice.items() if k not in _CHOICE_FIELDS)
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
    if finish_reason is None or usage is None:
        raise NotRenderable("no finish_reason or no usage")
    message = joined(message)
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    message.setdefault("refusal", None)
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            call.pop("index", None)
    doc["object"] = "chat.completion"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason, **extra}
    return dumps({**doc, "choices": [choice], "usage": usage})


def accumulate(acc: Json, delta: Json) -> Json:
    """Merge one delta into `acc`: strings appended, objects merged, lists merged by their `index`.

    Appended strings are kept as pieces until `joined`.
    """
    for name, value in delta.items():
        old = acc.get(name)
        if old is None or name in ("index", "type"):
            if isinstance(value, list) and any(isinstance(x, dict) and "index" in x for x in value):
                acc[name] = []
                _merge_indexed(acc[name], value)
            else:
                acc[name] = value
        elif isinstance(old, _Text) and isinstance(value, str):
            old.append(value)
        elif isinstance(old, str) and isinstance(value, str):
            acc[name] = _Text((old, value))
        elif isinstance(old, dict) and isinstance(value, dict):
            accumulate(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            if any(isinstance(x, dict) and "index" in x for x in value):
                _merge_indexed(old, value)
            else:
                old.extend(value)
        elif value is not None:
            acc[name] = value
    return acc


class _Text(list[str]):
    """A string being appended to, as its pieces: joined once (`joined`), not copied per delta."""


def joined(value: Any) -> Any:
    """`value` with every `_Text` of `accumulate` made a string."""
    if isinstance(value, _Text):
        return "".join(value)
    if isinstance(value, dict):
        return {k: joined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [joined(v) for v in value]
    return value


def _merge_indexed(acc: list[Any], entries: list[Any]) -> None:
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("index"), int):
            raise NotRenderable("a list delta without an index")
        i = entry["index"]
        if i < len(acc):
            accumulate(acc[i], entry)
        elif i == len(acc):
            acc.append(accumulate({}, entry))
        else:
            raise NotRenderable("a list delta out of order")


def drop_usage(body: bytes) -> bytes:
    """A stored stream without its usage chunk, every other event byte for byte.

    The usage chunk is one of the last events (before `[DONE]`): only the stream's tail
    is read, so the cost does not grow with the answer (this runs on every such hit).
    """
    offset = max(0, len(body) - _TAIL_BYTES)
    ends = [m.end() for m in _EVENT_END.finditer(body, offset)]
    # Where the tail starts mid-stream, its first boundary may be a partial match: a block
    # is read only if it starts after a whole boundary (or at the stream's start).
    first = 0 if offset == 0 else 1
    for i in range(len(ends) - 1, max(first, len(ends) - _TAIL_EVENTS) - 1, -1):
        start = ends[i - 1] if i > 0 else 0
        parsed = sse.parse(body[start : ends[i]])
        chunk = parsed[0].json if len(parsed) == 1 else None
        if chunk is not None and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict):
            return body[:start] + body[ends[i] :]
    return body

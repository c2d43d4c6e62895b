"""One entry, two renderings: a stored answer served as the caller asks, streamed or not.

A streamed request and its non-streamed twin ask the provider the same question; only
the delivery differs. Where the two deliveries carry the same information, the key
leaves `stream` (and `stream_options`) out, one entry serves both, and a hit whose
stored form is not the one asked for is converted: Server-Sent Events built from a
stored JSON answer, or a JSON answer assembled from stored events. The official SDKs,
their streaming helpers included, see the same text, tool calls and usage either way.

Where this is exact (`shape_of` decides, from the request alone):

- OpenAI (and Azure) chat completions, with one choice (`n` absent or 1), no
  `logprobs`, no audio output. `stream_options.include_usage` is honoured: a stream
  rendered for a caller who asked for usage ends with the usage chunk; one who did not
  never gets it, even from a stored stream that has it. A stored stream *without*
  usage cannot answer a plain call or a caller who asks for usage (usage is not known):
  that is a miss, and the provider's answer replaces the entry.
- OpenAI Responses, unless `background`, logprobs (`top_logprobs`, an `include` of
  logprobs) or tools other than functions (built-in tools stream progress events that
  a stored answer does not record).
- Anthropic messages, all of them.

Not shared (the key keeps `stream`, the entry serves only its own kind of caller):
legacy completions (the endpoint's `echo`, `best_of` and per-token `logprobs` make the
two forms differ), Gemini (streaming is another endpoint whose chunks each repeat the
candidate's metadata), embeddings (never streamed), and every request above that falls
outside its rule. `shareStreamEntries: false` turns sharing off.

A rendered stream is written at once: it has no recorded pace to replay, and its
chunking is not the provider's (one event per text, tool call or part).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.wire.render import anthropic, chat, responses
from llmcache_sidecar.wire.render.frames import NotRenderable

__all__ = ["AS_STORED", "NotRenderable", "Shape", "fit", "key_fields", "same_delivery", "shape_of"]

Format = Literal["chat", "responses", "anthropic"]
SHARED_MARK = "llmcache:either"
"""What a shared key has in place of `stream`: never a value a request sends, so a shared
key never equals a key made with sharing off."""
RENDERED_HEADER = "x-llmcache-rendered"
_FORMATS: Mapping[tuple[str, str], Format] = {
    ("openai", "chat/completions"): "chat",
    ("azure", "chat/completions"): "chat",
    ("openai", "responses"): "responses",
    ("azure", "responses"): "responses",
    ("anthropic", "messages"): "anthropic",
}
_STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Shape:
    """How a caller wants its answer delivered, decided from its request once."""

    stream: bool | None = None
    """True: Server-Sent Events; False: one JSON answer; None: whatever is stored."""
    format: Format | None = None
    """Set when the entry is shared by both deliveries: the wire format to render with."""
    include_usage: bool = False
    """Chat completions streamed with `stream_options.include_usage`."""


AS_STORED = Shape()


def shape_of(kind: str, endpoint: str, body: Mapping[str, Any], *, share: bool) -> Shape:
    """The delivery `body` asks for, and whether its entry is shared with the other one."""
    stream = body.get("stream", False)
    if kind == "gemini" or not isinstance(stream, bool):
        return AS_STORED  # Gemini streams on its own endpoint; a non-bool stream is in the key anyway
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    fmt = _FORMATS.get((kind, endpoint))
    if not share or fmt is None or not _EXACT[fmt](body):
        return Shape(stream=stream, include_usage=include_usage)
    return Shape(stream=stream, format=fmt, include_usage=include_usage)


def key_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The key's body fields for a shared shape: delivery left out, the shared mark put in."""
    out = {k: v for k, v in fields.items() if k not in ("stream", "stream_options")}
    out["stream"] = SHARED_MARK
    return out


def fit(entry: CachedResponse, shape: Shape) -> CachedResponse | None:
    """`entry` as `shape` asks for it: as it is, rendered, or None when that cannot be exact.

    The common case (the stored form is the one asked for) costs two comparisons.
    """
    if shape.stream is None:
        return entry
    if entry.is_stream == shape.stream:
        if shape.format != "chat" or not shape.stream:
            return entry
        has_usage = _stream_has_usage(entry)
        if has_usage == shape.include_usage:
            return entry
        if not has_usage:
            return None  # asked for usage the stored stream never had
        return _rendered(entry, chat.drop_usage(entry.body), stream=True)
    if shape.format is None:
        return None  # not shared: the other delivery's entry (a key that ignores `stream`)
    try:
        if shape.stream:
            body = _TO_STREAM[shape.format](entry.body, shape.include_usage)
        else:
            if shape.format == "chat" and not _stream_has_usage(entry):
                return None  # a JSON answer always has usage; this stream did not record it
            body = _TO_JSON[shape.format](entry.body)
    except NotRenderable:
        return None
    return _rendered(entry, body, stream=shape.stream)


def same_delivery(leader: Shape, follower: Shape) -> bool:
    """True when what a flight's leader receives, byte for byte, suits a follower too."""
    if follower.stream is None or follower == leader:
        return True
    if leader.stream != follower.stream:
        return False
    return not (follower.stream and follower.format == "chat" and leader.include_usage != follower.include_usage)


def _stream_has_usage(entry: CachedResponse) -> bool:
    # The usage a stream reported is read from its events when it is stored
    # (`proxy.streaming`): an OpenAI chat stream reports usage only in the
    # include_usage chunk, and real counts are never both zero.
    return entry.usage != Usage()


def _rendered(entry: CachedResponse, body: bytes, *, stream: bool) -> CachedResponse:
    content_type = _STREAM_CONTENT_TYPE if stream else _JSON_CONTENT_TYPE
    headers = [(k, v) for k, v in entry.headers if k.lower() != "content-type"]
    headers.append(("Content-Type", content_type))
    if entry.is_stream != stream:
        headers.append((RENDERED_HEADER, "stream" if stream else "json"))
    return dataclasses.replace(entry, body=body, is_stream=stream, headers=tuple(headers), chunk_times=())


_EXACT = {"chat": chat.exact, "responses": responses.exact, "anthropic": anthropic.exact}
_TO_STREAM = {"chat": chat.to_stream, "responses": responses.to_stream, "anthropic": anthropic.to_stream}
_TO_JSON = {"chat": chat.to_json, "responses": responses.to_json, "anthropic": anthropic.to_json}

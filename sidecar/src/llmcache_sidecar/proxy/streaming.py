"""Turning a finished upstream answer into an entry, and replaying a stored stream.

A stream is recorded while it passes through (the flight keeps its chunks) and
becomes an entry only when it is complete: a 2xx status, the provider's own end
marker, and no error event. Its raw bytes are kept, so a hit replays the same event
names, data and order; `chunk_times` lets a paced replay keep the original gaps.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import orjson
from aiohttp import web

from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.proxy.coalesce import Head
from llmcache_sidecar.proxy.upstream import stored_headers
from llmcache_sidecar.wire import sse
from llmcache_sidecar.wire.providers import WireFormat, is_error


def to_entry(
    head: Head,
    chunks: list[bytes],
    times: list[float],
    *,
    kind: WireFormat,
    model: str | None,
    elapsed: float = 0.0,
    ttl: float | None = None,
) -> CachedResponse | None:
    """The entry to store for a finished answer, or None when it must not be stored."""
    if not head.ok:
        return None
    body = b"".join(chunks)
    if head.is_stream:
        usage = _stream_usage(body, kind)
        if usage is None:
            return None
        start = times[0] if times else 0.0
        offsets, end = [], 0
        for chunk, at in zip(chunks, times, strict=True):
            end += len(chunk)
            offsets.append((end, round(at - start, 4)))
        chunk_times = tuple(offsets)
    else:
        if not _is_json(head):
            return None
        usage = _json_usage(body, kind)
        if usage is None:
            return None
        chunk_times = ()
    return CachedResponse(
        status=head.status,
        headers=stored_headers(head.headers),
        body=body,
        created_at=time.time(),
        is_stream=head.is_stream,
        model=model,
        usage=usage,
        chunk_times=chunk_times,
        elapsed=round(elapsed, 6),
        ttl=ttl,
    )


WHOLE_PARSE_BYTES = 256 * 2**10
"""Up to this size an answer is read whole for its usage; a larger one only at its end."""
_TAIL_BYTES = 64 * 2**10
_USAGE_KEY = re.compile(r'[{,]\s*"(usage|usageMetadata)"\s*:\s*')


def _json_usage(body: bytes, kind: WireFormat) -> Usage | None:
    """The token usage of a JSON answer; None when it is not a JSON object (it is not stored).

    A large answer (an embeddings batch of megabytes) is not parsed whole for a few
    numbers: its parsed form is several times its size. Its usage is read from the last
    64 KiB, where providers put it, as the last `"usage"` (or Gemini's `"usageMetadata"`)
    object there; found nowhere, it counts as no tokens. Such an answer is checked to be
    one JSON object by its first and last bytes: a body cut short is an error of the HTTP
    framing (Content-Length, chunked), which never reaches the store.
    """
    if len(body) <= WHOLE_PARSE_BYTES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return kind.usage(parsed) if isinstance(parsed, dict) else Usage()
    if not (body.lstrip()[:1] == b"{" and body.rstrip()[-1:] == b"}"):
        return None
    tail = body[-_TAIL_BYTES:].decode("utf-8", "replace")
    for match in reversed(list(_USAGE_KEY.finditer(tail))):
        try:
            value, _ = _DECODER.raw_decode(tail, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            return kind.usage({match.group(1): value})
    return Usage()


_DECODER = json.JSONDecoder()


def _is_json(head: Head) -> bool:
    return any(k.lower() == "content-type" and "json" in v for k, v in head.headers)


def _stream_usage(body: bytes, kind: WireFormat) -> Usage | None:
    """A recorded stream's usage, or None when it is not complete (no end marker, an error event).

    One pass, an event at a time, each parsed once and let go: a long stream is never held
    as all its parsed events. Providers spread usage over events (Anthropic: input at the
    start, output at the end): the largest counts seen are its usage.
    """
    input_tokens = output_tokens = 0
    last = None
    for event in sse.iter_events(body):
        parsed = event.json
        if is_error(event.name, parsed):
            return None
        if parsed is not None:
            usage = kind.usage(parsed)
            input_tokens = max(input_tokens, usage.input_tokens)
            output_tokens = max(output_tokens, usage.output_tokens)
        last = event
    # Every event was checked for an error above: the kind's own rule needs only the last one.
    if last is None or not kind.stream_complete([last]):
        return None
    return Usage(input_tokens, output_tokens)


async def replay_paced(response: web.StreamResponse, entry: CachedResponse) -> None:
    """Write a stored stream with the gaps it originally had between chunks."""
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    for end, at in entry.chunk_times:
        delay = start + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await response.write(entry.body[sent:end])
        sent = end
    if sent < len(entry.body):
        await response.write(entry.body[sent:])

"""Turning a finished upstream answer into an entry, and replaying a stored stream.

A stream is recorded while it passes through (the flight keeps its chunks) and
becomes an entry only when it is complete: a 2xx status, the provider's own end
marker, and no error event. Its raw bytes are kept, so a hit replays the same event
names, data and order; `chunk_times` lets a paced replay keep the original gaps.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.proxy.coalesce import Head
from llmcache_sidecar.proxy.upstream import stored_headers
from llmcache_sidecar.wire import sse
from llmcache_sidecar.wire.providers import WireFormat


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
        events = sse.parse(body)
        if not kind.stream_complete(events):
            return None
        usage = _stream_usage(events, kind)
        start = times[0] if times else 0.0
        offsets, end = [], 0
        for chunk, at in zip(chunks, times, strict=True):
            end += len(chunk)
            offsets.append((end, round(at - start, 4)))
        chunk_times = tuple(offsets)
    else:
        if not _is_json(head):
            return None
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        usage = kind.usage(parsed) if isinstance(parsed, dict) else Usage()
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


def _is_json(head: Head) -> bool:
    return any(k.lower() == "content-type" and "json" in v for k, v in head.headers)


def _stream_usage(events: list[sse.Event], kind: WireFormat) -> Usage:
    """Providers spread usage over events (Anthropic: input at start, output at the end)."""
    input_tokens = output_tokens = 0
    for event in events:
        if event.json is not None:
            usage = kind.usage(event.json)
            input_tokens = max(input_tokens, usage.input_tokens)
            output_tokens = max(output_tokens, usage.output_tokens)
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

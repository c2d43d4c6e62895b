"""Writing an answer to the caller: a hit from the cache, a flight's answer, or the sidecar's own error.

Every answer says where it came from in `Cache-Status` and carries its key in
`x-llmcache-key`. A stream is written as it arrives (`prepare` once, then `write`);
when the upstream breaks off mid-stream the caller's connection is aborted, so that a
truncated stream never looks like a complete one.
"""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web
from multidict import CIMultiDict

from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import streaming, upstream
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.proxy.coalesce import Flight, FlightFailed, Head, Reader
from llmcache_sidecar.wire import cache_status, keys

logger = logging.getLogger(__name__)


async def hit(
    call: Call, entry: CachedResponse, key: str, *, similarity: float | None = None, status: str | None = None
) -> web.StreamResponse:
    """Answer from `entry`, stored under `key` (the request's own, or a semantic match's).

    `status` replaces the plain hit's `Cache-Status` (a stale answer, a coalesced rendering).
    """
    headers = CIMultiDict(entry.headers)
    if status is None:
        status = cache_status.hit(detail="semantic" if similarity is not None else None)
    headers["Cache-Status"] = status
    if similarity is not None:
        headers["x-llmcache-similarity"] = f"{similarity:.4f}"
    headers["Age"] = str(max(0, int(time.time() - entry.created_at)))
    headers["x-llmcache-key"] = key
    if not entry.is_stream:
        return web.Response(status=entry.status, body=entry.body, headers=headers)
    response = web.StreamResponse(status=entry.status, headers=headers)
    try:
        await response.prepare(call.request)
        if call.rt.settings.replay == "paced" and entry.chunk_times:
            await streaming.replay_paced(response, entry)
        else:
            await response.write(entry.body)
        await response.write_eof()
    except ConnectionResetError:
        logger.debug("client left during a replay of %s", keys.short(key))
    return response


async def from_flight(call: Call, flight: Flight, reader: Reader, head: Head, status: str) -> web.StreamResponse:
    """Answer with what `flight` brings: buffered, or streamed live from its first chunk through `reader`.

    An answer that is not a stream is buffered unless it is too large to be held (past
    `maxResponseBytes`): it is then streamed as it comes, with the provider's Content-Length.
    """
    if not head.is_stream:
        await flight.settled()
        if flight.recording:
            try:
                body = await flight.body()
            except FlightFailed as exc:
                return error(502, "upstream_broken", f"llmcache: the upstream answer broke off: {exc}")
            return buffered(head, body, call.key, status)
    response = web.StreamResponse(status=head.status, headers=_flight_headers(head, call.key, status))
    if not head.is_stream and (length := _content_length(head)) is not None:
        response.content_length = length
    try:
        await response.prepare(call.request)
        async for chunk in reader.chunks():
            await response.write(chunk)
        await response.write_eof()
    except FlightFailed:
        abort(call.request)  # the caller must see a broken stream, never a clean truncated one
    except ConnectionResetError:
        logger.debug("client left during the stream of %s", keys.short(call.key))
    return response


def buffered(head: Head, body: bytes, key: str, status: str) -> web.Response:
    return web.Response(status=head.status, body=body, headers=_flight_headers(head, key, status))


def _content_length(head: Head) -> int | None:
    value = next((v for k, v in head.headers if k.lower() == "content-length"), None)
    return int(value) if value is not None and value.isdigit() else None


def _flight_headers(head: Head, key: str, status: str) -> CIMultiDict[str]:
    headers = CIMultiDict(head.headers if head.from_cache else upstream.response_headers(head.headers))
    headers["Cache-Status"] = status
    headers["x-llmcache-key"] = key
    return headers


def error(status: int, code: str, message: str) -> web.Response:
    """An error of the sidecar's own, shaped like the providers' errors so SDKs show it."""
    body = orjson.dumps({"error": {"message": message, "type": "llmcache_error", "code": code}})
    return web.Response(status=status, body=body, content_type="application/json")


def abort(request: web.Request) -> None:
    """Cut the caller's connection: how a stream that broke upstream ends downstream."""
    transport = request.transport
    if transport is not None:
        transport.abort()

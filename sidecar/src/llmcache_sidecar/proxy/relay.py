"""Forwarding what the cache does not answer: the request as it came, the answer streamed back.

Used for every request that is not a cacheable call (any method, any path) and for a
cacheable one that cannot be cached (a bypass: too large, not JSON, an unreadable
control). Nothing is buffered or stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from llmcache_sidecar.proxy import respond, upstream
from llmcache_sidecar.proxy.runtime import STATE, Route

logger = logging.getLogger(__name__)


async def relay(
    request: web.Request,
    route: Route,
    raw_tail: str,
    data: bytes | aiohttp.StreamReader | AsyncIterator[bytes],
    status_header: str | None,
) -> web.StreamResponse:
    """Forward a request we do not cache and stream the answer back as it comes (`raw_tail` as the app sent it)."""
    state = request.app[STATE]
    assert state.session is not None
    try:
        resp = await state.session.request(
            request.method,
            upstream.url(route.upstream, raw_tail, request.rel_url.raw_query_string),
            headers=upstream.request_headers(request.headers, cacheable=False),
            data=data,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=route.timeout),
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        state.counters.upstream_errors += 1
        logger.warning("upstream %s unreachable: %s", route.name, exc)
        return respond.error(
            502, "upstream_unreachable", f"llmcache: the {route.name} upstream could not be reached: {exc}"
        )
    async with resp:
        headers = CIMultiDict(
            upstream.response_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers)
        )
        if status_header is not None:
            headers["Cache-Status"] = status_header
        response = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
        if resp.content_length is not None:
            response.content_length = resp.content_length
        await response.prepare(request)
        try:
            async for chunk in resp.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
            respond.abort(request)  # the upstream broke off: so does the caller's answer
            return response
        except ConnectionResetError:
            return response  # the caller left
        await response.write_eof()
        return response


async def chain(prefix: bytes, rest: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """What was read already, then the rest of the body as it arrives."""
    if prefix:
        yield prefix
    async for chunk in rest.iter_any():
        yield chunk

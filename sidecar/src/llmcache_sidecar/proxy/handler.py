"""The data path: classify -> controls -> key -> lookup -> forward -> store.

`handle` is the one handler of the data port. A request that is not a cacheable
POST passes through untouched. A cacheable one is answered from the cache when it
can be, and otherwise from a shared upstream flight (see `coalesce`). Whatever goes
wrong with the cache, the call still goes upstream: the cache fails open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import context as otel_context

from llmcache_sidecar import semantic, telemetry
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import streaming, upstream
from llmcache_sidecar.proxy.coalesce import Flight, FlightFailed, Head
from llmcache_sidecar.proxy.runtime import STATE, Route, Runtime, State
from llmcache_sidecar.telemetry import RequestTrace
from llmcache_sidecar.wire import cache_status, controls, keys
from llmcache_sidecar.wire.controls import ControlError, RequestControls

logger = logging.getLogger(__name__)
EPOCH_REFRESH_SECONDS = 1.0
"""How stale this pod's view of a flush made by another pod may be."""
BACKEND_UNAVAILABLE = "backend-unavailable"
"""Cache-Status detail while the configured backend cannot be built."""
_LEASE_POLL = (0.02, 0.25)  # first and longest gap between polls for another pod's answer


async def handle(request: web.Request) -> web.StreamResponse:
    """Reverse-proxy mode: `/<provider>/<path>` is forwarded to that provider's upstream."""
    route = request.app[STATE].runtime.routes.get(request.match_info["provider"])
    if route is None:
        return _error(
            404, "unknown_provider", f"llmcache: no provider named {request.match_info['provider']!r} is configured"
        )
    return await serve(request, route, request.match_info["path"])


async def serve(request: web.Request, route: Route, tail: str) -> web.StreamResponse:
    """Answer one request bound for `route` (path `tail` below its upstream), from the cache if possible.

    Both modes end here: reverse proxy (`handle`) and transparent interception.
    """
    state = request.app[STATE]
    rt = state.runtime
    match = route.kind.cacheable.match(tail) if request.method == "POST" and rt.caching else None
    tel = RequestTrace(request, route.name, route.kind.name, match.group("endpoint") if match else "other")
    response: web.StreamResponse | None = None
    token = otel_context.attach(tel.context) if tel.context is not None else None  # log lines carry the trace id
    try:
        if match is None:
            response = await _relay(request, route, tail, request.content, status_header=None)
        else:
            response = await _serve_cacheable(request, state, rt, route, tail, tel)
        return response
    finally:
        if response is None:
            tel.status = "error"
        tel.finish(
            http_status=response.status if response is not None else 500, aggregates=state.aggregates, prices=rt.prices
        )
        if token is not None:
            otel_context.detach(token)


async def _serve_cacheable(
    request: web.Request, state: State, rt: Runtime, route: Route, tail: str, tel: RequestTrace
) -> web.StreamResponse:
    body, complete = await _read_capped(request, rt.settings.max_body_bytes)
    if not complete:
        return await _bypass(request, route, tail, _chain(body, request.content), "too-large", state, tel)
    key_headers = tuple(request.headers.get(h) for h in route.kind.key_headers)
    memo_key = rt.digests.key(route.name, tail, request.query_string, key_headers, body)
    parsed: dict[str, Any] | None = None
    known = rt.digests.get(memo_key)
    if known is not None:  # seen before: no parsing, no canonical encoding
        digest: str | None = known[0]
        tel.set_model(known[1])
        body_cache = None  # a body with a `cache` field is never remembered
    else:
        try:
            loaded = orjson.loads(body)
        except orjson.JSONDecodeError:
            loaded = None
        if not isinstance(loaded, dict):
            return await _bypass(request, route, tail, body, "not-json", state, tel)
        parsed, digest = loaded, None
        tel.set_model(route.kind.model(tail, parsed))
        body_cache = parsed.pop("cache", None)
        if body_cache is not None:
            body = orjson.dumps(parsed)  # the control field never goes upstream
    try:
        ctl = controls.parse(request.headers, body_cache)
    except ControlError as exc:
        return await _bypass(request, route, tail, body, exc.reason, state, tel)
    if rt.backend_error is not None:  # no backend could be built (a secret file is unreadable)
        return await _bypass(request, route, tail, body, BACKEND_UNAVAILABLE, state, tel)
    if ctl.key is not None:
        digest = keys.caller_digest(provider=route.name, path=tail, caller_key=ctl.key)
    elif digest is None:
        assert parsed is not None
        digest = _request_digest(request, rt, route, tail, parsed)
        if body_cache is None:
            rt.digests.put(memo_key, digest, tel.model or None)

    key = tel.key = await _key(request, state, rt, route, ctl, digest)
    if ctl.lookup:
        started = time.perf_counter()
        entry = await rt.backend.get(key)
        ended = time.perf_counter()
        telemetry.backend_timing(rt.backend.name, "get", ended - started)
        tel.child(
            "llmcache.lookup", started, ended, {"llmcache.backend": rt.backend.name, "llmcache.hit": entry is not None}
        )
        if entry is not None and (ctl.max_age is None or time.time() - entry.created_at <= ctl.max_age):
            state.counters.hits += 1
            tel.status, tel.saved_usage, tel.saved_seconds = "hit", entry.usage, entry.elapsed
            return await _answer_hit(request, rt, entry, key)
        if parsed is None:
            parsed = orjson.loads(body)
        if (found := await semantic.lookup(state, rt, request, route, tail, parsed, ctl, key)) is not None:
            tel.status, tel.saved_usage, tel.saved_seconds = "semantic", found.entry.usage, found.entry.elapsed
            telemetry.SEMANTIC_SIMILARITY.record(found.similarity, {"llmcache.provider": route.name})
            return await _answer_hit(request, rt, found.entry, found.key, similarity=found.similarity)
    if parsed is None:
        parsed = orjson.loads(body)
    return await _answer_miss(request, state, rt, route, tail, body, parsed, ctl, key, tel)


async def _bypass(
    request: web.Request,
    route: Route,
    tail: str,
    data: bytes | AsyncIterator[bytes],
    reason: str,
    state: State,
    tel: RequestTrace,
) -> web.StreamResponse:
    """A cacheable endpoint, but this request cannot be cached: forward it, say why."""
    state.counters.bypasses += 1
    tel.status = "bypass"
    return await _relay(request, route, tail, data, cache_status.forward("bypass", detail=reason))


def _request_digest(request: web.Request, rt: Runtime, route: Route, tail: str, parsed: dict[str, Any]) -> str:
    query = (
        sorted((k, v) for k, v in request.query.items() if k not in route.kind.credential_query)
        if request.query_string
        else []
    )
    headers = [(h, request.headers[h]) for h in route.kind.key_headers if h in request.headers]
    return keys.request_digest(
        provider=route.name,
        upstream=route.upstream,
        path=tail,
        query=query,
        headers=headers,
        fields=keys.key_fields(parsed, rt.settings.key_params),
    )


async def _key(request: web.Request, state: State, rt: Runtime, route: Route, ctl: RequestControls, digest: str) -> str:
    """The full key: namespace (and sub-namespace), flush epoch, tenant, digest."""
    settings = rt.settings
    namespace = settings.namespace if ctl.namespace is None else f"{settings.namespace}/{ctl.namespace}"
    if settings.isolation == "credential":
        tenant = keys.tenant_of(route.kind.credential(request.headers, request.query))
    else:
        tenant = keys.SHARED_TENANT
    return keys.compose(namespace, await _epoch(state, rt), tenant, digest)


async def _epoch(state: State, rt: Runtime) -> str:
    """The namespace's flush epoch, re-read from the backend at most once a second."""
    now = time.monotonic()
    known = state.epoch
    if known is None or now - known[1] > EPOCH_REFRESH_SECONDS:
        known = state.epoch = (known[0] if known else 0, now)  # one refresh at a time
        value = await rt.backend.get_epoch(rt.settings.namespace)
        if value >= 0:
            known = state.epoch = (value, now)
    return f"e{known[0]}{rt.flush_suffix}"


async def _answer_hit(
    request: web.Request, rt: Runtime, entry: CachedResponse, key: str, *, similarity: float | None = None
) -> web.StreamResponse:
    headers = CIMultiDict(entry.headers)
    headers["Cache-Status"] = cache_status.hit(detail="semantic" if similarity is not None else None)
    if similarity is not None:
        headers["x-llmcache-similarity"] = f"{similarity:.4f}"
    headers["Age"] = str(max(0, int(time.time() - entry.created_at)))
    headers["x-llmcache-key"] = key
    if not entry.is_stream:
        return web.Response(status=entry.status, body=entry.body, headers=headers)
    response = web.StreamResponse(status=entry.status, headers=headers)
    try:
        await response.prepare(request)
        if rt.settings.replay == "paced" and entry.chunk_times:
            await streaming.replay_paced(response, entry)
        else:
            await response.write(entry.body)
        await response.write_eof()
    except ConnectionResetError:
        logger.debug("client left during a replay of %s", keys.short(key))
    return response


async def _answer_miss(
    request: web.Request,
    state: State,
    rt: Runtime,
    route: Route,
    tail: str,
    body: bytes,
    parsed: dict[str, Any],
    ctl: RequestControls,
    key: str,
    tel: RequestTrace,
) -> web.StreamResponse:
    coalescing = rt.settings.coalesce.enabled and ctl.lookup
    if coalescing and (flight := state.coalescer.join(key)) is not None:
        try:
            head = await asyncio.wait_for(flight.head(), rt.settings.coalesce.max_wait)
        except (TimeoutError, FlightFailed, aiohttp.ClientError, OSError):
            head = None
        if head is not None and head.ok:
            status = cache_status.hit(detail="coalesced-peer" if head.from_cache else "coalesced")
            tel.status = "coalesced"
            if head.is_stream:  # live from the first event; a cut reaches every reader alike
                state.counters.coalesced += 1
                return await _answer_from_flight(request, flight, head, key, status)
            try:
                answer = await flight.body()
            except FlightFailed:
                pass  # nothing was sent yet: this caller makes its own call below
            else:
                state.counters.coalesced += 1
                return _buffered(head, answer, key, status)
        # The leader failed: this caller makes its own call, uncoalesced.
        coalescing = False

    state.counters.misses += 1
    tel.status = "miss"
    flight = state.coalescer.lead(key) if coalescing else Flight()
    state.spawn(_fly(state, rt, route, tail, request, body, parsed, ctl, key, flight, tel, registered=coalescing))
    try:
        head = await flight.head()
    except (FlightFailed, aiohttp.ClientError, TimeoutError, OSError) as exc:
        state.counters.upstream_errors += 1
        logger.warning("upstream %s unreachable for %s: %s", route.name, keys.short(key), exc)
        return _error(502, "upstream_unreachable", f"llmcache: the {route.name} upstream could not be reached: {exc}")
    if head.from_cache:
        tel.status = "coalesced"
        status = cache_status.hit(detail="coalesced-peer")
    elif head.ok:
        status = cache_status.forward("miss" if ctl.lookup else "request", stored=ctl.store)
    else:
        status = cache_status.forward("miss" if ctl.lookup else "request")
    return await _answer_from_flight(request, flight, head, key, status)


async def _fly(
    state: State,
    rt: Runtime,
    route: Route,
    tail: str,
    request: web.Request,
    body: bytes,
    parsed: dict[str, Any],
    ctl: RequestControls,
    key: str,
    flight: Flight,
    tel: RequestTrace,
    *,
    registered: bool,
) -> None:
    """One upstream call (or another pod's answer), then the cache write. Owned by `state`."""
    leased = False
    try:
        if registered:
            leased = await rt.backend.acquire_lease(key, rt.settings.coalesce.max_wait)
            if not leased:
                entry = await _wait_for_peer(rt, key)
                if entry is not None:
                    _publish_entry(flight, entry)
                    return
        assert state.session is not None
        started = time.perf_counter()
        await upstream.fetch_into(
            state.session,
            flight,
            method=request.method,
            url=_upstream_url(route, tail, request),
            headers=upstream.request_headers(request.headers, cacheable=True),
            body=body,
            time_limit=route.timeout,
            trace_context=tel.context,
        )
        elapsed = time.perf_counter() - started
        if ctl.store and flight.error is None:
            head = await flight.head()
            model = route.kind.model(tail, parsed)
            entry = streaming.to_entry(head, flight.chunks, flight.times, kind=route.kind, model=model, elapsed=elapsed)
            if entry is not None:
                ttl = rt.settings.ttl if ctl.ttl is None else ctl.ttl
                stored_at = time.perf_counter()
                await rt.backend.set(key, entry, ttl)
                ended = time.perf_counter()
                telemetry.backend_timing(rt.backend.name, "set", ended - stored_at)
                tel.child(
                    "llmcache.store",
                    stored_at,
                    ended,
                    {"llmcache.backend": rt.backend.name, "llmcache.entry.bytes": len(entry.body)},
                )
                state.counters.stored += 1
                await semantic.remember(state, rt, key, ttl)
    finally:
        if registered:
            state.coalescer.land(key, flight)
        if leased:
            await rt.backend.release_lease(key)


async def _wait_for_peer(rt: Runtime, key: str) -> CachedResponse | None:
    """Another pod is fetching `key`: wait (bounded) for its answer to be stored.

    Returns None when the wait ends without it, or when the other pod gave up its
    lease (its call failed), so that this pod makes its own call.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + rt.settings.coalesce.max_wait
    gap, longest = _LEASE_POLL
    while loop.time() < deadline:
        await asyncio.sleep(gap)
        gap = min(gap * 1.5, longest)
        entry = await rt.backend.get(key)
        if entry is not None:
            return entry
        if await rt.backend.acquire_lease(key, rt.settings.coalesce.max_wait):
            return None
    return None


def _publish_entry(flight: Flight, entry: CachedResponse) -> None:
    flight.set_head(Head(entry.status, entry.headers, entry.is_stream, from_cache=True))
    flight.publish(entry.body)
    flight.finish()


async def _answer_from_flight(
    request: web.Request, flight: Flight, head: Head, key: str, status: str
) -> web.StreamResponse:
    if not head.is_stream:
        try:
            body = await flight.body()
        except FlightFailed as exc:
            return _error(502, "upstream_broken", f"llmcache: the upstream answer broke off: {exc}")
        return _buffered(head, body, key, status)
    response = web.StreamResponse(status=head.status, headers=_flight_headers(head, key, status))
    try:
        await response.prepare(request)
        async for chunk in flight.read():
            await response.write(chunk)
        await response.write_eof()
    except FlightFailed:
        _abort(request)  # the caller must see a broken stream, never a clean truncated one
    except ConnectionResetError:
        logger.debug("client left during the stream of %s", keys.short(key))
    return response


def _flight_headers(head: Head, key: str, status: str) -> CIMultiDict[str]:
    headers = CIMultiDict(head.headers if head.from_cache else upstream.response_headers(head.headers))
    headers["Cache-Status"] = status
    headers["x-llmcache-key"] = key
    return headers


def _buffered(head: Head, body: bytes, key: str, status: str) -> web.Response:
    return web.Response(status=head.status, body=body, headers=_flight_headers(head, key, status))


async def _relay(
    request: web.Request,
    route: Route,
    tail: str,
    data: bytes | aiohttp.StreamReader | AsyncIterator[bytes],
    status_header: str | None,
) -> web.StreamResponse:
    """Forward a request we do not cache and stream the answer back as it comes."""
    state = request.app[STATE]
    assert state.session is not None
    try:
        resp = await state.session.request(
            request.method,
            _upstream_url(route, tail, request),
            headers=upstream.request_headers(request.headers, cacheable=False),
            data=data,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=route.timeout),
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        state.counters.upstream_errors += 1
        logger.warning("upstream %s unreachable: %s", route.name, exc)
        return _error(502, "upstream_unreachable", f"llmcache: the {route.name} upstream could not be reached: {exc}")
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
            _abort(request)  # the upstream broke off: so does the caller's answer
            return response
        except ConnectionResetError:
            return response  # the caller left
        await response.write_eof()
        return response


def _upstream_url(route: Route, tail: str, request: web.Request) -> str:
    query = request.query_string
    return f"{route.upstream}/{tail}?{query}" if query else f"{route.upstream}/{tail}"


async def _read_capped(request: web.Request, cap: int) -> tuple[bytes, bool]:
    """The body if it is at most `cap` bytes (True), else what was read so far (False)."""
    length = request.content_length
    if length is not None and length > cap:
        return b"", False
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks), False


async def _chain(prefix: bytes, rest: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    async for chunk in rest.iter_any():
        yield chunk


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _error(status: int, code: str, message: str) -> web.Response:
    """An error of the sidecar's own, shaped like the providers' errors so SDKs show it."""
    body = orjson.dumps({"error": {"message": message, "type": "llmcache_error", "code": code}})
    return web.Response(status=status, body=body, content_type="application/json")

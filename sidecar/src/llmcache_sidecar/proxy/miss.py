"""The miss path: one upstream flight per key, shared by identical requests, then the cache write.

A miss joins the flight already fetching its key in this process (see `coalesce`), or
leads a new one. When it joins, it takes the leader's answer only if that answer is a
success; otherwise it makes its own call. A leader first asks the backend for the key's
lease: when another pod holds it, that pod is fetching the same answer, so this one
waits (bounded) for the answer to be stored instead of calling upstream too. The
flight's task belongs to the app's `State`, so a caller that hangs up cuts neither the
answer of the followers nor the write.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from llmcache_sidecar import semantic, telemetry
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import respond, streaming, upstream
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.proxy.coalesce import Flight, FlightFailed, Head, Reader
from llmcache_sidecar.proxy.runtime import Runtime
from llmcache_sidecar.wire import cache_status, keys

logger = logging.getLogger(__name__)
_LEASE_POLL = (0.02, 0.25)  # first and longest gap between polls for another pod's answer


RESPONSE_TOO_LARGE = "response-too-large"
"""Cache-Status detail of an answer past `maxResponseBytes`: streamed to the caller, not stored."""


async def answer(call: Call) -> web.StreamResponse:
    """Answer a request the cache did not: from a flight in progress, or from a new one."""
    state, settings, ctl, key = call.state, call.rt.settings, call.ctl, call.key
    coalescing = settings.coalesce.enabled and ctl.lookup
    if coalescing and (joined := state.coalescer.join(key)) is not None:
        flight, reader = joined
        try:
            response = await _follow(call, flight, reader)
        finally:
            reader.close()
        if response is not None:
            return response
        # The leader failed: this caller makes its own call, uncoalesced.
        coalescing = False

    state.counters.misses += 1
    call.tel.status = "miss"
    limit = call.rt.max_response_bytes
    if coalescing:
        flight, reader = state.coalescer.lead(key, limit)
    else:
        flight = Flight(limit)
        reader = flight.attach()
    try:
        state.spawn(_fly(call, flight, registered=coalescing))
        try:
            head = await flight.head()
        except (FlightFailed, aiohttp.ClientError, TimeoutError, OSError) as exc:
            state.counters.upstream_errors += 1
            name = call.route.name
            logger.warning("upstream %s unreachable for %s: %s", name, keys.short(key), exc)
            return respond.error(
                502, "upstream_unreachable", f"llmcache: the {name} upstream could not be reached: {exc}"
            )
        fwd = "miss" if ctl.lookup else "request"
        if head.from_cache:
            call.tel.status = "coalesced"
            status = cache_status.hit(detail="coalesced-peer")
        elif head.ok:
            if not head.is_stream:
                await flight.settled()  # whole, or known to be too large: the header can say which
            if flight.recording:
                status = cache_status.forward(fwd, stored=ctl.store)
            else:
                status = cache_status.forward(fwd, detail=RESPONSE_TOO_LARGE)
        else:
            status = cache_status.forward(fwd)
        return await respond.from_flight(call, flight, reader, head, status)
    finally:
        reader.close()


async def _follow(call: Call, flight: Flight, reader: Reader) -> web.StreamResponse | None:
    """Answer from the leader's flight; None when it failed (nothing was sent: the caller makes its own call)."""
    settings = call.rt.settings
    try:
        head = await asyncio.wait_for(flight.head(), settings.coalesce.max_wait)
    except (TimeoutError, FlightFailed, aiohttp.ClientError, OSError):
        return None
    if not head.ok:
        return None
    if not head.is_stream:  # a stream is followed live from its first event; a cut reaches every reader alike
        await flight.settled()
        if flight.error is not None:
            return None
    call.tel.status = "coalesced"
    call.state.counters.coalesced += 1
    status = cache_status.hit(detail="coalesced-peer" if head.from_cache else "coalesced")
    return await respond.from_flight(call, flight, reader, head, status)


async def _fly(call: Call, flight: Flight, *, registered: bool) -> None:
    """One upstream call (or another pod's answer), then the cache write. Owned by `call.state`."""
    rt, key = call.rt, call.key
    leased = False
    try:
        if registered:
            leased = await rt.backend.acquire_lease(key, rt.settings.coalesce.max_wait)
            if not leased:
                entry = await _wait_for_peer(rt, key)
                if entry is not None:
                    _publish_entry(flight, entry)
                    return
        session = call.state.session
        assert session is not None
        request, route = call.request, call.route
        started = time.perf_counter()
        await upstream.fetch_into(
            session,
            flight,
            method=request.method,
            url=upstream.url(route.upstream, call.raw_tail, request.rel_url.raw_query_string),
            headers=upstream.request_headers(request.headers, cacheable=True),
            body=call.body,
            time_limit=route.timeout,
            trace_context=call.tel.context,
        )
        if call.ctl.store and flight.error is None and flight.recording:
            await _store(call, flight, elapsed=time.perf_counter() - started)
    finally:
        if registered:
            call.state.coalescer.land(key, flight)
        if leased:
            await rt.backend.release_lease(key)


async def _store(call: Call, flight: Flight, *, elapsed: float) -> None:
    """Write a complete answer (a finished 2xx, a stream with its end marker) under the call's key."""
    head = await flight.head()
    model = call.tel.model or None  # what the route's kind read from this body (or its memo)
    kind = call.route.kind
    entry = streaming.to_entry(head, flight.chunks, flight.times, kind=kind, model=model, elapsed=elapsed)
    if entry is None:
        return
    backend = call.rt.backend
    ttl = call.rt.settings.ttl if call.ctl.ttl is None else call.ctl.ttl
    started = time.perf_counter()
    await backend.set(call.key, entry, ttl)
    ended = time.perf_counter()
    telemetry.backend_timing(backend.name, "set", ended - started)
    call.tel.child(
        "llmcache.store", started, ended, {"llmcache.backend": backend.name, "llmcache.entry.bytes": len(entry.body)}
    )
    call.state.counters.stored += 1
    await semantic.remember(call, ttl)


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

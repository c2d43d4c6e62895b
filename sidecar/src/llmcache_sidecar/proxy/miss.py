"""The miss path: one upstream flight per key, shared by identical requests, then the cache write.

A miss joins the flight already fetching its key in this process (see `coalesce`), or
leads a new one. When it joins, it takes the leader's answer only if that answer is a
success; otherwise it makes its own call. A leader first asks the backend for the key's
lease: when another pod holds it, that pod is fetching the same answer, so this one
waits (bounded) for the answer to be stored instead of calling upstream too. The
flight's task belongs to the app's `State`, so a caller that hangs up cuts neither the
answer of the followers nor the write.

With a stale entry at hand (`freshness.Use.FALLBACK`), a provider failure is answered
from it instead (`fallback.stale_on_error`), for the leader and for every follower that
sees the failure. A follower that wants the other delivery than the leader's (a plain
caller behind a streamed leader, or the reverse) waits for the whole answer and gets it
rendered (`render.fit`); one whose delivery cannot be rendered exactly makes its own call.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from llmcache_sidecar import semantic, telemetry
from llmcache_sidecar.backends import accepting_writes
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import fallback, recording, respond, streaming, upstream
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.proxy.coalesce import Flight, FlightFailed, Head, Reader
from llmcache_sidecar.proxy.runtime import Runtime
from llmcache_sidecar.wire import cache_status, freshness, keys, render

logger = logging.getLogger(__name__)
_LEASE_POLL = (0.02, 0.25)  # first and longest gap between polls for another pod's answer


RESPONSE_TOO_LARGE = "response-too-large"
"""Cache-Status detail of an answer past `maxResponseBytes`: streamed to the caller, not stored."""


async def answer(call: Call, stale: CachedResponse | None = None) -> web.StreamResponse:
    """Answer a request the cache did not: from a flight in progress, or from a new one.

    `stale`: an entry past its ttl that may stand in if the provider fails.
    """
    state, settings, ctl, key = call.state, call.rt.settings, call.ctl, call.key
    coalescing = settings.coalesce.enabled and ctl.lookup
    if coalescing and (joined := state.coalescer.join(key)) is not None:
        flight, reader = joined
        try:
            answered = await _follow(call, flight, reader, stale)
        finally:
            reader.close()
        if answered is not None:
            return answered
        coalescing = False  # the leader's answer is not this caller's: its own call, uncoalesced

    state.counters.misses += 1
    call.tel.status = "miss"
    limit = call.rt.max_response_bytes
    if coalescing:
        flight, reader = state.coalescer.lead(key, limit, call.shape)
    else:
        flight = Flight(limit, call.shape)
        reader = flight.attach()
    try:
        state.spawn(_fly(call, flight, registered=coalescing))
        try:
            head = await flight.head()
            if stale is not None and head.ok and not head.is_stream:
                await flight.settled()  # a plain answer that breaks off can still be replaced by the stale one
                if flight.error is not None:
                    raise FlightFailed(str(flight.error)) from flight.error
        except (FlightFailed, aiohttp.ClientError, TimeoutError, OSError) as exc:
            state.counters.upstream_errors += 1
            if stale is not None:
                cause = exc.__cause__ if isinstance(exc, FlightFailed) and exc.__cause__ is not None else exc
                answered = await fallback.stale_on_error(call, stale, status=None, error=cause)
                if answered is not None:  # (a response is a mapping: never tested for truth)
                    return answered
            name = call.route.name
            logger.warning("upstream %s unreachable for %s: %s", name, keys.short(key), exc)
            failed = respond.error(
                502, "upstream_unreachable", f"llmcache: the {name} upstream could not be reached: {exc}"
            )
            failed.headers["Cache-Status"] = cache_status.forward(
                "miss" if ctl.lookup else "request", detail="upstream-unreachable"
            )
            failed.headers["x-llmcache-key"] = key
            return failed
        if stale is not None and not head.ok and freshness.fallback_on(head.status):
            answered = await fallback.stale_on_error(call, stale, status=head.status)
            if answered is not None:
                return answered
        # RFC 9211's fwd=stale: an entry was found, past its ttl (not one max-age refused).
        fwd = "stale" if stale is not None and stale.staleness(time.time()) > 0 else "miss"
        if not ctl.lookup:
            fwd = "request"
        if head.from_cache:
            call.tel.status = "coalesced"
            status = cache_status.hit(detail="coalesced-peer")
        elif head.ok:
            if not head.is_stream:
                await flight.settled()  # whole, or known to be too large: the header can say which
            if flight.recording:
                status = cache_status.forward(fwd, stored=ctl.store and accepting_writes(call.rt.backend))
            else:
                status = cache_status.forward(fwd, detail=RESPONSE_TOO_LARGE)
        else:
            status = cache_status.forward(fwd)
        return await respond.from_flight(call, flight, reader, head, status)
    finally:
        reader.close()


async def _follow(
    call: Call, flight: Flight, reader: Reader, stale: CachedResponse | None
) -> web.StreamResponse | None:
    """A follower's answer from the leader's flight; None when it must make its own call (nothing was sent)."""
    state = call.state
    try:
        head = await asyncio.wait_for(flight.head(), call.rt.settings.coalesce.max_wait)
    except (TimeoutError, FlightFailed, aiohttp.ClientError, OSError) as exc:
        if stale is not None and flight.done and flight.error is not None:  # the leader's call failed
            return await fallback.stale_on_error(call, stale, status=None, error=flight.error)
        logger.debug("follower of %s makes its own call: %s", keys.short(call.key), exc)
        return None  # waited too long: this caller makes its own call
    if not head.ok:
        if stale is not None and freshness.fallback_on(head.status):
            return await fallback.stale_on_error(call, stale, status=head.status)
        return None
    status = cache_status.hit(detail="coalesced-peer" if head.from_cache else "coalesced")
    if render.same_delivery(flight.shape, call.shape):
        if not head.is_stream:  # a stream is followed live from its first event; a cut reaches every reader alike
            await flight.settled()
            if flight.error is not None:
                return await _stale_or_none(call, stale, flight.error)
        call.tel.status = "coalesced"
        state.counters.coalesced += 1
        return await respond.from_flight(call, flight, reader, head, status)
    # The other delivery: the whole answer, rendered as this caller asked (never past the limit).
    try:
        await flight.body()
    except FlightFailed:
        if flight.error is None:  # past the limit: never held whole, so never rendered; an own call
            return None
        return await _stale_or_none(call, stale, flight.error)
    whole = streaming.to_entry(head, flight.chunks, flight.times, kind=call.route.kind, model=None)
    fitted = render.fit(whole, call.shape) if whole is not None else None
    if fitted is None:
        return None
    call.tel.status = "coalesced"
    state.counters.coalesced += 1
    return await respond.hit(call, fitted, call.key, status=status)


async def _stale_or_none(call: Call, stale: CachedResponse | None, error: BaseException) -> web.StreamResponse | None:
    """After the leader's answer broke off: the stale entry if there is one (else None: an own call)."""
    if stale is None:
        return None
    return await fallback.stale_on_error(call, stale, status=None, error=error)


async def _fly(call: Call, flight: Flight, *, registered: bool) -> None:
    """One upstream call (or another pod's answer), then the cache write. Owned by `call.state`."""
    rt, key = call.rt, call.key
    leased = False
    try:
        if registered:
            leased = await rt.backend.acquire_lease(key, rt.settings.coalesce.max_wait)
            if not leased:
                entry = await _wait_for_peer(rt, key)
                fitted = render.fit(entry, call.shape) if entry is not None else None
                if fitted is not None:
                    _publish_entry(flight, fitted)
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
    settings, ctl = call.rt.settings, call.ctl
    ttl = settings.ttl if ctl.ttl is None else ctl.ttl
    entry = streaming.to_entry(head, flight.chunks, flight.times, kind=kind, model=model, elapsed=elapsed, ttl=ttl)
    if entry is None:
        return
    if call.rt.settings.recording == "record":
        entry = recording.stamp(call, entry)
    backend = call.rt.backend
    started = time.perf_counter()
    # Kept past its ttl for the stale window; fresh (answering every caller) for the ttl only.
    await backend.set(call.key, entry, freshness.keep_for(ttl, ctl, settings.stale_if_error))
    ended = time.perf_counter()
    telemetry.backend_timing(backend.name, "set", ended - started)
    call.tel.child(
        "llmcache.store", started, ended, {"llmcache.backend": backend.name, "llmcache.entry.bytes": len(entry.body)}
    )
    call.state.counters.stored += 1
    if call.ctl.semantic:
        await semantic.remember(call, ttl)


async def _wait_for_peer(rt: Runtime, key: str) -> CachedResponse | None:
    """Another pod is fetching `key`: wait (bounded) for its answer to be stored.

    Returns None when the wait ends without it, or when the other pod gave up its
    lease (its call failed), so that this pod makes its own call. An entry past its
    ttl (kept for stale-if-error) is not that answer: the wait goes on.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + rt.settings.coalesce.max_wait
    gap, longest = _LEASE_POLL
    while loop.time() < deadline:
        await asyncio.sleep(gap)
        gap = min(gap * 1.5, longest)
        entry = await rt.backend.get(key)
        if entry is not None and entry.staleness(time.time()) <= 0:
            return entry
        if await rt.backend.acquire_lease(key, rt.settings.coalesce.max_wait):
            return None
    return None


def _publish_entry(flight: Flight, entry: CachedResponse) -> None:
    flight.set_head(Head(entry.status, entry.headers, entry.is_stream, from_cache=True))
    flight.publish(entry.body)
    flight.finish()

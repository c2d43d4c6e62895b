"""The data path's entry: classify -> policy -> controls -> key -> lookup, then a hit or the miss path.

`handle` is the one handler of the data port. A request that is not a cacheable POST
passes through untouched (`relay`). A cacheable one is answered from the cache when it
can be (`respond`), and otherwise from a shared upstream flight (`miss`). Whatever goes
wrong with the cache, the call still goes upstream: the cache fails open.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from opentelemetry import context as otel_context

from llmcache_sidecar import semantic, telemetry
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import fallback, miss, recording, relay, respond
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.proxy.runtime import STATE, Route, Runtime, State
from llmcache_sidecar.telemetry import RequestTrace
from llmcache_sidecar.wire import cache_status, controls, freshness, keys, paths, render
from llmcache_sidecar.wire.controls import ControlError, RequestControls
from llmcache_sidecar.wire.freshness import Use
from llmcache_sidecar.wire.policy import CACHE, Decision

EPOCH_REFRESH_SECONDS = 1.0
"""How stale this pod's view of a flush made by another pod may be."""
BACKEND_UNAVAILABLE = "backend-unavailable"
"""Cache-Status detail while the configured backend cannot be built."""
NO_CREDENTIAL = "no-credential"
"""Cache-Status detail of a request without a credential under `isolation: credential`: whose it is
cannot be told, so it is not cached (a provider's `allowAnonymous` caches it, shared)."""


async def handle(request: web.Request) -> web.StreamResponse:
    """Reverse-proxy mode: `/<provider>/<path>` is forwarded to that provider's upstream."""
    route = request.app[STATE].runtime.routes.get(request.match_info["provider"])
    if route is None:
        return respond.error(
            404, "unknown_provider", f"llmcache: no provider named {request.match_info['provider']!r} is configured"
        )
    raw = request.raw_path
    # Without a percent sign the router's decoded tail is the raw one (the common case, for free).
    return await serve(request, route, request.match_info["path"] if "%" not in raw else route_tail(raw))


def route_tail(raw_target: str) -> str:
    """The raw path after `/<name>/` in a request target (its query left out).

    Origin form (`/openai/v1/...`), or absolute form (`http://host/openai/v1/...`), which
    aiohttp routes by its path alike.
    """
    raw_path = raw_target.partition("?")[0]
    if raw_path[:1] != "/":
        raw_path = "/" + raw_path.partition("://")[2].partition("/")[2]
    name_end = raw_path.find("/", 1)
    return raw_path[name_end + 1 :] if name_end > 0 else ""


async def serve(request: web.Request, route: Route, raw_tail: str) -> web.StreamResponse:
    """Answer one request bound for `route` (raw path `raw_tail` below its upstream), from the cache if possible.

    Both modes end here: reverse proxy (`handle`) and transparent interception. The raw
    path is what goes upstream; its decoded form (checked to name the same resource, see
    `wire.paths`) is what the cache classifies and keys.
    """
    if route.opaque:
        tail = raw_tail
    else:
        try:
            tail = paths.decode(raw_tail)
        except paths.PathError as exc:
            return respond.error(400, "invalid_path", f"llmcache: refused: {exc}; it could reach another path upstream")
    state = request.app[STATE]
    rt = state.runtime
    match = route.kind.cacheable.match(tail) if request.method == "POST" and rt.caching else None
    endpoint = match.group("endpoint") if match else "other"
    # A pass-through route is named after the host the app chose: a bounded label (telemetry.labels).
    provider = state.aggregates.hosts(route.name) if route.opaque else route.name
    tel = RequestTrace(request, provider, route.kind.name, endpoint, rt.trace_ratio)
    response: web.StreamResponse | None = None
    token = otel_context.attach(tel.context) if tel.context is not None else None  # log lines carry the trace id
    try:
        if match is None:
            if rt.settings.recording == "replay":  # nothing goes upstream in replay mode
                response = recording.not_replayable(f"{request.method} /{route.name}/{tail} is not cacheable")
                return response
            response = await relay.relay(request, route, raw_tail, request.content, status_header=None)
        else:
            response = await _serve_cacheable(request, state, rt, route, tail, raw_tail, tel)
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
    request: web.Request, state: State, rt: Runtime, route: Route, tail: str, raw_tail: str, tel: RequestTrace
) -> web.StreamResponse:
    """Read, key and look up a cacheable request; past a miss, `miss.answer` takes over."""
    try:
        body, complete = await _read_capped(request, rt.settings.max_body_bytes)
    except web.RequestPayloadError as exc:  # a body its Content-Encoding does not describe
        encoding = request.headers.get("Content-Encoding", "none")
        message = f"llmcache: the request body cannot be decoded as its Content-Encoding ({encoding}) says: {exc}"
        return respond.error(400, "undecodable_body", message)
    if not complete:
        return await _bypass(request, route, raw_tail, relay.chain(body, request.content), "too-large", tel)
    key_headers = tuple(request.headers.get(h) for h in route.kind.key_headers)
    memo_key = rt.digests.key(route.name, route.upstream, tail, request.query_string, key_headers, body)
    parsed: dict[str, Any] | None = None
    known = rt.digests.get(memo_key)
    decision: Decision
    if known is not None:  # seen before: no parsing, no canonical encoding, no rule evaluated
        digest: str | None = known[0]
        tel.set_model(known[1])
        shape = known[2]
        decision = known[3]
        body_cache = None  # a body with a `cache` field is never remembered
    else:
        try:
            loaded = orjson.loads(body)
        except orjson.JSONDecodeError:
            loaded = None
        if not isinstance(loaded, dict):
            return await _bypass(request, route, raw_tail, body, "not-json", tel)
        parsed, digest = loaded, None
        tel.set_model(route.kind.model(tail, parsed))
        shape = render.shape_of(route.kind.name, tel.endpoint, parsed, share=rt.settings.share_stream_entries)
        body_cache = parsed.pop("cache", None)
        if body_cache is not None:
            body = orjson.dumps(parsed)  # the control field never goes upstream
        decision = rt.policy.decide(
            provider=route.name, kind=route.kind.name, endpoint=tel.endpoint, model=tel.model or None, body=parsed
        )
    try:
        ctl = controls.parse(request.headers, body_cache)
    except ControlError as exc:
        return await _bypass(request, route, raw_tail, body, exc.reason, tel)
    if decision.bypass is not None:
        return await _bypass(request, route, raw_tail, body, decision.bypass, tel)
    if decision is not CACHE:
        ctl = decision.applied(ctl)
    if rt.settings.recording != "live":
        ctl = ctl.recording(rt.settings.recording, rt.settings.recording_ttl)
    if rt.backend_error is not None:  # no backend could be built (a secret file is unreadable)
        telemetry.backend_failed(rt.backend.name, "get", telemetry.UNAVAILABLE)
        return await _bypass(request, route, raw_tail, body, BACKEND_UNAVAILABLE, tel)
    tenant = _tenant(request, rt, route)
    if tenant is None:
        return await _bypass(request, route, raw_tail, body, NO_CREDENTIAL, tel)
    if ctl.key is not None:
        digest = keys.caller_digest(provider=route.name, upstream=route.upstream, path=tail, caller_key=ctl.key)
    elif digest is None:
        assert parsed is not None
        digest = _request_digest(request, rt, route, tail, parsed, shape)
        if body_cache is None:
            rt.digests.put(memo_key, digest, tel.model or None, shape, decision)

    key = tel.key = await _key(state, rt, ctl, tenant, digest)
    call = Call(request, state, rt, route, tail, raw_tail, body, ctl, key, tel, shape)
    stale: CachedResponse | None = None  # past its ttl: stands in if the provider fails
    if ctl.lookup:
        backend = rt.backend
        if not tel.traced and not telemetry.is_timed(backend.name):
            entry = await backend.get(key)  # an in-process lookup, not traced: nothing to time
        else:
            started = time.perf_counter()
            entry = await backend.get(key)
            ended = time.perf_counter()
            telemetry.backend_timing(backend.name, "get", ended - started)
            tel.child(
                "llmcache.lookup", started, ended, {"llmcache.backend": backend.name, "llmcache.hit": entry is not None}
            )
        if entry is not None:
            use = freshness.judge(entry, ctl, time.time(), rt.settings.stale_if_error)
            if use is Use.FRESH and (fitted := render.fit(entry, shape)) is not None:
                state.counters.hits += 1
                tel.status, tel.saved_usage, tel.saved_seconds = "hit", entry.usage, entry.elapsed
                return await respond.hit(call, fitted, key)
            if use is Use.STALE and (fitted := render.fit(entry, shape)) is not None:
                return await fallback.stale_hit(call, entry, fitted)
            if use is Use.FALLBACK:
                stale = entry
        if rt.semantic is not None and ctl.semantic:
            found = await semantic.lookup(call, orjson.loads(body) if parsed is None else parsed)
            if found is not None and (fitted := render.fit(found.entry, shape)) is not None:
                tel.status, tel.saved_usage, tel.saved_seconds = "semantic", found.entry.usage, found.entry.elapsed
                telemetry.SEMANTIC_SIMILARITY.record(found.similarity, {"llmcache.provider": route.name})
                return await respond.hit(call, fitted, found.key, similarity=found.similarity)
    if rt.settings.recording == "replay":
        return recording.replay_miss(call, parsed)
    if ctl.only_if_cached:
        return fallback.only_if_cached(call)
    return await miss.answer(call, stale)


async def _bypass(
    request: web.Request,
    route: Route,
    raw_tail: str,
    data: bytes | AsyncIterator[bytes],
    reason: str,
    tel: RequestTrace,
) -> web.StreamResponse:
    """A cacheable endpoint, but this request cannot be cached: forward it, say why."""
    if request.app[STATE].runtime.settings.recording == "replay":  # nothing goes upstream in replay mode
        return recording.not_replayable(f"this request cannot be cached ({reason})")
    request.app[STATE].counters.bypasses += 1
    tel.status = "bypass"
    return await relay.relay(request, route, raw_tail, data, cache_status.forward("bypass", detail=reason))


def _request_digest(
    request: web.Request, rt: Runtime, route: Route, tail: str, parsed: dict[str, Any], shape: render.Shape
) -> str:
    query = (
        sorted((k, v) for k, v in request.query.items() if k not in route.kind.credential_query)
        if request.query_string
        else []
    )
    headers = [(h, request.headers[h]) for h in route.kind.key_headers if h in request.headers]
    fields = keys.key_fields(parsed, rt.settings.key_params)
    return keys.request_digest(
        provider=route.name,
        upstream=route.upstream,
        path=tail,
        query=query,
        headers=headers,
        fields=render.key_fields(fields) if shape.format is not None else fields,
    )


def _tenant(request: web.Request, rt: Runtime, route: Route) -> str | None:
    """Whose entries a request reads and writes; None: it carries no credential and may not be cached."""
    if rt.settings.isolation != "credential":
        return keys.SHARED_TENANT
    credential = route.kind.credential(request.headers, request.query, route.credential_headers)
    if credential is None:
        return keys.ANONYMOUS_TENANT if route.allow_anonymous else None
    return keys.tenant_of(credential, rt.tenant_salt)


async def _key(state: State, rt: Runtime, ctl: RequestControls, tenant: str, digest: str) -> str:
    """The full key: namespace (and sub-namespace), flush epoch, tenant, digest."""
    settings = rt.settings
    namespace = settings.namespace if ctl.namespace is None else f"{settings.namespace}/{ctl.namespace}"
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
    return keys.epoch_tag(known[0], rt.flush_suffix)


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

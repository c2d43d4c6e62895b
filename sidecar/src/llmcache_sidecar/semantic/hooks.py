"""The two places the data path calls into semantic caching.

`lookup` runs on an exact miss, before the request goes upstream; `remember` runs
after an answer has been stored. The proxy calls each in one line, so the semantic
cache stays out of the data path's own logic. The per-request controls are read
here: `x-llmcache-semantic: off` skips the lookup, and
`x-llmcache-semantic-threshold: 0.9` sets this request's similarity threshold (an
unreadable value also skips it). A request with a caller-chosen key
(`x-llmcache-key`) or with `no-cache` is never looked up by meaning. With a judge
whose `minSimilarity` is below the threshold, candidates are searched from there
(every one of them is judged), unless the request set its own threshold.

The request (`proxy.call.Call`) and the app's state, runtime and route it carries are
described here by protocols, so that this package does not import the proxy that holds
them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from llmcache_sidecar.backends import CacheBackend
from llmcache_sidecar.config import Settings
from llmcache_sidecar.semantic import bucket
from llmcache_sidecar.semantic.judge import Judging
from llmcache_sidecar.semantic.matcher import SemanticCache, SemanticCounters, SemanticHit
from llmcache_sidecar.telemetry import PriceBook
from llmcache_sidecar.wire.controls import RequestControls
from llmcache_sidecar.wire.providers import WireFormat

OFF_HEADER = "x-llmcache-semantic"
THRESHOLD_HEADER = "x-llmcache-semantic-threshold"


class RouteLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> WireFormat: ...
    @property
    def upstream(self) -> str: ...


class RuntimeLike(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def backend(self) -> CacheBackend: ...
    @property
    def semantic(self) -> SemanticCache | None: ...
    @property
    def routes(self) -> Mapping[str, RouteLike]: ...
    @property
    def prices(self) -> PriceBook: ...


class StateLike(Protocol):
    session: aiohttp.ClientSession | None
    semantic: SemanticCounters


class CallLike(Protocol):
    """One cacheable request whose key is known (`proxy.call.Call`)."""

    @property
    def request(self) -> web.Request: ...
    @property
    def state(self) -> StateLike: ...
    @property
    def rt(self) -> RuntimeLike: ...
    @property
    def route(self) -> RouteLike: ...
    @property
    def tail(self) -> str: ...
    @property
    def ctl(self) -> RequestControls: ...
    @property
    def key(self) -> str: ...


async def lookup(call: CallLike, parsed: Mapping[str, Any]) -> SemanticHit | None:
    """A verified answer to a near-duplicate of this request's prompt (its body: `parsed`), or None."""
    state, rt, request, route, ctl, key = call.state, call.rt, call.request, call.route, call.ctl, call.key
    cache = rt.semantic
    if cache is None or state.session is None:
        return None
    threshold = _threshold(request.headers, cache.settings.threshold)
    if not ctl.lookup or ctl.key is not None or threshold is None:
        state.semantic.skipped += 1
        return None
    judging = None
    if cache.judge is not None:
        judge = cache.judge.settings
        if judge.min_similarity is not None and THRESHOLD_HEADER not in request.headers:
            threshold = min(threshold, judge.min_similarity)
        judge_route = rt.routes.get(judge.provider)
        judging = Judging(judge_route, rt.prices) if judge_route is not None else None
    query = (
        sorted((k, v) for k, v in request.query.items() if k not in route.kind.credential_query)
        if request.query_string
        else []
    )
    probe = bucket.probe(
        kind=route.kind,
        provider=route.name,
        upstream=route.upstream,
        tail=call.tail,
        query=query,
        headers=[(h, request.headers[h]) for h in route.kind.key_headers if h in request.headers],
        body=parsed,
        key_params=rt.settings.key_params,
        key=key,
    )
    if probe is None:
        state.semantic.skipped += 1
        return None
    return await cache.lookup(
        state.session,
        state.semantic,
        rt.backend,
        probe,
        key=key,
        threshold=threshold,
        max_age=ctl.max_age,
        judging=judging,
    )


async def remember(call: CallLike, ttl: float) -> None:
    """Index the prompt whose answer was just stored under the call's key (if it was looked up)."""
    semantic = call.rt.semantic
    if semantic is not None:
        await semantic.remember(call.state.semantic, call.key, ttl)


def _threshold(headers: Mapping[str, str], default: float) -> float | None:
    """This request's threshold; None when it opted out or sent one that cannot be read."""
    if headers.get(OFF_HEADER, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    raw = headers.get(THRESHOLD_HEADER)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None

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

The app's state, runtime and route are described here by protocols, so that this
package does not import the runtime that holds it.
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
from llmcache_sidecar.wire.providers import ProviderKind

OFF_HEADER = "x-llmcache-semantic"
THRESHOLD_HEADER = "x-llmcache-semantic-threshold"


class RouteLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> ProviderKind: ...
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


async def lookup(
    state: StateLike,
    rt: RuntimeLike,
    request: web.Request,
    route: RouteLike,
    tail: str,
    parsed: Mapping[str, Any],
    ctl: RequestControls,
    key: str,
) -> SemanticHit | None:
    """A verified answer to a near-duplicate of this request's prompt, or None."""
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
        tail=tail,
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


async def remember(state: StateLike, rt: RuntimeLike, key: str, ttl: float) -> None:
    """Index the prompt whose answer was just stored under `key` (if it was looked up)."""
    if rt.semantic is not None:
        await rt.semantic.remember(state.semantic, key, ttl)


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

"""The `Cache-Status` response header (RFC 9211) and `Age`.

Cache-Status: llmcache; hit; detail=coalesced
Cache-Status: llmcache; fwd=miss; stored
Cache-Status: llmcache; fwd=request; stored       (no-cache: lookup skipped)
Cache-Status: llmcache; fwd=bypass; detail=not-json
Cache-Status: llmcache; hit; ttl=-40; detail=stale                     (max-stale accepted it)
Cache-Status: llmcache; fwd=stale; fwd-status=503; ttl=-40; detail=stale-if-error
Cache-Status: llmcache; detail=only-if-cached     (504: nothing stored, never forwarded)
Cache-Status: llmcache; fwd=bypass; detail=conversation  (a policy rule, or the built-in one)
Cache-Status: llmcache; detail=replay-miss               (replay mode: not forwarded, a 504)

RFC 9211 2.1: `hit` means the request was *not* forwarded. A stale entry served
because the provider failed was forwarded first, so it is `fwd=stale` (the cache
selected a stale response and went forward), with `fwd-status` the provider's own
status (absent when none came: a timeout, no connection), a negative `ttl` (2.4: "may
be negative, to indicate staleness") and `detail=stale-if-error` naming what served
it. A stale entry that `max-stale` lets through without going upstream is a `hit`.
"""

from __future__ import annotations

import math

CACHE_NAME = "llmcache"
ONLY_IF_CACHED = f"{CACHE_NAME}; detail=only-if-cached"


def hit(*, ttl: int | None = None, detail: str | None = None) -> str:
    value = f"{CACHE_NAME}; hit"
    if ttl is not None:
        value += f"; ttl={ttl}"
    if detail:
        value += f"; detail={detail}"
    return value


def not_forwarded(*, detail: str) -> str:
    """Neither a hit nor forwarded: the cache answered itself (a replay miss is a 504)."""
    return f"{CACHE_NAME}; detail={detail}"


def forward(fwd: str, *, stored: bool = False, detail: str | None = None) -> str:
    """`fwd` is RFC 9211's reason for going upstream: miss, request, bypass, stale, ..."""
    value = f"{CACHE_NAME}; fwd={fwd}"
    if stored:
        value += "; stored"
    if detail:
        value += f"; detail={detail}"
    return value


def stale_if_error(*, fwd_status: int | None, staleness: float) -> str:
    """A stale entry served because the provider failed (`fwd_status`: its status, if any)."""
    value = f"{CACHE_NAME}; fwd=stale"
    if fwd_status is not None:
        value += f"; fwd-status={fwd_status}"
    return value + f"; ttl={ttl_of(staleness)}; detail=stale-if-error"


def stale_hit(*, staleness: float) -> str:
    """A stale entry the caller accepted with max-stale: answered without going upstream."""
    return hit(ttl=ttl_of(staleness), detail="stale")


def ttl_of(staleness: float) -> int:
    """RFC 9211's `ttl` (remaining freshness, whole seconds) of an entry `staleness` s past it."""
    return math.floor(-staleness)

"""The `Cache-Status` response header (RFC 9211) and `Age`.

Cache-Status: llmcache; hit; ttl=3541
Cache-Status: llmcache; hit; detail=coalesced
Cache-Status: llmcache; fwd=miss; stored
Cache-Status: llmcache; fwd=request; stored       (no-cache: lookup skipped)
Cache-Status: llmcache; fwd=bypass; detail=not-json
Cache-Status: llmcache; fwd=bypass; detail=conversation  (a policy rule, or the built-in one)
Cache-Status: llmcache; detail=replay-miss               (replay mode: not forwarded, a 504)
"""

from __future__ import annotations

CACHE_NAME = "llmcache"


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
    """`fwd` is RFC 9211's reason for going upstream: miss, request, bypass, ..."""
    value = f"{CACHE_NAME}; fwd={fwd}"
    if stored:
        value += "; stored"
    if detail:
        value += f"; detail={detail}"
    return value

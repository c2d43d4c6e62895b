"""The `Cache-Status` response header (RFC 9211) and `Age`.

Cache-Status: llmcache; hit; detail=coalesced
Cache-Status: llmcache; fwd=miss; stored
Cache-Status: llmcache; fwd=request; stored       (no-cache: lookup skipped)
Cache-Status: llmcache; fwd=bypass; detail=not-json
"""

from __future__ import annotations

CACHE_NAME = "llmcache"


def hit(*, detail: str | None = None) -> str:
    value = f"{CACHE_NAME}; hit"
    if detail:
        value += f"; detail={detail}"
    return value


def forward(fwd: str, *, stored: bool = False, detail: str | None = None) -> str:
    """`fwd` is RFC 9211's reason for going upstream: miss, request, bypass, ..."""
    value = f"{CACHE_NAME}; fwd={fwd}"
    if stored:
        value += "; stored"
    if detail:
        value += f"; detail={detail}"
    return value

"""Cache-Status values (RFC 9211)."""

from llmcache_sidecar.wire import cache_status


def test_hit_values() -> None:
    assert cache_status.hit() == "llmcache; hit"
    assert cache_status.hit(detail="coalesced") == "llmcache; hit; detail=coalesced"


def test_forward_values() -> None:
    assert cache_status.forward("miss", stored=True) == "llmcache; fwd=miss; stored"
    assert cache_status.forward("request") == "llmcache; fwd=request"
    assert cache_status.forward("bypass", detail="not-json") == "llmcache; fwd=bypass; detail=not-json"

"""Cache-Status values (RFC 9211)."""

from llmcache_sidecar.wire import cache_status


def test_hit_values() -> None:
    assert cache_status.hit() == "llmcache; hit"
    assert cache_status.hit(detail="coalesced") == "llmcache; hit; detail=coalesced"


def test_stale_values_follow_rfc_9211() -> None:
    # Went forward (the provider failed), so not a hit: fwd=stale with the provider's status.
    assert cache_status.stale_if_error(fwd_status=503, staleness=40.2) == (
        "llmcache; fwd=stale; fwd-status=503; ttl=-41; detail=stale-if-error"
    )
    assert cache_status.stale_if_error(fwd_status=None, staleness=0.5) == (
        "llmcache; fwd=stale; ttl=-1; detail=stale-if-error"
    )
    # max-stale: never went forward, so a hit, with a negative ttl.
    assert cache_status.stale_hit(staleness=12.0) == "llmcache; hit; ttl=-12; detail=stale"
    assert cache_status.ONLY_IF_CACHED == "llmcache; detail=only-if-cached"


def test_forward_values() -> None:
    assert cache_status.forward("miss", stored=True) == "llmcache; fwd=miss; stored"
    assert cache_status.forward("request") == "llmcache; fwd=request"
    assert cache_status.forward("bypass", detail="not-json") == "llmcache; fwd=bypass; detail=not-json"

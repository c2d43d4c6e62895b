"""The two-tier cache with entries kept past their freshness (staleIfError)."""

from __future__ import annotations

import time

from llmcache_sidecar.backends.dual import DualCache
from llmcache_sidecar.backends.memory import MemoryCache
from llmcache_sidecar.entry import CachedResponse


def answer(body: bytes, age: float) -> CachedResponse:
    return CachedResponse(200, (), body, time.time() - age, ttl=60.0)


def tiers() -> tuple[DualCache, MemoryCache, MemoryCache]:
    front, back = MemoryCache(max_bytes=2**20, max_entries=10), MemoryCache(max_bytes=2**20, max_entries=10)
    return DualCache(front, back, front_ttl=600), front, back


async def test_a_stale_front_entry_does_not_hide_a_fresh_one_another_pod_stored_below() -> None:
    dual, front, back = tiers()
    await dual.set("k", answer(b"old", age=90), 660)  # both tiers hold it, stale now
    await back.set("k", answer(b"new", age=0), 660)  # another pod refreshed the shared tier

    got = await dual.get("k")

    assert got is not None and got.body == b"new"
    assert (await front.get("k")) == got  # and the front learns it


async def test_a_stale_entry_is_still_returned_when_no_tier_has_a_fresh_one() -> None:
    dual, _, _ = tiers()
    await dual.set("k", answer(b"old", age=90), 660)
    got = await dual.get("k")
    assert got is not None and got.body == b"old" and got.staleness(time.time()) > 0

"""Answers the cache gives without a provider answer: stale entries, and only-if-cached's 504.

- stale-if-error (RFC 5861): the provider failed (a 5xx or 429, a timeout, no
  connection, an answer that broke off before its first byte reached the caller) and an
  entry past its ttl, but within the stale window, is at hand: it answers, marked
  `Cache-Status: llmcache; fwd=stale; fwd-status=503; ttl=-40; detail=stale-if-error`,
  with an `Age` beyond its ttl. A failure after a stream's first byte cannot be
  taken back: that caller's connection is cut, as always.
- max-stale (RFC 9111 5.2.1.2): the caller accepts an entry that far past its ttl;
  it answers without going upstream (`llmcache; hit; ttl=-40; detail=stale`).
- only-if-cached (RFC 9111 5.2.1.7): nothing stored fits, and the caller forbade going
  upstream: `504`, shaped like a provider error so that SDKs show the message.

Each stale answer is counted (`llmcache.stale.served`, by reason) and logged in one
INFO line with the key's short hash and the provider, never a body.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from llmcache_sidecar import telemetry
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.proxy import respond
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.wire import cache_status, keys, render

logger = logging.getLogger(__name__)


def reason_of(status: int | None, error: BaseException | None = None) -> str:
    """The metric's reason for a failed upstream call: 5xx, 429, timeout or unreachable."""
    if status is not None:
        return "429" if status == 429 else "5xx"
    return "timeout" if isinstance(error, TimeoutError) else "unreachable"


async def stale_on_error(
    call: Call, stale: CachedResponse, *, status: int | None, error: BaseException | None = None
) -> web.StreamResponse | None:
    """Answer with `stale` because the provider failed (`status`, or `error` when none came).

    None when the entry cannot be given as this caller asked (see `render.fit`): the
    caller then gets the provider's failure, as without a stale entry.
    """
    fitted = render.fit(stale, call.shape)
    if fitted is None:
        return None
    reason = reason_of(status, error)
    staleness = stale.staleness(time.time())
    call.state.counters.stale += 1
    call.tel.status = "stale"
    telemetry.stale_served(call.route.name, reason)
    logger.info(
        "stale answer for %s: the %s upstream failed (%s), entry %.0fs past its ttl",
        keys.short(call.key),
        call.route.name,
        status if status is not None else type(error).__name__,
        max(staleness, 0.0),
    )
    header = cache_status.stale_if_error(fwd_status=status, staleness=staleness)
    return await respond.hit(call, fitted, call.key, status=header)


async def stale_hit(call: Call, entry: CachedResponse, fitted: CachedResponse) -> web.StreamResponse:
    """Answer with `entry` (as `fitted` for this caller), past its ttl but within the caller's max-stale."""
    call.state.counters.stale += 1
    tel = call.tel
    tel.status, tel.saved_usage, tel.saved_seconds = "stale", entry.usage, entry.elapsed
    telemetry.stale_served(call.route.name, "max-stale")
    header = cache_status.stale_hit(staleness=entry.staleness(time.time()))
    return await respond.hit(call, fitted, call.key, status=header)


def only_if_cached(call: Call) -> web.Response:
    """504: the caller asked for a stored answer only, and none fits (RFC 9111 5.2.1.7)."""
    call.state.counters.misses += 1
    call.tel.status = "miss"
    response = respond.error(
        504,
        "only_if_cached",
        "llmcache: the request says only-if-cached, and no stored answer fits it (nothing went upstream)",
    )
    response.headers["Cache-Status"] = cache_status.ONLY_IF_CACHED
    response.headers["x-llmcache-key"] = call.key
    return response

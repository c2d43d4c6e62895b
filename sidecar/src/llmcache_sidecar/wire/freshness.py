"""Whether a stored entry may answer, and how long an entry is kept.

An entry is fresh for its `ttl`. With `staleIfError` (or a request's
`stale-if-error=N`, RFC 5861) the backend keeps it that much longer, and in that time
it answers only in two cases: the caller accepts staleness (`max-stale`, RFC 9111
5.2.1.2), or the provider fails (a 5xx or 429, a timeout, no connection). Any other
provider answer, a 400 included, reaches the caller as it is: a stale entry never
hides an error that is the caller's to fix.

`max-age` limits fresh and max-stale answers; a fallback on a provider failure is
used "regardless of other freshness information" (RFC 5861 section 4). `no-cache`
skips the lookup, so it never gets a stale entry either (RFC 9111 4.2.4).
"""

from __future__ import annotations

from enum import Enum

from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.wire.controls import RequestControls


class Use(Enum):
    FRESH = "fresh"
    """Answer from it."""
    STALE = "stale"
    """Past its ttl, but the caller's max-stale accepts it: answer from it, not upstream."""
    FALLBACK = "fallback"
    """Go upstream; answer from it only if the provider fails."""
    NONE = "none"
    """As good as a miss."""


def judge(entry: CachedResponse, ctl: RequestControls, now: float, stale_if_error: float) -> Use:
    """How `entry` may serve a request with controls `ctl` at `now` (`stale_if_error`: the configured window)."""
    staleness = entry.staleness(now)
    young_enough = ctl.max_age is None or now - entry.created_at <= ctl.max_age
    if staleness <= 0 and young_enough:
        return Use.FRESH
    if staleness > 0 and young_enough and ctl.max_stale is not None and staleness <= ctl.max_stale:
        return Use.STALE
    limit = window(ctl, stale_if_error)
    if limit > 0 and staleness <= limit and not ctl.only_if_cached:
        return Use.FALLBACK
    return Use.NONE


def window(ctl: RequestControls, stale_if_error: float) -> float:
    """How long past its ttl an entry may stand in for a failed provider, for this request."""
    return stale_if_error if ctl.stale_if_error is None else ctl.stale_if_error


def keep_for(ttl: float, ctl: RequestControls, stale_if_error: float) -> float:
    """How long a backend keeps an entry fresh for `ttl`: the ttl plus the stale window."""
    return ttl + window(ctl, stale_if_error) if ttl > 0 else ttl


def fallback_on(status: int) -> bool:
    """Provider statuses a stale entry may stand in for: server errors and rate limits, no other 4xx."""
    return status >= 500 or status == 429

"""Whether a stored entry answers: fresh, stale but accepted (max-stale), a fallback, or nothing."""

from __future__ import annotations

import math

import pytest

from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.wire import freshness
from llmcache_sidecar.wire.controls import RequestControls
from llmcache_sidecar.wire.freshness import Use

NOW = 1_700_000_000.0
WINDOW = 600.0  # the configured staleIfError


def entry_aged(age: float, ttl: float | None = 60.0) -> CachedResponse:
    return CachedResponse(status=200, headers=(), body=b"{}", created_at=NOW - age, ttl=ttl)


@pytest.mark.parametrize(
    ("age", "ctl", "window", "expected"),
    [
        (10, RequestControls(), WINDOW, Use.FRESH),
        (90, RequestControls(), WINDOW, Use.FALLBACK),
        (90, RequestControls(), 0.0, Use.NONE),
        (700, RequestControls(), WINDOW, Use.NONE),  # past ttl + window
        (90, RequestControls(max_stale=60), WINDOW, Use.STALE),
        (90, RequestControls(max_stale=math.inf), 0.0, Use.STALE),
        (90, RequestControls(max_stale=10), WINDOW, Use.FALLBACK),
        (90, RequestControls(max_stale=60, max_age=80), WINDOW, Use.FALLBACK),  # max-age limits max-stale
        (30, RequestControls(max_age=20), WINDOW, Use.FALLBACK),  # refused by max-age, kept for a failure
        (30, RequestControls(max_age=20), 0.0, Use.NONE),
        (90, RequestControls(stale_if_error=0), WINDOW, Use.NONE),
        (90, RequestControls(stale_if_error=120), 0.0, Use.FALLBACK),
        (90, RequestControls(only_if_cached=True), WINDOW, Use.NONE),  # never goes upstream: nothing to fall back from
        (90, RequestControls(only_if_cached=True, max_stale=60), WINDOW, Use.STALE),
    ],
)
def test_an_entry_is_judged_by_its_age_and_the_request(
    age: float, ctl: RequestControls, window: float, expected: Use
) -> None:
    assert freshness.judge(entry_aged(age), ctl, NOW, window) is expected


def test_an_entry_of_format_1_is_fresh_as_long_as_it_is_kept() -> None:
    assert freshness.judge(entry_aged(10_000, ttl=None), RequestControls(), NOW, WINDOW) is Use.FRESH


def test_only_server_errors_and_rate_limits_let_a_stale_entry_stand_in() -> None:
    assert [s for s in (400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529) if freshness.fallback_on(s)] == [
        429, 500, 502, 503, 504, 529
    ]  # fmt: skip


def test_an_entry_is_kept_for_its_ttl_and_the_stale_window() -> None:
    assert freshness.keep_for(60, RequestControls(), WINDOW) == 660
    assert freshness.keep_for(60, RequestControls(stale_if_error=5), WINDOW) == 65
    assert freshness.keep_for(0, RequestControls(), WINDOW) == 0  # a zero ttl still stores nothing

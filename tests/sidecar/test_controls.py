"""Request controls: Cache-Control, x-llmcache-* headers and the LiteLLM body field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from llmcache_sidecar.wire import controls
from llmcache_sidecar.wire.controls import ControlError, RequestControls


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, None, RequestControls()),
        ({"cache-control": "no-cache"}, None, RequestControls(lookup=False)),
        ({"cache-control": "No-Store"}, None, RequestControls(store=False)),
        ({"cache-control": "max-age=30, no-store"}, None, RequestControls(store=False, max_age=30)),
        ({"cache-control": 'max-age="10"'}, None, RequestControls(max_age=10)),
        ({"x-llmcache-ttl": "600"}, None, RequestControls(ttl=600)),
        ({"x-llmcache-ttl": "5m"}, None, RequestControls(ttl=300)),
        ({"x-llmcache-namespace": "exp-1"}, None, RequestControls(namespace="exp-1")),
        ({"x-llmcache-key": "mine"}, None, RequestControls(key="mine")),
        ({}, {"no-cache": True}, RequestControls(lookup=False)),
        ({}, {"no-store": True, "ttl": 60}, RequestControls(store=False, ttl=60)),
        ({}, {"s-maxage": 30}, RequestControls(max_age=30)),
        ({}, {"namespace": "from-body"}, RequestControls(namespace="from-body")),
        ({"x-llmcache-ttl": "10"}, {"ttl": 20}, RequestControls(ttl=20)),
        ({"cache-control": "stale-if-error=600"}, None, RequestControls(stale_if_error=600)),
        ({"cache-control": "max-stale=30"}, None, RequestControls(max_stale=30)),
        ({"cache-control": "max-stale"}, None, RequestControls(max_stale=math.inf)),
        (
            {"cache-control": "only-if-cached, max-stale"},
            None,
            RequestControls(only_if_cached=True, max_stale=math.inf),
        ),
        ({}, {"stale-if-error": "10m", "max-stale": True}, RequestControls(stale_if_error=600, max_stale=math.inf)),
        ({}, {"only-if-cached": True, "max-stale": False}, RequestControls(only_if_cached=True)),
    ],
)
def test_controls_are_read_from_headers_and_body(headers: dict[str, str], body: Any, expected: RequestControls) -> None:
    assert controls.parse(headers, body) == expected


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"x-llmcache-ttl": "soon"}, None, "invalid-x-llmcache-ttl"),
        ({"cache-control": "max-age=abc"}, None, "invalid-cache-control"),
        ({"x-llmcache-namespace": "../up"}, None, "invalid-namespace"),
        ({"x-llmcache-namespace": "a:b"}, None, "invalid-namespace"),
        ({}, "not-a-dict", "invalid-body-cache"),
        ({}, {"ttl": -5}, "invalid-body-cache-ttl"),
        ({}, {"namespace": 7}, "invalid-namespace"),
        ({"cache-control": "stale-if-error"}, None, "invalid-cache-control"),
        ({"cache-control": "max-stale=-1"}, None, "invalid-cache-control"),
        ({}, {"stale-if-error": "soon"}, "invalid-body-cache-stale-if-error"),
    ],
)
def test_unreadable_controls_name_their_reason(headers: dict[str, str], body: Any, reason: str) -> None:
    with pytest.raises(ControlError) as error:
        controls.parse(headers, body)
    assert error.value.reason == reason


def test_requests_without_controls_share_one_default_object() -> None:
    assert controls.parse({"content-type": "application/json"}, None) is controls.DEFAULT

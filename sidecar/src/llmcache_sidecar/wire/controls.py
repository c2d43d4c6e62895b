"""What the caller asks of the cache, parsed once per request.

From standard `Cache-Control` request directives (no-cache, no-store, max-age=N,
max-stale[=N] and only-if-cached from RFC 9111, stale-if-error=N from RFC 5861),
the `x-llmcache-*` headers (ttl, namespace, key), and the LiteLLM-style body field
`"cache": {"no-cache": true, "no-store": true, "ttl": 60, "s-maxage": 30,
"namespace": "x", "stale-if-error": 600, "max-stale": 60, "only-if-cached": true}`,
which is removed before the request goes upstream. A body field wins over a header.
A value that cannot be read makes the request bypass the cache
(it still goes upstream) with the reason in `Cache-Status`; it never fails the call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmcache_sidecar.config import ConfigError, parse_duration

_SUBNAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ControlError(ValueError):
    """A cache control the caller sent cannot be read; `reason` goes into Cache-Status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestControls:
    lookup: bool = True
    """False for no-cache: do not answer from the cache (the fresh answer may be stored)."""
    store: bool = True
    """False for no-store."""
    max_age: float | None = None
    """Accept a stored answer only if younger than this many seconds."""
    ttl: float | None = None
    namespace: str | None = None
    """A sub-namespace below the configured one; it can never reach another namespace."""
    key: str | None = None
    """A caller-chosen key, instead of the one computed from the request."""
    stale_if_error: float | None = None
    """stale-if-error=N: how long past its ttl an entry may answer when the provider fails;
    also how long past its ttl an entry this request stores is kept. None: the configured
    `staleIfError`."""
    max_stale: float | None = None
    """max-stale[=N]: a stale entry is accepted, without going upstream, up to N seconds
    past its ttl (`math.inf` without a value, as RFC 9111 5.2.1.2 says)."""
    only_if_cached: bool = False
    """only-if-cached: answer from the cache or with 504, never go upstream (RFC 9111 5.2.1.7)."""
    semantic: bool = True
    """False when a policy rule turned the semantic cache off for this request."""

    def under_policy(self, ttl: float | None, semantic: bool) -> RequestControls:
        """These controls as a policy rule limits them: its ttl caps the caller's, its semantic: false stays."""
        if ttl is not None and self.ttl is not None:
            ttl = min(ttl, self.ttl)
        elif ttl is None:
            ttl = self.ttl
        return replace(self, ttl=ttl, semantic=self.semantic and semantic)

    def recording(self, mode: str, ttl: float) -> RequestControls:
        """These controls in record mode (every answer stored, for `ttl`) or replay mode (answer from the cache).

        A replay looks up exact entries only: a semantic lookup asks the embedder, which may
        be a provider's embeddings API, and a replay sends nothing out of the pod.
        """
        if mode == "record":
            return replace(self, store=True, ttl=ttl)
        return replace(self, lookup=True, store=False, max_age=None, semantic=False)


DEFAULT = RequestControls()
_HEADER_NAMES = ("cache-control", "x-llmcache-ttl", "x-llmcache-namespace", "x-llmcache-key")


def parse(headers: Mapping[str, str], body_cache: Any) -> RequestControls:
    """Controls from headers and the body's `cache` field (None when absent)."""
    if body_cache is None and not any(name in headers for name in _HEADER_NAMES):
        return DEFAULT
    lookup, store, max_age, ttl, namespace, key = True, True, None, None, None, None
    stale_if_error: float | None = None
    max_stale: float | None = None
    only_if_cached = False
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.strip().lower().partition("=")
        if name == "no-cache":
            lookup = False
        elif name == "no-store":
            store = False
        elif name == "max-age":
            max_age = _seconds(value.strip('"'), "cache-control")
        elif name == "stale-if-error":
            stale_if_error = _seconds(value.strip('"'), "cache-control")
        elif name == "max-stale":
            max_stale = _seconds(value.strip('"'), "cache-control") if value else math.inf
        elif name == "only-if-cached":
            only_if_cached = True
    if "x-llmcache-ttl" in headers:
        ttl = _seconds(headers["x-llmcache-ttl"], "x-llmcache-ttl")
    namespace = headers.get("x-llmcache-namespace")
    key = headers.get("x-llmcache-key") or None
    if body_cache is not None:
        if not isinstance(body_cache, dict):
            raise ControlError("invalid-body-cache")
        if body_cache.get("no-cache"):
            lookup = False
        if body_cache.get("no-store"):
            store = False
        if "ttl" in body_cache:
            ttl = _seconds(body_cache["ttl"], "body-cache-ttl")
        if "s-maxage" in body_cache:
            max_age = _seconds(body_cache["s-maxage"], "body-cache-s-maxage")
        if "namespace" in body_cache:
            namespace = body_cache["namespace"]
        if "stale-if-error" in body_cache:
            stale_if_error = _seconds(body_cache["stale-if-error"], "body-cache-stale-if-error")
        if "max-stale" in body_cache:
            raw = body_cache["max-stale"]
            if raw is True:
                max_stale = math.inf
            elif raw is not False:
                max_stale = _seconds(raw, "body-cache-max-stale")
        if body_cache.get("only-if-cached"):
            only_if_cached = True
    if namespace is not None and not (isinstance(namespace, str) and _SUBNAMESPACE.match(namespace)):
        raise ControlError("invalid-namespace")
    return RequestControls(lookup, store, max_age, ttl, namespace, key, stale_if_error, max_stale, only_if_cached)


def _seconds(raw: Any, where: str) -> float:
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    try:
        return parse_duration(raw, where)
    except ConfigError as exc:
        raise ControlError(f"invalid-{where}") from exc

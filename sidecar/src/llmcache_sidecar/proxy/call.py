"""One cacheable request on its way through the data path, as one frozen value.

`handler` builds it once per request, when the key is known; the lookup, the miss path
(`miss`), the answer writers (`respond`) and the semantic hooks read it, instead of
passing ten values from function to function.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from llmcache_sidecar.proxy.runtime import Route, Runtime, State
from llmcache_sidecar.telemetry import RequestTrace
from llmcache_sidecar.wire.controls import RequestControls


@dataclass(frozen=True, slots=True)
class Call:
    request: web.Request
    state: State
    """The app's one mutable object: counters, flights, background tasks."""
    rt: Runtime
    """The runtime this request started with: a reload swaps `state.runtime`, never this."""
    route: Route
    tail: str
    """The path below the provider's upstream."""
    body: bytes
    """The body as it goes upstream (a `cache` control field taken out)."""
    ctl: RequestControls
    key: str
    tel: RequestTrace

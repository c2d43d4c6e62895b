"""The sidecar's state: what a request reads, and what a reload swaps.

`Runtime` is derived from one `Settings` and never changes; a reload builds a new
one and swaps `State.runtime`, one reference. `State` is the app's single mutable
object (counters, flights, background tasks), reached through `STATE`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from llmcache_sidecar import keys, telemetry
from llmcache_sidecar.backends import CacheBackend, build_backend
from llmcache_sidecar.coalesce import Coalescer
from llmcache_sidecar.config import Settings
from llmcache_sidecar.providers import KINDS, ProviderKind
from llmcache_sidecar.semantic import SemanticCache, SemanticCounters, build_semantic
from llmcache_sidecar.telemetry import Aggregates

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """A configured provider: `/<name>/...` goes to `upstream/...`."""

    name: str
    kind: ProviderKind
    upstream: str
    timeout: float


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    routes: dict[str, Route]
    backend: CacheBackend
    caching: bool = True
    """False when the config file is gone: every request passes through."""
    semantic: SemanticCache | None = None
    digests: keys.DigestMemo = field(default_factory=keys.DigestMemo)
    """Raw body -> digest, so a repeated request is not parsed again (see keys.DigestMemo)."""
    prices: telemetry.PriceBook = field(default_factory=lambda: telemetry.PriceBook({}))

    @property
    def flush_suffix(self) -> str:
        flush = self.settings.flush
        return "" if not flush else "." + hashlib.sha256(flush.encode()).hexdigest()[:8]


def routes_for(settings: Settings) -> dict[str, Route]:
    return {
        name: Route(name, KINDS[p.kind or name], p.upstream or "", p.timeout) for name, p in settings.providers.items()
    }


def build_runtime(settings: Settings, *, previous: Runtime | None = None) -> Runtime:
    """A runtime for `settings`, keeping the previous backend when its settings did not change."""
    if previous is not None and previous.settings.backend == settings.backend:
        backend = previous.backend
    else:
        name = settings.backend.type
        backend = build_backend(settings.backend, lambda op, error: telemetry.backend_error(name, op, error))
    if previous is not None and previous.settings.semantic == settings.semantic:
        semantic = previous.semantic
    else:
        semantic = build_semantic(settings.semantic)
    return Runtime(
        settings,
        routes_for(settings),
        backend,
        prices=telemetry.PriceBook(settings.telemetry.price_table),
        semantic=semantic,
    )


@dataclass(slots=True)
class Counters:
    """Totals since start, for /cache/stats; OpenTelemetry has the labelled detail."""

    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    coalesced: int = 0
    stored: int = 0
    upstream_errors: int = 0


@dataclass(slots=True)
class State:
    runtime: Runtime
    session: aiohttp.ClientSession | None = None
    counters: Counters = field(default_factory=Counters)
    semantic: SemanticCounters = field(default_factory=SemanticCounters)
    aggregates: Aggregates = field(default_factory=Aggregates)
    coalescer: Coalescer = field(default_factory=Coalescer)
    epoch: tuple[int, float] | None = None
    """The namespace's flush epoch as last read from the backend, and when."""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work that outlives a request (upstream reads, cache writes), owned here."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("background task failed", exc_info=exc)

    async def drain(self, grace: float) -> None:
        """Wait for background work to finish (bounded), then cancel what is left."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)

    def swap(self, runtime: Runtime) -> Runtime:
        old, self.runtime = self.runtime, runtime
        if old.settings.namespace != runtime.settings.namespace or old.backend is not runtime.backend:
            self.epoch = None
        return old


STATE = web.AppKey("llmcache_state", State)

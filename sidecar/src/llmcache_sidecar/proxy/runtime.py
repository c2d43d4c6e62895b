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
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from llmcache_sidecar import telemetry
from llmcache_sidecar.backends import CacheBackend, Unavailable, build_backend
from llmcache_sidecar.config import SecretFileError, Settings, read_secret
from llmcache_sidecar.proxy.coalesce import Coalescer
from llmcache_sidecar.semantic import SemanticCache, SemanticCounters, build_semantic
from llmcache_sidecar.telemetry import Aggregates
from llmcache_sidecar.wire import keys
from llmcache_sidecar.wire.policy import Policy
from llmcache_sidecar.wire.providers import KINDS, WireFormat
from llmcache_sidecar.wire.recording import RecordIndex

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """A configured provider: `/<name>/...` goes to `upstream/...`."""

    name: str
    kind: WireFormat
    upstream: str
    timeout: float
    opaque: bool = False
    """A transparent-mode pass-through to a host that is not intercepted: its path goes on
    exactly as the app sent it, unread and unchecked (nothing is cached, no base path added)."""
    credential_headers: tuple[str, ...] = ()
    """Headers that carry a credential besides the kind's own (`providers.<name>.credentialHeaders`)."""
    allow_anonymous: bool = False
    """With isolation: credential, cache requests that carry no credential (one shared tenant)."""


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    routes: dict[str, Route]
    backend: CacheBackend
    caching: bool = True
    """False when the config file is gone: every request passes through."""
    backend_error: str | None = None
    """Why the configured backend could not be built (a secret file is unreadable): `backend`
    is then an `Unavailable` stand-in, and cacheable requests pass through uncached."""
    tenant_salt: bytes = b""
    """The install's secret salt of the tenant hash (`tenantSaltFile`); empty when none is set."""
    max_response_bytes: int = 64 * 2**20
    """The largest answer recorded for the cache (`maxResponseBytes`, or sized to the memory limit)."""
    semantic: SemanticCache | None = None
    semantic_error: str | None = None
    """Why the semantic cache could not be built: exact caching goes on without it."""
    digests: keys.DigestMemo = field(default_factory=keys.DigestMemo)
    """Raw body -> digest, so a repeated request is not parsed again (see keys.DigestMemo)."""
    prices: telemetry.PriceBook = field(default_factory=lambda: telemetry.PriceBook({}))
    policy: Policy = field(default_factory=lambda: Policy(()))
    """The rules, compiled; in record and replay modes none apply (not even the built-in one)."""
    trace_ratio: float | None = 0.0
    """The share of root requests traced; None: the SDK's sampler decides (`telemetry.root_ratio`)."""

    @property
    def flush_suffix(self) -> str:
        flush = self.settings.flush
        return "" if not flush else "." + hashlib.sha256(flush.encode()).hexdigest()[:8]


def routes_for(settings: Settings) -> dict[str, Route]:
    return {
        name: Route(
            name,
            KINDS[p.kind or name],
            p.upstream or "",
            p.timeout,
            credential_headers=p.credential_headers,
            allow_anonymous=p.allow_anonymous,
        )
        for name, p in settings.providers.items()
    }


def build_runtime(settings: Settings, *, previous: Runtime | None = None) -> Runtime:
    """A runtime for `settings`, keeping the previous backend when its settings did not change.

    Never raises for an unreadable secret file: the part that needs it is left out (and
    `previous` runtimes that lacked it are retried), logged at ERROR once per reason.
    """
    backend, salt, backend_error = _backend(settings, previous)
    semantic, semantic_error = _semantic(settings, previous)
    return Runtime(
        settings,
        routes_for(settings),
        backend,
        prices=telemetry.PriceBook(settings.telemetry.price_table),
        trace_ratio=telemetry.root_ratio(settings.telemetry),
        backend_error=backend_error,
        tenant_salt=salt,
        max_response_bytes=response_limit(settings),
        semantic=semantic,
        semantic_error=semantic_error,
        policy=Policy(settings.rules) if settings.recording == "live" else Policy((), builtin=False),
    )


MEMORY_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""Where the container's memory limit is: cgroup v2, then v1."""
RESPONSE_SHARE = 16
"""`maxResponseBytes` by default: this fraction of the memory limit (docs/security.md says why)."""
RESPONSE_LIMIT_RANGE = (2**20, 64 * 2**20)


def response_limit(settings: Settings, limit_files: tuple[str, ...] = MEMORY_LIMIT_FILES) -> int:
    """`maxResponseBytes`, or when unset a sixteenth of the container's memory limit, within 1-64 MiB.

    Recording an answer of n bytes and storing it costs a few times n at its peak (the
    recording, the entry, its encoding, the JSON read for token usage): measured in
    docs/security.md, so that one such answer fits beside the sidecar's own ~45 MiB.
    """
    if settings.max_response_bytes is not None:
        return settings.max_response_bytes
    low, high = RESPONSE_LIMIT_RANGE
    memory = memory_limit(limit_files)
    if memory is None:
        return high
    return max(low, min(high, memory // RESPONSE_SHARE))


def memory_limit(files: tuple[str, ...] = MEMORY_LIMIT_FILES) -> int | None:
    """The container's memory limit in bytes (cgroup); None when there is none or it cannot be read."""
    for name in files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**62:  # v1 writes "no limit" as a huge number, v2 as "max"
            return int(text)
        return None
    return None


def _backend(settings: Settings, previous: Runtime | None) -> tuple[CacheBackend, bytes, str | None]:
    """The backend, and the tenant salt: without the salt (an unreadable `tenantSaltFile`) no
    key can be made, so the cache is unavailable as when the backend's own secret is missing."""
    name = settings.backend.type
    try:
        salt = (read_secret(settings.tenant_salt_file, "tenantSaltFile") or "").encode()
        if previous is not None and previous.settings.backend == settings.backend and previous.backend_error is None:
            return previous.backend, salt, None
        backend = build_backend(settings.backend, lambda op, reason: telemetry.backend_failed(name, op, reason))
    except SecretFileError as exc:
        if previous is None or previous.backend_error != str(exc):
            logger.error(
                "cache backend %s cannot be built: %s; every request passes through uncached"
                " until it can (retried on each config poll)",
                name,
                exc,
            )
        return Unavailable(name, str(exc)), b"", str(exc)
    if previous is not None and previous.backend_error is not None:
        logger.info("cache backend %s is built now: caching resumes", name)
    return backend, salt, None


def _semantic(settings: Settings, previous: Runtime | None) -> tuple[SemanticCache | None, str | None]:
    if previous is not None and previous.settings.semantic == settings.semantic and previous.semantic_error is None:
        return previous.semantic, None
    try:
        semantic = build_semantic(settings.semantic)
    except SecretFileError as exc:
        if previous is None or previous.semantic_error != str(exc):
            logger.error(
                "semantic cache cannot be built: %s; exact caching goes on without it (retried on each config poll)",
                exc,
            )
        return None, str(exc)
    if previous is not None and previous.semantic_error is not None and semantic is not None:
        logger.info("semantic cache is built now: semantic lookups resume")
    return semantic, None


@dataclass(slots=True)
class RequestCounters:
    """Totals since start, for /cache/stats; OpenTelemetry has the labelled detail."""

    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    coalesced: int = 0
    stored: int = 0
    upstream_errors: int = 0
    stale: int = 0
    """Answers from entries past their ttl (stale-if-error, max-stale)."""


@dataclass(slots=True)
class State:
    runtime: Runtime
    session: aiohttp.ClientSession | None = None
    counters: RequestCounters = field(default_factory=RequestCounters)
    semantic: SemanticCounters = field(default_factory=SemanticCounters)
    aggregates: Aggregates = field(default_factory=Aggregates)
    coalescer: Coalescer = field(default_factory=Coalescer)
    epoch: tuple[int, float] | None = None
    """The namespace's flush epoch as last read from the backend, and when."""
    recorded: RecordIndex = field(default_factory=RecordIndex)
    """Fingerprints of the entries recorded or imported here, for what a replay miss reports."""
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

"""The two aiohttp applications: the data port and the admin port.

`make_app` owns the lifecycle: one `ClientSession` for the app's whole life, the
backend closed at the end, background work drained, and (when a config file is
given) a watcher that reloads it when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from llmcache_sidecar import backends, proxy, telemetry
from llmcache_sidecar.config import Settings
from llmcache_sidecar.intercept import service
from llmcache_sidecar.proxy import STATE, State, build_runtime
from llmcache_sidecar.server import admin, reload
from llmcache_sidecar.server.savings import Reporter

logger = logging.getLogger(__name__)
DRAIN_SECONDS = 10.0
SIZE_REFRESH_SECONDS = 15.0
ConnectorFactory = Callable[[], aiohttp.BaseConnector]
UPSTREAM_CONNECTOR = web.AppKey[ConnectorFactory]("llmcache_upstream_connector")


def make_app(
    settings: Settings,
    *,
    config_path: Path | None = None,
    reload_interval: float = 2.0,
    upstream_connector: ConnectorFactory | None = None,
    caching: bool = True,
) -> web.Application:
    """The data app. `upstream_connector` replaces the upstream connector: tests use it to
    resolve provider hosts to a local fake and to trust a test CA. `caching=False` starts
    with caching off (the config file does not exist yet): the reload turns it on."""
    # Not client_max_size=...: that would answer 413, but an oversized body must pass
    # through uncached, so proxy.py reads the body with its own cap.
    app = web.Application()
    runtime = build_runtime(settings)
    app[STATE] = State(runtime if caching else replace(runtime, caching=False))
    app[UPSTREAM_CONNECTOR] = upstream_connector or _default_connector
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_background_work)
    app.cleanup_ctx.append(_telemetry)
    if config_path is not None:
        app.cleanup_ctx.append(reload.watcher(config_path, reload_interval))
    app.router.add_route("*", "/{provider}/{path:.*}", proxy.handle)
    if settings.transparent.enabled:
        service.install(app)  # serve it with intercept.front.DataSite
    return app


def make_admin_app(state: State, *, metrics: CollectorRegistry | None = None) -> web.Application:
    """The admin port's app; `metrics` is the registry `/metrics` renders (None: metrics are off)."""
    app = web.Application()
    app[STATE] = state
    if metrics is not None:
        app[admin.METRICS] = metrics
    admin.add_routes(app)
    return app


def make_metrics_app(metrics: CollectorRegistry) -> web.Application:
    """Only /metrics: safe to listen beyond 127.0.0.1 (the admin port can flush and read entries)."""
    app = web.Application()
    app[admin.METRICS] = metrics
    app.router.add_get("/metrics", admin.prometheus_metrics)
    return app


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    connector = app[UPSTREAM_CONNECTOR]()
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False) as session:
        state.session = session
        yield
        state.session = None


def _default_connector() -> aiohttp.BaseConnector:
    return aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)


async def _background_work(app: web.Application) -> AsyncIterator[None]:
    """Let upstream reads and cache writes finish at shutdown, then close the backend."""
    state = app[STATE]
    if state.runtime.semantic is not None:
        await state.runtime.semantic.prepare()  # the spelling index, before the first request needs it
    yield
    await state.drain(DRAIN_SECONDS)
    await state.runtime.backend.aclose()
    if state.runtime.semantic is not None:
        await state.runtime.semantic.aclose()


async def _telemetry(app: web.Application) -> AsyncIterator[None]:
    """Expose this app's counters to the metric readers, keep the size gauges fresh, report the savings.

    Registered after `_background_work`, so cleaned up before it: the backend is still
    open for the last report of the savings.
    """
    state = app[STATE]
    telemetry.refresh_tracing_flag()
    state.aggregates.semantic = state.semantic
    telemetry.register(state.aggregates)
    reporter = Reporter(state)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_refresh_sizes(state)), loop.create_task(reporter.run())]
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await reporter.report()
    telemetry.unregister(state.aggregates)


async def _refresh_sizes(state: State) -> None:
    while True:
        backend = state.runtime.backend
        stats = await backend.stats()
        state.aggregates.backend = state.runtime.settings.backend.type
        state.aggregates.backend_timeout = backends.call_timeout(state.runtime.settings.backend)
        state.aggregates.entries, state.aggregates.bytes = stats.entries, stats.bytes
        await asyncio.sleep(SIZE_REFRESH_SECONDS)

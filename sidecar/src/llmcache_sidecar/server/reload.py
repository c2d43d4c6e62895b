"""Hot reload: the sidecar follows its mounted config file without a restart.

Kubernetes updates a mounted ConfigMap by swapping a symlink, which inotify on the
file itself misses; polling the file's content every few seconds sees it, costs
next to nothing, and works the same everywhere. A file that no longer parses keeps
the running config (logged); a file that is gone turns caching off, and requests
pass through until it comes back.

The same poll retries what could not be built for want of a secret file (the backend,
the semantic cache): the kubelet fills a Secret volume when its Secret appears, which
changes no config file, so each poll tries again until the part is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from llmcache_sidecar import config
from llmcache_sidecar.backends import Unavailable
from llmcache_sidecar.proxy import STATE, Runtime, State, build_runtime

logger = logging.getLogger(__name__)
BACKEND_CLOSE_DELAY = 30.0
"""A replaced backend is closed this long after the swap, when requests that still hold it are done."""


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


async def apply_file(state: State, path: Path) -> None:
    """Load `path` and swap the runtime; never raises for a bad or missing file."""
    try:
        settings = await asyncio.to_thread(config.load, path)
    except config.ConfigError as exc:
        if not await asyncio.to_thread(path.exists):
            if state.runtime.caching:
                logger.warning("config file %s is gone: caching is off, requests pass through", path)
                state.swap(replace(state.runtime, caching=False))
            return
        logger.error("config file %s changed but is invalid, keeping the running config: %s", path, exc)
        return
    try:
        runtime = build_runtime(settings, previous=state.runtime)
    except config.ConfigError as exc:  # a missing extra, say: the file parses but cannot run
        logger.error("config file %s changed but cannot be used, keeping the running config: %s", path, exc)
        return
    _swap(state, runtime)
    logger.info("config reloaded from %s", path)


async def retry_unbuilt(state: State) -> None:
    """Build again what the running config lacks for want of a secret file; swap if that changed."""
    current = state.runtime
    if not current.caching or (current.backend_error is None and current.semantic_error is None):
        return
    runtime = build_runtime(current.settings, previous=current)
    if (runtime.backend_error, runtime.semantic_error) != (current.backend_error, current.semantic_error):
        _swap(state, replace(runtime, digests=current.digests))


def _swap(state: State, runtime: Runtime) -> None:
    """Make `runtime` current; close the backend and semantic cache it replaced, once requests let go."""
    old = state.swap(runtime)
    if old.backend is not runtime.backend and not isinstance(old.backend, Unavailable):  # nothing to close
        state.spawn(_close_later(old.backend.aclose))
    if old.semantic is not None and old.semantic is not runtime.semantic:
        state.spawn(_close_later(old.semantic.aclose))


async def _close_later(close: Callable[[], object]) -> None:
    await asyncio.sleep(BACKEND_CLOSE_DELAY)
    result = close()
    if asyncio.iscoroutine(result):
        await result


def watcher(path: Path, interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry that polls `path` every `interval` seconds while the app runs."""

    async def watch(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        seen = await asyncio.to_thread(_digest, path)
        task = asyncio.get_running_loop().create_task(_poll(state, path, interval, seen))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return watch


async def _poll(state: State, path: Path, interval: float, seen: str | None) -> None:
    while True:
        await asyncio.sleep(interval)
        current = await asyncio.to_thread(_digest, path)
        if current != seen:
            seen = current
            await apply_file(state, path)
        else:
            await retry_unbuilt(state)

"""Cache backends, and `build_backend` which picks one by `backend.type`.

Each type maps to a factory that receives the whole `BackendSettings` and reads only
its own block. Remote backends come wrapped in `FailOpen`; the memory backend does
no I/O and cannot fail, so it is used bare on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmcache_sidecar.backends.base import BackendError, BackendStats, CacheBackend
from llmcache_sidecar.backends.dual import DualCache
from llmcache_sidecar.backends.failopen import FailOpen
from llmcache_sidecar.backends.memory import MemoryCache
from llmcache_sidecar.config import BackendSettings, RedisSettings

__all__ = ["BackendError", "BackendStats", "CacheBackend", "FailOpen", "build_backend"]

ErrorHook = Callable[[str, str], None]


def _memory(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    return MemoryCache(max_bytes=settings.memory.max_bytes, max_entries=settings.memory.max_entries)


def _redis(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    from llmcache_sidecar.backends.redis import RedisCache  # imported only when configured

    cfg: RedisSettings = settings.redis
    password = Path(cfg.password_file).read_text(encoding="utf-8").strip() if cfg.password_file else None
    timeout = cfg.timeout_ms / 1000
    inner = RedisCache.from_url(cfg.url, password=password, timeout=timeout, max_connections=cfg.max_connections)
    return FailOpen(inner, timeout=timeout, on_error=on_error)


def _dual(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    return DualCache(_memory(settings, on_error), _redis(settings, on_error), front_ttl=settings.dual.front_ttl)


FACTORIES: dict[str, Callable[[BackendSettings, ErrorHook | None], CacheBackend]] = {
    "memory": _memory,
    "redis": _redis,
    "dual": _dual,
}


def build_backend(settings: BackendSettings, on_error: ErrorHook | None = None) -> CacheBackend:
    """The backend `settings.type` names, with its fail-open policy around it."""
    return FACTORIES[settings.type](settings, on_error)

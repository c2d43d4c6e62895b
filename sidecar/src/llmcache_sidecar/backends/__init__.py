"""Cache backends, and `build_backend` which picks one by `backend.type`.

Each type maps to a factory that receives the whole `BackendSettings` and reads only
its own block. Remote backends come wrapped in `FailOpen`; the memory backend does
no I/O and cannot fail, so it is used bare on the hot path.

The libraries of S3, GCS and Azure Blob are optional extras of the distribution
(`llmcache-sidecar[s3]`, `[gcs]`, `[azure]`): their modules are imported only when
configured, and a missing extra is a `ConfigError` naming the extra to install. A
secret file that cannot be read is a `SecretFileError`, which the sidecar survives
(`runtime.build_runtime`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llmcache_sidecar.backends.base import BackendError, BackendStats, CacheBackend, ListingUnsupported
from llmcache_sidecar.backends.dual import DualCache
from llmcache_sidecar.backends.failopen import FailOpen
from llmcache_sidecar.backends.memory import MemoryCache
from llmcache_sidecar.backends.savings import KEPT_SECONDS, Savings, SavingsLedger
from llmcache_sidecar.backends.unavailable import Unavailable
from llmcache_sidecar.config import BackendSettings, ConfigError, read_secret

if TYPE_CHECKING:
    from llmcache_sidecar.backends.objects import ObjectStore

__all__ = [
    "KEPT_SECONDS",
    "BackendError",
    "BackendStats",
    "CacheBackend",
    "FailOpen",
    "ListingUnsupported",
    "Savings",
    "SavingsLedger",
    "Unavailable",
    "accepting_writes",
    "build_backend",
    "call_timeout",
    "ledger_of",
]

ErrorHook = Callable[[str, str], None]


def accepting_writes(backend: CacheBackend) -> bool:
    """False while a fail-open backend is failing: a write now would be dropped.

    The answer goes out before its entry is written, so `Cache-Status: ...; stored` can only
    be a forecast: it is not made while the backend has just failed.
    """
    return not isinstance(backend, FailOpen) or backend.healthy


def _missing_extra(backend: str, extra: str, exc: ImportError) -> ConfigError:
    hint = f"{backend} needs `pip install llmcache-sidecar[{extra}]` ({exc.name} is missing)"
    return ConfigError("backend.type", hint)


def _memory(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    return MemoryCache(max_bytes=settings.memory.max_bytes, max_entries=settings.memory.max_entries)


def _redis(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    from llmcache_sidecar.backends.redis import RedisCache  # imported only when configured

    cfg = settings.redis
    password = read_secret(cfg.password_file, "backend.redis.passwordFile")
    timeout = cfg.timeout_ms / 1000
    inner: RedisCache
    if cfg.sentinel is not None:
        inner = RedisCache.sentinel(
            cfg.url,
            master_name=cfg.sentinel.master_name,
            sentinels=[_host_port(a) for a in cfg.sentinel.addresses],
            password=password,
            sentinel_password=read_secret(cfg.sentinel.password_file, "backend.redis.sentinel.passwordFile"),
            timeout=timeout,
            max_connections=cfg.max_connections,
        )
    elif cfg.cluster:
        inner = RedisCache.cluster(cfg.url, password=password, timeout=timeout, max_connections=cfg.max_connections)
    else:
        inner = RedisCache.from_url(cfg.url, password=password, timeout=timeout, max_connections=cfg.max_connections)
    return FailOpen(inner, timeout=timeout, on_error=on_error)


def _object_backend(store: ObjectStore, *, prefix: str, timeout_ms: int, on_error: ErrorHook | None) -> CacheBackend:
    """An object store (S3, GCS, Azure Blob) as a cache, with the fail-open policy around it."""
    from llmcache_sidecar.backends.objects import ObjectCache

    return FailOpen(ObjectCache(store, prefix=prefix), timeout=timeout_ms / 1000, on_error=on_error)


def _s3(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    try:
        from llmcache_sidecar.backends.s3 import S3Store
    except ImportError as exc:
        raise _missing_extra("s3", "s3", exc) from exc
    cfg = settings.s3
    key_id = read_secret(cfg.access_key_id_file, "backend.s3.accessKeyIdFile")
    secret = read_secret(cfg.secret_access_key_file, "backend.s3.secretAccessKeyFile")
    store = S3Store(
        bucket=cfg.bucket,
        region=cfg.region,
        endpoint_url=cfg.endpoint_url,
        addressing_style=cfg.addressing_style,
        credentials=(key_id, secret) if key_id is not None and secret is not None else None,
        timeout=cfg.timeout_ms / 1000,
        max_connections=cfg.max_connections,
    )
    return _object_backend(store, prefix=cfg.prefix, timeout_ms=cfg.timeout_ms, on_error=on_error)


def _gcs(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    try:
        from llmcache_sidecar.backends.gcs import GcsStore
    except ImportError as exc:
        raise _missing_extra("gcs", "gcs", exc) from exc
    cfg = settings.gcs
    store = GcsStore(
        bucket=cfg.bucket,
        credentials_file=cfg.credentials_file,
        endpoint_url=cfg.endpoint_url,
        timeout=cfg.timeout_ms / 1000,
        max_connections=cfg.max_connections,
    )
    return _object_backend(store, prefix=cfg.prefix, timeout_ms=cfg.timeout_ms, on_error=on_error)


def _azure_blob(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    try:
        from llmcache_sidecar.backends.azure_blob import AzureBlobStore
    except ImportError as exc:
        raise _missing_extra("azureBlob", "azure", exc) from exc
    cfg = settings.azure_blob
    store = AzureBlobStore(
        container=cfg.container,
        account_url=cfg.account_url,
        connection_string=read_secret(cfg.connection_string_file, "backend.azureBlob.connectionStringFile"),
        account_key=read_secret(cfg.account_key_file, "backend.azureBlob.accountKeyFile"),
        timeout=cfg.timeout_ms / 1000,
    )
    return _object_backend(store, prefix=cfg.prefix, timeout_ms=cfg.timeout_ms, on_error=on_error)


def _disk(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    from llmcache_sidecar.backends.disk import DiskCache

    cfg = settings.disk
    return FailOpen(DiskCache(cfg.path, max_bytes=cfg.max_bytes), timeout=DISK_TIMEOUT, on_error=on_error)


DISK_TIMEOUT = 1.0
"""A local disk answers in microseconds or is stuck; a second is plenty either way."""


def call_timeout(settings: BackendSettings) -> float | None:
    """The deadline (seconds) each call to the remote backend gets; None for memory alone."""
    remote = settings.dual.l2 if settings.type == "dual" else settings.type
    timeouts_ms = {
        "redis": settings.redis.timeout_ms,
        "s3": settings.s3.timeout_ms,
        "gcs": settings.gcs.timeout_ms,
        "azureBlob": settings.azure_blob.timeout_ms,
    }
    if remote == "disk":
        return DISK_TIMEOUT
    found = timeouts_ms.get(remote)
    return None if found is None else found / 1000


def _dual(settings: BackendSettings, on_error: ErrorHook | None) -> CacheBackend:
    back = REMOTE_FACTORIES[settings.dual.l2](settings, on_error)
    return DualCache(_memory(settings, on_error), back, front_ttl=settings.dual.front_ttl)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


Factory = Callable[[BackendSettings, ErrorHook | None], CacheBackend]
REMOTE_FACTORIES: dict[str, Factory] = {
    "redis": _redis,
    "s3": _s3,
    "gcs": _gcs,
    "azureBlob": _azure_blob,
    "disk": _disk,
}
FACTORIES: dict[str, Factory] = {"memory": _memory, "dual": _dual, **REMOTE_FACTORIES}


def build_backend(settings: BackendSettings, on_error: ErrorHook | None = None) -> CacheBackend:
    """The backend `settings.type` names, with its fail-open policy around it."""
    return FACTORIES[settings.type](settings, on_error)


def ledger_of(backend: CacheBackend) -> SavingsLedger | None:
    """Where `backend` keeps what the cache saved (see `savings`): its shared store, or None.

    Looks through `dual` (its lower tier) and `FailOpen` (its store).
    """
    found: CacheBackend = backend
    if isinstance(found, DualCache):
        found = found.back
    if isinstance(found, FailOpen):
        found = found.inner
    return found if isinstance(found, SavingsLedger) else None

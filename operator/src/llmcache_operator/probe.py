"""Does an LLMCache's backend answer? Asked with the sidecar's own backend code.

The operator builds the very backend a sidecar would (`build_backend` on the same
`Settings`) and pings it once. Referenced Secrets are read through the API and written
to a private scratch directory that stands in for the pod's mounts, removed right
after: the operator never keeps a secret, in memory or in a resource.

Memory and disk live in each pod, so there is nothing to probe from the operator; a
backend whose client library is not installed in the operator's image is reported as
not checked rather than as down.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmcache_operator import spec
from llmcache_operator.reconcile import BackendCheck
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar.backends import BackendError, build_backend
from llmcache_sidecar.config import BackendSettings, ConfigError

SecretReader = Callable[[SecretKeyRef], Awaitable[str | None]]
IN_POD = ("memory", "disk")


async def check_backend(
    raw_spec: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    read_secret: SecretReader,
    ping_timeout: float,
) -> BackendCheck:
    """Whether the backend answered a ping within `ping_timeout` seconds, and what went wrong if not."""
    with tempfile.TemporaryDirectory(prefix="llmcache-probe-") as scratch:
        cache = spec.parse(raw_spec, name=name, namespace=namespace, secret_root=scratch)
        settings = cache.settings.backend
        shared = settings.dual.l2 if settings.type == "dual" else settings.type
        if shared in IN_POD:
            return BackendCheck(True, f"The {settings.type} backend lives in each pod.")
        for mount in cache.secrets:
            value = await read_secret(mount.ref)
            if value is None:
                return BackendCheck(
                    False, f"Secret {mount.ref.name!r} (key {mount.ref.key!r}) not found in {namespace}"
                )
            _write_private(Path(mount.path), value)
        try:
            backend = build_backend(_patient(settings, ping_timeout))
        except ConfigError as exc:
            return BackendCheck(None, f"The operator cannot check the {shared} backend: {exc.message}")
        except (OSError, ValueError) as exc:
            return BackendCheck(False, f"Cannot configure the {shared} backend: {exc}")
        try:
            async with asyncio.timeout(ping_timeout):
                await backend.ping()
        except (BackendError, TimeoutError, OSError) as exc:
            return BackendCheck(False, str(exc) or type(exc).__name__)
        finally:
            await backend.aclose()
    return BackendCheck(True, f"The {shared} backend answered.")


def _patient(settings: BackendSettings, ping_timeout: float) -> BackendSettings:
    # timeoutMs bounds each request on the data path (tens of ms); a probe from another
    # pod, on a fresh connection, gets the whole probe timeout instead.
    redis = settings.redis
    return replace(settings, redis=replace(redis, timeout_ms=max(redis.timeout_ms, int(ping_timeout * 1000))))


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(value)

"""Does an LLMCache's backend answer? Asked with the sidecar's own backend code.

The operator builds the very backend a sidecar would (`build_backend` on the same
`Settings`) and pings it once. Referenced Secrets are read through the API and written
to a private scratch directory that stands in for the pod's mounts, removed right
after: the operator never keeps a secret, in memory or in a resource.
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
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar.backends import BackendError, build_backend

SecretReader = Callable[[SecretKeyRef], Awaitable[str | None]]


async def backend_problem(
    raw_spec: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    read_secret: SecretReader,
    ping_timeout: float,
) -> str | None:
    """None when the backend answered a ping within `ping_timeout` seconds, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="llmcache-probe-") as scratch:
        cache = spec.parse(raw_spec, name=name, namespace=namespace, secret_root=scratch)
        for mount in cache.secrets:
            value = await read_secret(mount.ref)
            if value is None:
                return f"Secret {mount.ref.name!r} (key {mount.ref.key!r}) not found in {namespace}"
            _write_private(Path(mount.path), value)
        # timeoutMs bounds each request on the data path (tens of ms); a probe from another
        # pod, on a fresh connection, gets the whole probe timeout instead.
        settings = cache.settings.backend
        slow_ok = replace(settings.redis, timeout_ms=max(settings.redis.timeout_ms, int(ping_timeout * 1000)))
        try:
            backend = build_backend(replace(settings, redis=slow_ok))
        except (OSError, ValueError) as exc:
            return f"cannot configure the {cache.settings.backend.type} backend: {exc}"
        try:
            async with asyncio.timeout(ping_timeout):
                await backend.ping()
        except (BackendError, TimeoutError, OSError) as exc:
            return str(exc) or type(exc).__name__
        finally:
            await backend.aclose()
    return None


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(value)

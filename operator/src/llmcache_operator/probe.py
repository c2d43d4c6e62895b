"""An LLMCache's backend, reached with the sidecar's own backend code: pinged, or flushed.

The operator builds the very backend a sidecar would (`build_backend` on the same
`Settings`), pings it once, or moves a namespace's flush epoch on, so a credential goes
only where the sidecars send it: the backend the spec names. Referenced Secrets are read
through the API, only those labelled usable (`secret_refs`: reconcile refuses the others
before this), and written to a private scratch directory that stands in for the pod's
mounts, removed right after: the operator never keeps a secret, in memory or in a
resource.

What a failure reports (`failure`) is our own words: the kind of failure, the error's
class and an errno name, never the remote server's bytes. The backend's address is
the LLMCache author's to choose, and its replies must not reach a status or an event
they can read.

Memory and disk live in each pod, so there is nothing to probe or flush from the
operator; a backend whose client library is not installed in the operator's image is
reported as not checked rather than as down.

Why the operator flushes: a new `spec.flush` reaches the sidecars through their
ConfigMap, which the kubelet refreshes only on its sync period (a minute or more). The
epoch lives in a shared backend and every sidecar re-reads it each second, so moving it
there makes the flush take effect at once in every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmcache_operator import spec
from llmcache_operator.reconcile import BackendCheck
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar.backends import BackendError, CacheBackend, build_backend
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
    async with connected(raw_spec, name, namespace, read_secret, ping_timeout) as (backend, problem, shared):
        if backend is None:
            return problem
        try:
            async with asyncio.timeout(ping_timeout):
                await backend.ping()
        except (BackendError, TimeoutError, OSError) as exc:
            return BackendCheck(False, failure(exc, ping_timeout))
    return BackendCheck(True, f"The {shared} backend answered.")


async def flush_shared(
    raw_spec: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    read_secret: SecretReader,
    flush_timeout: float,
) -> str:
    """Move the cache namespace's epoch on in a shared backend; what happened, for the log and events.

    Raises `FlushError` when the backend could not do it; memory and disk (each pod its
    own) are left to the ConfigMap.
    """
    async with connected(raw_spec, name, namespace, read_secret, flush_timeout) as (backend, problem, shared):
        if backend is None:
            if problem.reachable is False:
                raise FlushError(problem.message)
            return f"{problem.message} It is flushed when the sidecars reload their config."
        cache_namespace = spec.parse(raw_spec, name=name, namespace=namespace).settings.namespace
        try:
            async with asyncio.timeout(flush_timeout):
                epoch = await backend.bump_epoch(cache_namespace)
        except (BackendError, TimeoutError, OSError) as exc:
            raise FlushError(failure(exc, flush_timeout)) from exc
    return f"Flushed namespace {cache_namespace!r} in the {shared} backend (epoch {epoch})."


class FlushError(Exception):
    """The shared backend could not be flushed; the ConfigMap still flushes, later."""


@contextlib.asynccontextmanager
async def connected(
    raw_spec: Mapping[str, Any] | None, name: str, namespace: str, read_secret: SecretReader, patience: float
) -> AsyncIterator[tuple[CacheBackend | None, BackendCheck, str]]:
    """(backend, _, kind) for a shared backend; (None, why not, kind) otherwise. Secrets live only inside.

    The backend is the one a sidecar of this cache builds, each call bounded by `patience`;
    probes, flushes and the savings (`savings`) use it.
    """
    with tempfile.TemporaryDirectory(prefix="llmcache-probe-") as scratch:
        cache = spec.parse(raw_spec, name=name, namespace=namespace, secret_root=scratch)
        settings = cache.settings.backend
        shared = settings.dual.l2 if settings.type == "dual" else settings.type
        if shared in IN_POD:
            yield None, BackendCheck(True, f"The {settings.type} backend lives in each pod."), shared
            return
        for mount in cache.secrets:
            value = await read_secret(mount.ref)
            if value is None:
                problem = f"Secret {mount.ref.name!r} (key {mount.ref.key!r}) not found in {namespace}"
                yield None, BackendCheck(False, problem), shared
                return
            _write_private(Path(mount.path), value)
        try:
            backend = build_backend(_patient(settings, patience))
        except ConfigError as exc:
            yield None, BackendCheck(None, f"The operator cannot check the {shared} backend: {exc.message}"), shared
            return
        except (OSError, ValueError) as exc:
            yield None, BackendCheck(False, f"Cannot configure the {shared} backend: {exc}"), shared
            return
        try:
            yield backend, BackendCheck(True, ""), shared
        finally:
            await backend.aclose()


def failure(exc: BaseException, ping_timeout: float) -> str:
    """What went wrong, in words that carry no byte the remote end sent.

    Error messages of client libraries quote the server (a Redis error reply, an S3
    error document, a protocol error with the bytes received), so only the classes of
    the chained exceptions and errno names are used.
    """
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError) for e in chain):
        return f"no answer within {ping_timeout:g} s"
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return f"the TLS handshake failed ({type(error).__name__})"
        if isinstance(error, socket.gaierror):
            return "cannot resolve the backend's host name"
        code = error.errno if isinstance(error, OSError) else None
        if code is not None and code in errno.errorcode:
            return f"cannot connect ({errno.errorcode[code]}: {os.strerror(code)})"
        if isinstance(error, OSError):
            return f"cannot connect ({type(error).__name__})"
    root = chain[-1]
    name = type(root).__name__
    if "auth" in name.lower() or "credential" in name.lower() or "permission" in name.lower():
        return f"the backend refused the credentials ({name})"
    if "connect" in name.lower():
        return f"cannot connect ({name})"
    return f"the backend answered with an error ({name})"


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from, outermost first (bounded)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


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

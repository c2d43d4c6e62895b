"""The `backend` fixture: every backend, built by `build_backend` from its settings,
against real servers that this session starts once (`tests.realparts.fixtures`).

Adding a backend means adding a name to `BACKENDS` and a branch to `_case`.
FailOpen hides errors by design, so the fixture records what it hid and fails a
test that did not expect any: a broken backend cannot pass as a cold cache.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.backends import CacheBackend, build_backend
from llmcache_sidecar.backends.disk import DiskCache
from llmcache_sidecar.backends.dual import DualCache
from llmcache_sidecar.backends.failopen import FailOpen
from llmcache_sidecar.backends.objects import ObjectCache
from llmcache_sidecar.backends.redis import RedisCache
from tests.realparts import BUCKET, Servers, azurite_connection_string

BACKENDS = [
    "memory",
    "redis",
    "redis-cluster",
    "redis-sentinel",
    "s3",
    "gcs",
    "azureBlob",
    "disk",
    "dual-redis",
    "dual-s3",
]
# Generous: these tests check answers, not speed, on a 2-core machine running all servers
# (at 2000 the S3 emulator missed it under a load of 8-13 and a contract test failed).
TIMEOUT_MS = 5000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "outage: the test stops the backend's server; FailOpen errors are expected")


@dataclass
class Case:
    """One backend under test: its settings and how to take it away."""

    name: str
    settings: config.BackendSettings
    outage: Callable[[], AbstractContextManager[None]] | None
    errors: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any signature; these keep the AWS chain from looking further.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


# -- cases --


def _parse(data: dict[str, Any]) -> config.BackendSettings:
    return config.parse(config.BackendSettings, data, "backend")


def _case(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    if name == "memory":
        return Case(name, _parse({"type": "memory"}), None)
    if name == "redis":
        srv: Servers = request.getfixturevalue("redis_server")
        return Case(name, _parse({"type": "redis", "redis": _redis_block(srv.port)}), srv.paused)
    if name == "redis-cluster":
        srv = request.getfixturevalue("redis_cluster")
        block = {**_redis_block(srv.port), "cluster": True}
        return Case(name, _parse({"type": "redis", "redis": block}), srv.paused)
    if name == "redis-sentinel":
        master, sentinel = request.getfixturevalue("redis_sentinel")
        block = {
            "url": "redis://ignored:1/0",
            "timeoutMs": TIMEOUT_MS,
            "sentinel": {"masterName": "mymaster", "addresses": [f"127.0.0.1:{sentinel.port}"]},
        }
        return Case(name, _parse({"type": "redis", "redis": block}), master.paused)
    if name == "s3":
        srv = request.getfixturevalue("s3_server")
        return Case(name, _parse({"type": "s3", "s3": _s3_block(srv.port, prefix)}), srv.paused)
    if name == "gcs":
        srv = request.getfixturevalue("gcs_server")
        block = {"bucket": BUCKET, "prefix": prefix, "endpointUrl": f"http://127.0.0.1:{srv.port}",
                 "timeoutMs": TIMEOUT_MS}  # fmt: skip
        return Case(name, _parse({"type": "gcs", "gcs": block}), srv.paused)
    if name == "azureBlob":
        srv = request.getfixturevalue("azurite_server")
        conn_file = tmp_path / "azure-connection-string"
        conn_file.write_text(azurite_connection_string(srv.port) + "\n")
        block = {"container": BUCKET, "prefix": prefix, "connectionStringFile": str(conn_file),
                 "timeoutMs": TIMEOUT_MS}  # fmt: skip
        return Case(name, _parse({"type": "azureBlob", "azureBlob": block}), srv.paused)
    if name == "disk":
        directory = tmp_path / "disk-cache"
        return Case(name, _parse({"type": "disk", "disk": {"path": str(directory)}}), lambda: _disk_gone(directory))
    if name == "dual-redis":
        srv = request.getfixturevalue("redis_server")
        data = {"type": "dual", "dual": {"l2": "redis"}, "redis": _redis_block(srv.port)}
        return Case(name, _parse(data), srv.paused)
    if name == "dual-s3":
        srv = request.getfixturevalue("s3_server")
        data = {"type": "dual", "dual": {"l2": "s3"}, "s3": _s3_block(srv.port, prefix)}
        return Case(name, _parse(data), srv.paused)
    raise AssertionError(f"no case for {name}")


def _redis_block(port: int) -> dict[str, Any]:
    return {"url": f"redis://127.0.0.1:{port}/0", "timeoutMs": TIMEOUT_MS}


def _s3_block(port: int, prefix: str) -> dict[str, Any]:
    return {"bucket": BUCKET, "prefix": prefix, "endpointUrl": f"http://127.0.0.1:{port}", "region": "us-east-1",
            "addressingStyle": "path", "timeoutMs": TIMEOUT_MS}  # fmt: skip


@contextlib.contextmanager
def _disk_gone(directory: Path) -> Iterator[None]:
    """The volume goes away: the directory is replaced by a plain file."""
    aside = directory.with_name(directory.name + ".aside")
    if directory.exists():
        os.replace(directory, aside)
    directory.write_bytes(b"not a directory")
    try:
        yield
    finally:
        directory.unlink()
        if aside.exists():
            os.replace(aside, directory)


@pytest.fixture(params=BACKENDS)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    return _case(request.param, request, tmp_path)


@pytest.fixture
async def backend(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    b = build_backend(case.settings, on_error=lambda op, reason: case.errors.append((op, reason)))
    try:
        yield b
    finally:
        await b.aclose()
    if request.node.get_closest_marker("outage") is None:
        assert case.errors == [], f"FailOpen hid errors of {case.name}: {case.errors}"


# -- raw access, for tests that plant bytes llmcache did not write --


def unwrap(backend: CacheBackend) -> CacheBackend:
    """The store under FailOpen, and the shared tier under DualCache."""
    while True:
        if isinstance(backend, FailOpen):
            backend = backend.inner
        elif isinstance(backend, DualCache):
            backend = backend.back
        else:
            return backend


async def put_raw(backend: CacheBackend, key: str, data: bytes) -> bool:
    """Store `data` as-is where `backend` would look for `key`; False for memory."""
    inner = unwrap(backend)
    if isinstance(inner, RedisCache):
        await inner.client.set(key, data)
    elif isinstance(inner, ObjectCache):
        await inner.store.write(inner.object_name(key), data)
    elif isinstance(inner, DiskCache):
        path = inner.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        return False
    return True

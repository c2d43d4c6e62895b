"""Fixtures for the operator's tests: a redis-server, a TLS CA, and kopf pointed at a test API server.

The Kubernetes API is faked where the tests say so (kmock's emulator); Redis and TLS are real.
"""

from __future__ import annotations

from collections.abc import Iterator

import kopf
import pytest

from tests.operator.realparts import TLS, RedisServer, make_tls, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, without a password."""
    proc, server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server that wants AUTH."""
    proc, server = start_redis(tmp_path_factory.mktemp("redis-auth"), "s3cret-for-tests")
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    return make_tls(tmp_path_factory.mktemp("tls"))


# kopf logs in through login handlers; this one points it at the test's kmock (or any
# URL a test sets). Registering any login handler turns off kopf's kubeconfig logins.
KOPF_SERVER: list[str] = []


@kopf.on.login(registry=kopf.get_default_registry())
def _login_to_test_server(**_: object) -> kopf.ConnectionInfo:
    if not KOPF_SERVER:
        raise kopf.LoginError("no test API server set")
    return kopf.ConnectionInfo(server=KOPF_SERVER[-1])

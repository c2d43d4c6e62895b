"""Fixtures for tests against a real (1.20) kube-apiserver on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.k8s.controlplane import ControlPlane, missing_prerequisites, running_control_plane

# CI sets this so that a missing binary fails the run instead of hiding behind a skip.
REQUIRE_ENV = "LLMCACHE_REQUIRE_TOOLS"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here so --strict-markers works without a root pytest config.
    config.addinivalue_line(
        "markers",
        "e2e_k8s: needs etcd + the kube-apiserver built by scripts/build-kube-apiserver.sh"
        " (run with `make e2e-k8s`)",
    )


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the whole session (starting one takes 3-8 s on 2 cores)."""
    missing = missing_prerequisites()
    if missing:
        message = (
            f"no control plane: missing {'; '.join(missing)}. Run `make e2e-k8s`, or build"
            " it with scripts/build-kube-apiserver.sh (~7 min once) and fetch kubectl with"
            " scripts/fetch-tools.sh"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    with running_control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane

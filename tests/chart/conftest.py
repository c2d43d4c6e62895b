"""Fixtures for the chart tests: the pinned helm binaries (fetched once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.helm import HELMS, ROOT, Helm, helm_binary

REQUIRE_ENV = "REQUIRE_TEST_TOOLS"
FETCH_TIMEOUT_S = 600


def _missing(message: str) -> None:
    # CI sets REQUIRE_TEST_TOOLS=1 so that a missing binary fails instead of hiding behind a skip.
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tools() -> Path:
    """scripts/fetch-tools.sh: pinned helm 3, helm 4 and kubectl in .tools/ (a no-op once they are there)."""
    env = {**os.environ, "PYTHON": sys.executable}
    try:
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "fetch-tools.sh")],
            env=env, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _missing("scripts/fetch-tools.sh took too long")
    if result.returncode != 0:
        _missing(f"scripts/fetch-tools.sh failed (no package registry?):\n{result.stderr[-2000:]}")
    return ROOT / ".tools"


@pytest.fixture(scope="session", params=sorted(HELMS))
def helm(request: pytest.FixtureRequest, tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Each test that takes `helm` runs once with helm 3 and once with helm 4."""
    name: str = request.param
    binary = helm_binary(name)
    if not os.access(binary, os.X_OK):
        _missing(f"{binary} missing after scripts/fetch-tools.sh")
    return Helm(name=name, binary=binary, home=tmp_path_factory.mktemp(f"{name}-home"))


@pytest.fixture(scope="session")
def kubectl(tools: Path) -> Path:
    binary = tools / "kubectl"
    if not os.access(binary, os.X_OK):
        _missing(f"{binary} missing after scripts/fetch-tools.sh")
    return binary

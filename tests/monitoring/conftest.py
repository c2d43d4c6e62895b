"""Debian's `prometheus` and `promtool` (scripts/install-test-servers.sh installs them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "llmcache" / "files" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "charts" / "llmcache" / "files" / "grafana-dashboard.json"
RULE_TESTS = Path(__file__).with_name("prometheus-rules.test.yaml")


def _binary(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: scripts/install-test-servers.sh installs Debian's prometheus package"
        # CI sets REQUIRE_TEST_TOOLS=1 so that a missing binary fails instead of hiding behind a skip.
        if os.environ.get("REQUIRE_TEST_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _binary("prometheus")

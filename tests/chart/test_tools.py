"""scripts/fetch-tools.sh installed working, correctly versioned binaries."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / ".tools"


def tool(name: str) -> Path:
    binary = TOOLS / name
    if not os.access(binary, os.X_OK):
        message = f"{binary} missing: run scripts/fetch-tools.sh"
        if os.environ.get("LLMCACHE_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.mark.parametrize(("name", "version"), [("helm3", "v3.17.3"), ("helm4", "v4.3.1")])
def test_helm_version(name: str, version: str, tmp_path: Path) -> None:
    # A scratch HOME for helm, so the test neither reads nor writes the user's.
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [str(tool(name)), "version", "--short"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout.strip().split("+")[0] == version


def test_kubectl_version() -> None:
    result = subprocess.run(
        [str(tool("kubectl")), "version", "--client", "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout)["clientVersion"]["gitVersion"] == "v1.31.9"

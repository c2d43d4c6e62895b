"""The lock and what is derived from it agree with the pyproject.toml files.

A dependency added to a pyproject.toml without `make lock` fails here (and `make test` stops
earlier, in `make lock-check`, with the same advice). Offline: nothing here resolves anything;
uv only compares the lock with the projects and exports what the lock already says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

from scripts import lock

ROOT = Path(__file__).resolve().parents[1]
RUN_MAKE_LOCK = "run 'make lock' and commit uv.lock and requirements/"


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("uv")
    found = str(exe) if exe.is_file() else shutil.which("uv")
    assert found, "uv is not installed (it is in the lock's dev group)"
    return subprocess.run([found, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def pins(requirements: str) -> dict[str, str]:
    """name -> exact version of each `name==version` line of a requirements file."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^]]*\])?==([^\s;\\]+)", requirements, re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


def test_the_lock_matches_every_pyproject() -> None:
    checked = uv("lock", "--check", "--offline")
    assert checked.returncode == 0, f"uv.lock is out of date: {RUN_MAKE_LOCK}\n{checked.stderr}"


@pytest.mark.parametrize("name", sorted(lock.IMAGE_EXPORTS))
def test_each_image_installs_exactly_what_the_lock_says(name: str) -> None:
    exported = uv("export", "--frozen", "--no-dev", "--no-emit-workspace", "--format", "requirements-txt",
                  *lock.IMAGE_EXPORTS[name])  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    committed = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    assert committed == exported.stdout, f"requirements/{name} differs from uv.lock: {RUN_MAKE_LOCK}"
    assert "--hash=sha256:" in committed


def test_the_lowest_environment_holds_each_sidecar_dependency_at_its_lower_bound() -> None:
    """What make test-lowest installs: a bound that cannot be installed or resolved shows up here."""
    assert (ROOT / "requirements" / "lowest.in").read_text(encoding="utf-8") == lock.lowest_inputs(), RUN_MAKE_LOCK
    installed = pins((ROOT / "requirements" / "lowest.txt").read_text(encoding="utf-8"))
    bounds = lock.sidecar_lower_bounds()
    assert {"aiohttp", "redis", "opentelemetry-sdk", "aiobotocore", "cryptography"} <= bounds.keys()
    for name, bound in bounds.items():
        assert Version(installed[name]) == Version(bound), f"{name}: lowest.txt has {installed[name]}, bound {bound}"


def test_the_test_tools_in_the_lowest_environment_are_the_locks() -> None:
    locked = {re.sub(r"[-_.]+", "-", k): v for k, v in lock.locked_versions().items()}
    installed = pins((ROOT / "requirements" / "lowest.txt").read_text(encoding="utf-8"))
    for tool in lock.LOWEST_TOOLS:
        assert installed[tool] == locked[tool], f"{tool}: {RUN_MAKE_LOCK}"


def test_uv_and_setuptools_are_pinned_once_in_the_lock() -> None:
    """The uv that installs, and the setuptools that builds, are the lock's own versions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    versions = lock.locked_versions()
    assert project["tool"]["uv"]["required-version"] == f"=={versions['uv']}"
    assert (ROOT / "requirements" / "uv.txt").read_text(encoding="utf-8") == lock.uv_requirement()
    assert project["tool"]["uv"]["build-constraint-dependencies"] == [f"setuptools=={versions['setuptools']}"]
    assert pins((ROOT / "requirements" / "build.txt").read_text(encoding="utf-8")) == {
        "setuptools": versions["setuptools"]
    }


def test_a_dependency_added_without_make_lock_stops_make_test_with_advice(tmp_path: Path) -> None:
    """make test's first step (lock-check), on a copy of the workspace with one new sidecar dependency."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("pyproject.toml", "uv.lock", "Makefile"):
        shutil.copy(ROOT / name, copy / name)
    for folder in ("sidecar", "operator", "embedder", "requirements"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    pyproject = copy / "sidecar" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pyyaml>=6.0",', '"pyyaml>=6.0",\n    "attrs>=20",'))
    exe = str(Path(sys.executable).with_name("uv"))
    make = ["make", "--no-print-directory", "-C", str(copy), "lock-check", f"UV={exe}", "-o", exe]
    unchanged = subprocess.run(make, capture_output=True, text=True, timeout=120, check=False)
    assert unchanged.returncode != 0
    assert "Run 'make lock'" in unchanged.stderr
    shutil.copy(ROOT / "sidecar" / "pyproject.toml", pyproject)
    restored = subprocess.run(make, capture_output=True, text=True, timeout=120, check=False)
    assert restored.returncode == 0, restored.stderr

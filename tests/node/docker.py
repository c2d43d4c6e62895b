"""The node's own docker daemon, and the base images it builds on (there is no registry here).

The daemon is private to the tier: its own socket, exec root and data root (the data root
lives in the cache, so base images and build layers survive between runs). It creates no
bridge and no iptables rules (`--bridge=none --iptables=false`): pods get their network
from CNI, and image builds run with `--network host`, so apt inside a build talks plain
HTTP to the machine's Debian mirror and pip reaches the wheel server on 127.0.0.1.

Base images (made once, then kept in the data root):
- Debian: `debootstrap --variant=minbase` into a tarball, `docker import`ed, and tagged
  with the name the Dockerfiles' DEBIAN_IMAGE default names.
- Python: Debian's python3 (3.11) on that base, tagged with the PYTHON_IMAGE default name.
  A stand-in for the official image: same Debian release and Python minor version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.node import procs
from tests.node.layout import DOCKER_CGROUP_PARENT, REPO_ROOT, Layout

DOCKER = "/usr/bin/docker"  # Debian's client, the daemon's own version
DOCKERD = "/usr/sbin/dockerd"
START_TIMEOUT_S = 60.0
DEBIAN_SUITE = "bookworm"
LOCAL_DEBIAN = "llmcache-node/debian:bookworm"
TEST_IMAGES = REPO_ROOT / "tests" / "node" / "images"


class DockerError(RuntimeError):
    pass


def run(layout: Layout, *args: str, timeout: float = 600, check: bool = True, input: str | None = None) -> str:
    """`docker ARGS` against the node's daemon; stdout, or DockerError with stderr."""
    result = subprocess.run(
        [DOCKER, *args],
        env={**os.environ, "DOCKER_HOST": layout.docker_host},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def answers(layout: Layout) -> bool:
    try:
        run(layout, "version", "--format", "{{.Server.Version}}", timeout=10)
    except (DockerError, subprocess.TimeoutExpired):
        return False
    return True


def start_daemon(layout: Layout) -> None:
    """Start the private dockerd unless it already answers on its socket."""
    if answers(layout):
        return
    layout.docker_root.mkdir(parents=True, exist_ok=True)
    layout.docker_exec_root.mkdir(parents=True, exist_ok=True)
    procs.start(
        "dockerd",
        [
            DOCKERD,
            f"--data-root={layout.docker_root}",
            f"--exec-root={layout.docker_exec_root}",
            f"--pidfile={layout.run / 'dockerd.pid'}",
            f"--host={layout.docker_host}",
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            f"--cgroup-parent=/{DOCKER_CGROUP_PARENT}",
            "--storage-driver=overlay2",
            "--log-level=warn",
        ],
        pids=layout.pids,
        logs=layout.logs,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(layout):
        if time.monotonic() > deadline:
            raise DockerError(
                f"dockerd did not answer within {START_TIMEOUT_S:.0f} s: see {layout.logs / 'dockerd.log'}"
            )
        time.sleep(0.5)


def stop_daemon(layout: Layout) -> None:
    if answers(layout):
        leftovers = run(layout, "ps", "-aq", check=False).split()
        if leftovers:
            run(layout, "rm", "-f", *leftovers, check=False, timeout=120)
    procs.stop("dockerd", layout.pids, timeout=30)


def image_exists(layout: Layout, name: str) -> bool:
    return bool(run(layout, "image", "ls", "-q", name, check=False).strip())


def build(
    layout: Layout,
    tag: str,
    context: Path,
    *,
    dockerfile: Path | None = None,
    args: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> None:
    """`docker build --network host` (legacy builder: no BuildKit daemon to manage)."""
    cmd = ["build", "--network", "host", "-t", tag]
    if dockerfile is not None:
        cmd += ["-f", str(dockerfile)]
    for key, value in (args or {}).items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd.append(str(context))
    env = {**os.environ, "DOCKER_HOST": layout.docker_host, "DOCKER_BUILDKIT": "0"}
    out = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        result = subprocess.run(
            [DOCKER, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    if result.returncode != 0:
        raise DockerError(f"docker build of {tag} failed: see {log}")


def arg_default(dockerfile: Path, name: str) -> str:
    """The default of `ARG name=...` in a Dockerfile."""
    match = re.search(rf"^ARG {name}=(\S+)\s*$", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise DockerError(f"{dockerfile} has no ARG {name}=...")
    return match.group(1).strip('"')


def debian_mirror() -> str:
    """The machine's own Debian mirror, from its apt sources (deb822 or one-line)."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if path.exists():
            text = path.read_text()
            match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.MULTILINE) or re.search(
                r"^deb\s+(\S+/debian)/?\s+\S+", text, re.MULTILINE
            )
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def ensure_debian(layout: Layout) -> None:
    """`debootstrap` a minimal Debian once (kept as a tarball), and import it."""
    if image_exists(layout, LOCAL_DEBIAN):
        return
    tarball = layout.cache / "base" / f"debian-{DEBIAN_SUITE}-minbase.tar"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as rootfs:
            with open(layout.logs / "debootstrap.log", "ab") as log:
                subprocess.run(
                    ["debootstrap", "--variant=minbase", DEBIAN_SUITE, rootfs, debian_mirror()],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=900,
                    check=True,
                )
            partial = tarball.with_suffix(".partial")
            # without the downloaded packages and lists (as the official slim images): 120 MB less
            excludes = ["--exclude=./var/cache/apt/archives/*.deb", "--exclude=./var/lib/apt/lists/*"]
            subprocess.run(["tar", "-C", rootfs, *excludes, "-cf", str(partial), "."], check=True, timeout=300)
            partial.rename(tarball)
    with open(tarball, "rb") as data:
        result = subprocess.run(
            [DOCKER, "import", "-", LOCAL_DEBIAN],
            stdin=data,
            env={**os.environ, "DOCKER_HOST": layout.docker_host},
            capture_output=True,
            timeout=300,
            check=False,
        )
    if result.returncode != 0:
        raise DockerError(f"docker import failed: {result.stderr.decode(errors='replace')}")


def ensure_base_images(layout: Layout) -> dict[str, str]:
    """The Debian and Python bases under the names the Dockerfiles' ARGs default to."""
    ensure_debian(layout)
    debian = arg_default(REPO_ROOT / "operator" / "Dockerfile.redirect", "DEBIAN_IMAGE")
    python = arg_default(REPO_ROOT / "sidecar" / "Dockerfile", "PYTHON_IMAGE")
    run(layout, "tag", LOCAL_DEBIAN, debian)
    if not image_exists(layout, python):
        _build_python(layout, python)
    return {"DEBIAN_IMAGE": debian, "PYTHON_IMAGE": python}


def _build_python(layout: Layout, tag: str) -> None:
    """The Python base: the machine's own CPython 3.11 (standard library and pip only)."""
    prefix = Path(sys.base_prefix)
    if sys.version_info[:2] != (3, 11) or sys.version_info < (3, 11, 3) or not (prefix / "bin" / "python3.11").exists():
        # the lock needs 3.11.3 or newer (gcloud-aio-auth): Debian's own 3.11.2 cannot be the source
        raise DockerError(f"the Python base is copied from a CPython 3.11.3+ install; {prefix} is not one")
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(TEST_IMAGES / "python" / "Dockerfile", Path(context) / "Dockerfile")
        target = Path(context) / "python"
        (target / "bin").mkdir(parents=True)
        shutil.copy2(prefix / "bin" / "python3.11", target / "bin" / "python3.11")
        (target / "lib").mkdir()
        for library in prefix.joinpath("lib").glob("libpython3.11.so*"):
            shutil.copy2(library, target / "lib" / library.name, follow_symlinks=False)
        stdlib = prefix / "lib" / "python3.11"
        shutil.copytree(
            stdlib,
            target / "lib" / "python3.11",
            symlinks=True,
            # no tests, no Tk (X11 libraries), and nothing installed into this machine's Python
            ignore=shutil.ignore_patterns(
                "test", "tests", "idlelib", "tkinter", "_tkinter*", "site-packages", "__pycache__"
            ),
        )
        packages = target / "lib" / "python3.11" / "site-packages"
        packages.mkdir()
        for found in (stdlib / "site-packages").glob("pip*"):
            if found.is_dir():
                shutil.copytree(
                    found, packages / found.name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                )
        build(
            layout,
            tag,
            Path(context),
            args={"BASE": LOCAL_DEBIAN, "PREFIX": str(prefix)},
            log=layout.logs / "images.log",
        )


def ensure_pause(layout: Layout, image: str) -> None:
    if image_exists(layout, image):
        return
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(layout.binary("pause"), Path(context) / "pause")
        (Path(context) / "Dockerfile").write_text('FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
        build(layout, image, Path(context), log=layout.logs / "images.log")


def container_ids(layout: Layout, *filters: str) -> Sequence[str]:
    args = ["ps", "-aq"]
    for item in filters:
        args += ["--filter", item]
    return run(layout, *args, check=False).split()

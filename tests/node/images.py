"""The images the tier runs: the product's, built by `make images`, and the tier's own few.

`make images` runs as a user runs it, with the node's docker daemon and the no-TLS route:
the base images made here (`docker.ensure_base_images`), the wheels of the lock's hashed
requirement files served on 127.0.0.1 (`wheels`), builds on the host's network.

The tier's own images (tests/node/images/), never published:
- Redis: Debian's redis-server on the local Debian base, for the chart's bundled Redis.
- The sidecar as the tier runs it: the product's image plus the fake provider's CA in its
  trust store, because the fake `api.openai.com` cannot have a publicly trusted certificate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.node import docker, wheels
from tests.node.layout import REPO_ROOT, Layout

REGISTRY = "ghcr.io/llmcache"
PRODUCT_IMAGES = ("sidecar", "operator", "redirect", "embedder")
REDIS_IMAGE = "llmcache-node/redis:bookworm"
SIDECAR_WITH_CA = "llmcache-node/sidecar-with-provider-ca"
"""Tagged with the product's version, as the chart's sidecar.image.tag defaults."""
TORCH = "torch==2.13.0"
"""The embedder's torch, from the CPU-only index in its Dockerfile (the lock leaves it out)."""
MAKE_TIMEOUT_S = 3600


def version() -> str:
    init = (REPO_ROOT / "operator" / "src" / "llmcache_operator" / "__init__.py").read_text()
    return init.split('__version__ = "', 1)[1].split('"', 1)[0]


def name(image: str) -> str:
    return f"{REGISTRY}/llmcache-{image}:{version()}"


@dataclass(frozen=True)
class Built:
    log: Path
    seconds: float
    """How long `make images` took (the bases and wheels not counted)."""
    sidecar: str
    operator: str
    redirect: str
    embedder: str
    app: str
    redis: str
    sidecar_with_ca: str


def requirement_files() -> list[Path]:
    return sorted((REPO_ROOT / "requirements").glob("*.txt"))


def collect_wheels(layout: Layout, log: Path, python_image: str) -> Path:
    """Every wheel the Dockerfiles install: the lock's files (with their hashes), and torch.

    Markers are evaluated for the base image's Python, not the host's: Debian's 3.11.2 needs
    async-timeout, which a 3.11.3 or newer does not.
    """
    python = docker.run(
        layout, "run", "--rm", python_image, "python", "-c", "import platform; print(platform.python_version())"
    )
    image_files = [p for p in requirement_files() if p.stem not in ("lowest", "uv")]
    args: list[str] = ["--require-hashes", "--no-deps", "--python-version", python.strip()]
    for path in image_files:
        args += ["-r", str(path)]
    root = wheels.collect(layout, args, log=log)
    wheels.collect(layout, ["--no-deps", TORCH], log=log, stamp_name="torch")
    return root


def build_all(layout: Layout, ca_cert: Path) -> Built:
    log = layout.logs / "images.log"
    bases = docker.ensure_base_images(layout)
    root = collect_wheels(layout, log, bases["PYTHON_IMAGE"])
    with wheels.serving(root) as index:
        env = {
            **os.environ,
            "DOCKER": docker.DOCKER,
            "DOCKER_HOST": layout.docker_host,
            "DOCKER_BUILDKIT": "0",
            "BUILD_NETWORK": "host",
            "PIP_INDEX_URL": index,
            "PIP_TRUSTED_HOST": "127.0.0.1",
            "TORCH_INDEX_URL": index,
            **bases,
        }
        started = time.monotonic()
        with open(log, "ab") as out:
            result = subprocess.run(
                ["make", "--no-print-directory", "images"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=MAKE_TIMEOUT_S,
                check=False,
            )
        seconds = time.monotonic() - started
    if result.returncode != 0:
        raise docker.DockerError(f"make images failed ({result.returncode}): see {log}")
    images = REPO_ROOT / "tests" / "node" / "images"
    docker.build(layout, REDIS_IMAGE, images / "redis", args={"BASE": docker.LOCAL_DEBIAN}, log=log)
    sidecar_with_ca = f"{SIDECAR_WITH_CA}:{version()}"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(images / "sidecar-with-ca" / "Dockerfile", Path(context) / "Dockerfile")
        shutil.copy(ca_cert, Path(context) / "provider-ca.crt")
        docker.build(layout, sidecar_with_ca, Path(context), args={"SIDECAR_IMAGE": name("sidecar")}, log=log)
    # Untagged images older than a week: earlier builds' (the cache would otherwise grow by gigabytes).
    # Not younger ones: the build stages of these images are untagged too, and their layers are the cache.
    docker.run(layout, "image", "prune", "--force", "--filter", "until=168h")
    return Built(
        log=log,
        seconds=seconds,
        sidecar=name("sidecar"),
        operator=name("operator"),
        redirect=name("redirect"),
        embedder=name("embedder"),
        app=name("quickstart"),
        redis=REDIS_IMAGE,
        sidecar_with_ca=sidecar_with_ca,
    )

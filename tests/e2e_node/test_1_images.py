"""1. `make images` builds the product's images from the repository's Dockerfiles, on the local base."""

from __future__ import annotations

import json

from llmcache_operator.injection import SIDECAR_UID
from tests.node import docker
from tests.node.images import PRODUCT_IMAGES, Built
from tests.node.layout import Layout

OPERATOR_ONLY = ("kopf", "kubernetes", "llmcache_operator")
BUILD_TOOLS = ("gcc", "cc", "make", "g++", "ld")


def test_make_images_builds_the_four_images_and_each_runs_as_its_declared_user(built: Built, layout: Layout) -> None:
    for image in PRODUCT_IMAGES:
        name = getattr(built, image)
        config = json.loads(docker.run(layout, "image", "inspect", name))[0]["Config"]
        uid = docker.run(layout, "run", "--rm", "--entrypoint", "id", name, "-u").strip()
        # The redirect init container runs iptables as root; the sidecar runs as a UID no app image
        # shares (65531, docs/security.md); the operator and the embedder as distroless's nonroot.
        expected = {"redirect": "0", "sidecar": str(SIDECAR_UID)}.get(image, "65532")
        assert config["User"].split(":")[0] == ("" if image == "redirect" else expected), (image, config["User"])
        assert uid == expected, (image, uid)
    print(f"make images: {built.seconds:.0f} s (log: {built.log})")


def test_the_sidecar_image_carries_no_build_tools_and_no_operator_code(built: Built, layout: Layout) -> None:
    script = (
        "import importlib.util, json, shutil;"
        f"print(json.dumps({{'modules': [m for m in {list(OPERATOR_ONLY)!r} if importlib.util.find_spec(m)],"
        f" 'tools': [t for t in {list(BUILD_TOOLS)!r} if shutil.which(t)]}}))"
    )
    found = json.loads(docker.run(layout, "run", "--rm", "--entrypoint", "python", built.sidecar, "-c", script))
    assert found == {"modules": [], "tools": []}
    version = docker.run(layout, "run", "--rm", built.sidecar, "--version").strip()
    assert version.endswith(built.sidecar.rsplit(":", 1)[1])


def test_the_operator_image_has_the_operator_and_every_backend_client(built: Built, layout: Layout) -> None:
    script = "import kopf, kubernetes, llmcache_operator, aiobotocore, redis; print('ok')"
    assert docker.run(layout, "run", "--rm", "--entrypoint", "python", built.operator, "-c", script).strip() == "ok"

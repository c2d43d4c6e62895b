"""7. Edits of the LLMCache reach the running sidecars without a restart.

A TTL edit travels through the ConfigMap, which the kubelet refreshes on its own sync period
(the time taken is printed; docs/operator.md gives the bound). A flush is applied by the
operator in the shared Redis itself, so it needs no ConfigMap refresh.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.e2e_node.conftest import APP_NS, Release, app_deployment, ask, path_of, restarts, rolled_out
from tests.node.kube import Kube, eventually

APP = "steady"


def patch_cache(kube: Kube, spec: dict[str, object]) -> None:
    kube.kubectl("patch", "llmc", "default", "-n", APP_NS, "--type=merge", "-p", json.dumps({"spec": spec}))


@pytest.fixture(scope="module")
def app(release: Release, kube: Kube) -> str:
    kube.apply(app_deployment(APP, APP_NS, release.built.app))
    (pod,) = rolled_out(kube, APP_NS, APP)
    return path_of(pod)


def test_a_flush_empties_the_cache_of_running_pods_at_once(app: str, kube: Kube) -> None:
    ask(kube, APP_NS, app, "kept until the flush")
    assert ask(kube, APP_NS, app, "kept until the flush").cache == "llmcache; hit"
    patch_cache(kube, {"flush": uuid.uuid4().hex[:8]})
    flushed = time.monotonic()
    eventually(
        lambda: ask(kube, APP_NS, app, "kept until the flush").cache != "llmcache; hit",
        "the flush seen by the running sidecar",
        timeout=120,
    )
    print(f"the flush reached the sidecar within {time.monotonic() - flushed:.0f} s")
    assert restarts(kube.get("pod", app, APP_NS)) == 0


def test_a_ttl_edit_reaches_the_running_sidecar_and_nothing_restarts(app: str, kube: Kube) -> None:
    """Last in this file: the TTL put back afterwards reaches the sidecar only later."""
    patch_cache(kube, {"ttl": "3s"})
    edited = time.monotonic()

    def expired() -> bool:
        prompt = f"short-lived {uuid.uuid4().hex[:6]}"
        ask(kube, APP_NS, app, prompt)
        time.sleep(5)
        return ask(kube, APP_NS, app, prompt).cache != "llmcache; hit"  # gone after 3 s: the new TTL

    try:
        eventually(expired, "the 3 s TTL in effect in the running sidecar", timeout=300, every=1)
        print(f"the TTL edit reached the sidecar within {time.monotonic() - edited:.0f} s")
    finally:
        patch_cache(kube, {"ttl": "1h"})
    assert restarts(kube.get("pod", app, APP_NS)) == 0

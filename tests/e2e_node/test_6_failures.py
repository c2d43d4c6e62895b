"""6. Fail-open in real pods: Redis deleted mid-run, and the operator scaled to 0."""

from __future__ import annotations

import json
import uuid

from tests.e2e_node.conftest import (
    APP_NS,
    RELEASE,
    RELEASE_NS,
    Release,
    app_deployment,
    ask,
    container_names,
    labelled_pod,
    path_of,
    rolled_out,
)
from tests.node.kube import Kube, eventually

APP = "steady"
REDIS = f"{RELEASE}-redis"
OPERATOR = f"{RELEASE}-operator"


def scale(kube: Kube, kind: str, name: str, replicas: int) -> None:
    kube.kubectl("scale", kind, name, "-n", RELEASE_NS, f"--replicas={replicas}")
    label = "redis" if kind == "statefulset" else "operator"
    eventually(
        lambda: (
            len(kube.pods(RELEASE_NS, f"app.kubernetes.io/component={label}")) == replicas
            and (replicas == 0 or kube.get(kind, name, RELEASE_NS)["status"].get("readyReplicas") == replicas)
        ),
        f"{kind} {name} at {replicas}",
        timeout=180,
    )


def test_with_redis_gone_calls_still_succeed_as_misses_and_hits_return_with_it(release: Release, kube: Kube) -> None:
    kube.apply(app_deployment(APP, APP_NS, release.built.app))
    (pod,) = rolled_out(kube, APP_NS, APP)
    app = path_of(pod)
    assert ask(kube, APP_NS, app, "before the outage").cache == "llmcache; fwd=miss; stored"
    assert ask(kube, APP_NS, app, "before the outage").cache == "llmcache; hit"
    scale(kube, "statefulset", REDIS, 0)
    try:
        during = [ask(kube, APP_NS, app, question) for question in ("before the outage", "during the outage")]
        assert [a.status for a in during] == [200, 200]
        assert [a.cache for a in during] == ["llmcache; fwd=miss", "llmcache; fwd=miss"]  # nothing "stored"
    finally:
        scale(kube, "statefulset", REDIS, 1)
    prompt = f"after the outage {uuid.uuid4().hex[:6]}"

    def hit_again() -> bool:
        ask(kube, APP_NS, app, prompt)
        return ask(kube, APP_NS, app, prompt).cache == "llmcache; hit"

    eventually(hit_again, "hits after Redis returned", timeout=120, every=3)
    assert sum(c.get("restartCount", 0) for c in kube.get("pod", app, APP_NS)["status"]["containerStatuses"]) == 0


def test_with_the_operator_at_zero_new_pods_start_and_running_ones_keep_serving(release: Release, kube: Kube) -> None:
    (pod,) = rolled_out(kube, APP_NS, APP)
    app = path_of(pod)
    ask(kube, APP_NS, app, "while the operator is away")
    scale(kube, "deployment", OPERATOR, 0)
    try:
        assert ask(kube, APP_NS, app, "while the operator is away").cache == "llmcache; hit"
        newcomer = labelled_pod("newcomer", APP_NS, release.built.app)
        kube.kubectl("apply", "-f", "-", input=json.dumps(newcomer))  # failurePolicy Ignore: not refused
        kube.kubectl("wait", "--for=condition=Ready", "pod/newcomer", "-n", APP_NS, "--timeout=120s", timeout=150)
        assert container_names(kube.get("pod", "newcomer", APP_NS)) == ["app"]  # as documented: uninjected
    finally:
        kube.kubectl("delete", "pod", "newcomer", "-n", APP_NS, "--ignore-not-found", "--wait=false")
        scale(kube, "deployment", OPERATOR, 1)

"""2. `helm install`: the operator Ready under the chart's ServiceAccount and RBAC, the webhook reached
through its Service with the chart's certificate, the bundled Redis Ready; and what users check next."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e_node.conftest import APP_NS, RELEASE, RELEASE_NS, Release, container_names, restarts
from tests.node import docker
from tests.node.kube import Kube, eventually
from tests.node.layout import Layout

OPERATOR = f"{RELEASE}-operator"
REDIS = f"{RELEASE}-redis"


def test_the_operator_runs_under_the_charts_service_account_without_restarts(release: Release, kube: Kube) -> None:
    (pod,) = kube.pods(RELEASE_NS, "app.kubernetes.io/component=operator")
    assert pod["spec"]["serviceAccountName"] == OPERATOR
    assert pod["status"]["phase"] == "Running"
    assert restarts(pod) == 0  # it crash-looped on getpwuid(65532) before (issue 14)
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    deployment = kube.get("deployment", OPERATOR, RELEASE_NS)
    assert deployment["status"].get("readyReplicas") == 1


def test_the_api_server_calls_the_webhook_through_its_service_with_the_charts_certificate(
    release: Release, kube: Kube
) -> None:
    config = kube.get("mutatingwebhookconfiguration", RELEASE)
    (hook,) = config["webhooks"]
    assert hook["clientConfig"]["service"]["name"] == f"{RELEASE}-webhook"
    assert "url" not in hook["clientConfig"]
    assert hook["clientConfig"].get("caBundle")  # set by the operator from its own CA
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "webhook-probe", "namespace": APP_NS, "labels": {"llmcache.dev/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "image": release.built.app, "imagePullPolicy": "Never"}]},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(pod))
    stored = kube.get("pod", "webhook-probe", APP_NS)
    kube.kubectl("delete", "pod", "webhook-probe", "-n", APP_NS, "--wait=false")
    assert stored["metadata"]["annotations"]["llmcache.dev/injected"] == "default"
    assert "llmcache-sidecar" in container_names(stored)


def test_the_bundled_redis_and_the_default_llmcache_are_ready(release: Release, kube: Kube) -> None:
    statefulset = kube.get("statefulset", REDIS, RELEASE_NS)
    assert statefulset["status"].get("readyReplicas") == 1
    status = kube.get("llmcache", "default", APP_NS)["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == conditions["BackendReachable"] == "True"


def test_kubectl_get_llmc_shows_the_ttl_as_users_write_it(release: Release, kube: Kube) -> None:
    header, row = kube.kubectl("get", "llmc", "default", "-n", APP_NS).splitlines()
    assert dict(zip(header.split(), row.split(), strict=False))["TTL"] == "1h"


def test_helm_upgrade_keeps_the_bundled_redis_and_its_password(release: Release, kube: Kube) -> None:
    """The first upgrade after an install with a generated password restarted Redis (issue 14)."""
    (before,) = kube.pods(RELEASE_NS, "app.kubernetes.io/component=redis")
    password = kube.get("secret", REDIS, RELEASE_NS)["data"]["password"]
    release.upgrade()
    (after,) = kube.pods(RELEASE_NS, "app.kubernetes.io/component=redis")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert kube.get("secret", REDIS, RELEASE_NS)["data"]["password"] == password
    eventually(lambda: kube.get("statefulset", REDIS, RELEASE_NS)["status"].get("readyReplicas") == 1, "Redis ready")


def test_the_idle_operator_stays_within_its_memory_request(release: Release, kube: Kube, layout: Layout) -> None:
    """The working set `kubectl top` shows (usage less inactive file cache, read from the container's
    memory cgroup: this node runs no metrics-server) against the chart's request."""
    (pod,) = kube.pods(RELEASE_NS, "app.kubernetes.io/component=operator")
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    parent = docker.run(layout, "inspect", "-f", "{{.HostConfig.CgroupParent}}", container_id).strip()
    cgroup = Path("/sys/fs/cgroup/memory") / parent.lstrip("/") / container_id
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    working_set = usage - int(stat["total_inactive_file"])
    request = pod["spec"]["containers"][0]["resources"]["requests"]["memory"]
    print(f"idle operator working set: {working_set / 2**20:.0f} MiB, request {request}")
    assert working_set <= _bytes(request)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)

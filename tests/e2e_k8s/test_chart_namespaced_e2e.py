"""The chart with `operator.watchNamespaces`: namespaced Roles, on a real kube-apiserver (1.20.2).

As tests/e2e_k8s/test_chart_e2e.py, with the second RBAC shape (issue 15, finding 6): the
chart is applied for real, and the operator runs as a local process with the chart's
ServiceAccount token and the environment its Deployment gives it. It must serve the
watched namespace (a Redis LLMCache whose Secret it reads, a transparent one with its CA
Secret, the Pod Security label, the webhook) without one request the RBAC refuses, leave
the unwatched namespace alone, and the API server itself (`kubectl auth can-i`) must say
that it can read no Secret and write no ConfigMap outside the watched namespace.

Real: API server, etcd, RBAC, admission, helm 4, kubectl, redis-server, the operator.
A separate module from test_chart_e2e.py: its cluster-wide operator would serve every namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_k8s.test_chart_e2e import (
    FORBIDDEN,
    Installed,
    as_list,
    get,
    helm4,
    ok,
    operator,
    pod,
    service_account_kubeconfig,
    wait_until,
)
from tests.k8s.controlplane import ControlPlane
from tests.realparts import free_port, redis

pytestmark = pytest.mark.e2e_k8s

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "llmcns"
RELEASE_NS = "llmcache-ns-system"
WATCHED = "team-watched"
UNWATCHED = "team-unwatched"
REDIS_PASSWORD = "namespaced-e2e-password"


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    ok(plane, "apply", "-f", "-", input=json.dumps(obj))


@pytest.fixture(scope="module")
def running(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Installed, Path]]:
    plane = control_plane
    workdir = tmp_path_factory.mktemp("chart-namespaced-e2e")
    ok(plane, "apply", "-f", str(ROOT / "charts" / "llmcache" / "crds"))
    ok(plane, "wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev")
    for name in (RELEASE_NS, WATCHED, UNWATCHED):
        # The name label Kubernetes 1.21+ sets by itself, by hand on this 1.20 server (chart README).
        labels = {"kubernetes.io/metadata.name": name}
        apply(plane, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    port = free_port()
    values = {
        "webhook": {"url": f"https://127.0.0.1:{port}/inject-sidecar"},
        "operator": {"watchNamespaces": [WATCHED]},
    }
    objs = helm4(workdir).template(values, namespace=RELEASE_NS, kube_version="1.20.2", release=RELEASE)
    ok(plane, "apply", "-f", "-", input=as_list(objs))
    # The CA and savings loops every second: their lists of LLMCaches must work on the namespaced Roles too.
    loop = {"LLMCACHE_OPERATOR_CA_CHECK_INTERVAL": "1", "LLMCACHE_OPERATOR_SAVINGS_INTERVAL": "1"}
    (account,) = [o for o in objs if o["kind"] == "ServiceAccount"]
    kubeconfig = service_account_kubeconfig(plane, account["metadata"]["name"], workdir / "sa", RELEASE_NS)
    log = workdir / "operator.log"
    try:
        with redis(workdir, password=REDIS_PASSWORD) as server:
            installed = Installed(plane, objs, server, port, workdir, release_ns=RELEASE_NS, extra_env=loop)
            with operator(installed, kubeconfig, log):
                wait_until(lambda: (workdir / "tls" / "tls.crt").exists(), "the operator wrote its certificate", log)
                yield installed, log
    finally:
        for obj in objs:  # cluster-scoped leftovers would send later pods to a webhook that is gone
            if "namespace" not in obj["metadata"]:
                plane.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found")


def service_account(installed: Installed) -> str:
    (account,) = [o for o in installed.objs if o["kind"] == "ServiceAccount"]
    return f"system:serviceaccount:{RELEASE_NS}:{account['metadata']['name']}"


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("get", "secrets", WATCHED, True),
        ("get", "secrets", UNWATCHED, False),
        ("get", "secrets", "kube-system", False),
        ("create", "configmaps", WATCHED, True),
        ("patch", "configmaps", UNWATCHED, False),
        ("list", "pods", UNWATCHED, False),
        ("list", "namespaces", "", False),
        ("watch", "customresourcedefinitions", "", False),
        ("get", f"secrets/{RELEASE}-llmcache-webhook-tls", RELEASE_NS, True),
        ("get", "secrets/someone-elses", RELEASE_NS, False),
    ],
)
def test_the_api_server_grants_the_operator_secrets_and_config_maps_only_in_the_watched_namespace(
    running: tuple[Installed, Path], verb: str, resource: str, namespace: str, allowed: bool
) -> None:
    installed, _ = running
    result = installed.plane.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={service_account(installed)}"
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_on_namespaced_roles_the_operator_serves_the_watched_namespace_and_nothing_else(
    running: tuple[Installed, Path],
) -> None:
    installed, log = running
    plane, redis = installed.plane, installed.redis
    apply(plane, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis", "namespace": WATCHED,
          "labels": {"llmcache.dev/usable": "true"}}, "stringData": {"password": REDIS_PASSWORD}})  # fmt: skip
    shared = {"podSelector": {"matchLabels": {"llmcache.dev/enabled": "true"}}, "providers": ["openai"],
              "backend": {"type": "redis", "redis": {"url": redis.url,
                                                     "passwordSecretRef": {"name": "redis", "key": "password"}}}}  # fmt: skip
    edge = {"mode": "transparent", "interception": "iptables", "providers": ["openai"],
            "podSelector": {"matchLabels": {"egress": "llm"}}}  # fmt: skip
    for name, namespace, spec in (("shared", WATCHED, shared), ("edge", WATCHED, edge), ("other", UNWATCHED, {})):
        apply(plane, {"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache",
                      "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip

    def conditions(name: str, namespace: str = WATCHED) -> dict[str, str]:
        found = get(plane, "llmc", name, "-n", namespace).get("status", {}).get("conditions", [])
        return {c["type"]: c["status"] for c in found}

    wait_until(
        lambda: conditions("shared").get("Ready") == "True", "Ready (labels and value read, ConfigMap written)", log
    )
    found = wait_until(
        lambda: {"InterceptionCA", "InterceptionAllowed"} <= set(conditions("edge")) and conditions("edge"),
        "the CA Secret written and the Pod Security label read", log,
    )  # fmt: skip
    attempts = iter(range(100))

    def injected() -> Any:
        name = f"chat-{next(attempts)}"
        apply(plane, pod(name, WATCHED, {"llmcache.dev/enabled": "true"}))
        stored = get(plane, "pod", name, "-n", WATCHED)
        return stored if stored["metadata"].get("annotations", {}).get("llmcache.dev/injected") else None

    stored = wait_until(injected, "a labelled pod injected through the chart's webhook", log)
    savings = wait_until(
        lambda: get(plane, "llmc", "shared", "-n", WATCHED).get("status", {}).get("savings"),
        "status.savings read from the shared cache's Redis", log,
    )  # fmt: skip
    apply(plane, pod("elsewhere", UNWATCHED, {"llmcache.dev/enabled": "true"}))

    assert (found["InterceptionCA"], found["InterceptionAllowed"]) == ("True", "True")
    assert [c["name"] for c in stored["spec"]["containers"]] == ["llmcache-sidecar", "app"]
    assert [c["name"] for c in get(plane, "pod", "elsewhere", "-n", UNWATCHED)["spec"]["containers"]] == ["app"]
    assert (savings.get("requests"), savings.get("message")) == (0, None)
    assert "status" not in get(plane, "llmc", "other", "-n", UNWATCHED)  # never served
    assert plane.kubectl("get", "configmap", "llmcache-other", "-n", UNWATCHED).returncode != 0
    denied = [line for line in log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
    assert not denied, "the operator hit RBAC limits:\n" + "\n".join(denied[:20])

"""The e2e_node tier: a real single-node cluster here, the product installed as users install it.

Real: kube-apiserver, etcd, controller-manager, scheduler, kubelet (dockershim), kube-proxy,
docker, CNI; the images built by `make images`; `helm install` of charts/llmcache; the operator,
Redis and the sidecars as pods under the chart's ServiceAccount, RBAC and security contexts;
the official openai SDK inside an unmodified app pod.
Faked: the LLM provider (tests/fakes over TLS, answering as api.openai.com from the node
itself, through the node's DNS) and one more HTTPS origin. The sidecar image the pods run is
the product's plus that fake's CA (tests/node/images/sidecar-with-ca).

Tests share one cluster and one release, in file order (test_1_... to test_8_...): each file is
one item of issue 14's list. After a failed test, kubectl describe, events and every
container's log are under .e2e-node/logs/failures/<test>/ (beside kubelet.log, dockerd.log...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.node import cluster, images, origins
from tests.node.kube import HELM, KUBECTL, Kube, eventually
from tests.node.layout import POD_CIDR, SERVICE_CIDR, Layout

REQUIRE_ENV = "REQUIRE_TEST_TOOLS"
RELEASE = "llmcache"
RELEASE_NS = "llmcache-system"
APP_NS = "e2e-app"
CHART = cluster.REPO_ROOT / "charts" / "llmcache"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e_node/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e_node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and call.when == "call" and (cluster.REPO_ROOT / ".tools" / "kubectl").exists():
        layout = Layout.default()
        if layout.kubeconfig().exists():
            target = layout.logs / "failures" / item.name
            Kube(layout, layout.run / "kube-home").dump(target)
            report.sections.append(("e2e-node", f"kubectl describe, events and pod logs: {target}"))
    return report


@pytest.fixture(scope="session")
def layout() -> Layout:
    return Layout.default()


@pytest.fixture(scope="session")
def node(layout: Layout) -> Iterator[cluster.Cluster]:
    missing = cluster.missing_prerequisites(layout)
    missing += [f"{tool} (scripts/fetch-tools.sh)" for tool in (KUBECTL, HELM) if not tool.exists()]
    if missing:
        message = "no test node: missing " + "; ".join(missing) + ". Run `make e2e-node` (docs/e2e-node.md)."
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    node = cluster.up(layout, extra_hosts=origins.HOSTS)
    try:
        yield node
    finally:
        cluster.down(layout)


@pytest.fixture(scope="session")
def fake(node: cluster.Cluster, layout: Layout) -> Iterator[origins.Origins]:
    with origins.serving(layout.run / "origins") as served:
        yield served


@pytest.fixture(scope="session")
def built(node: cluster.Cluster, fake: origins.Origins, layout: Layout) -> images.Built:
    return images.build_all(layout, fake.ca_cert)


@pytest.fixture(scope="session")
def kube(node: cluster.Cluster, layout: Layout) -> Kube:
    home = layout.run / "kube-home"
    home.mkdir(parents=True, exist_ok=True)
    return Kube(layout, home)


@dataclass(frozen=True)
class Release:
    kube: Kube
    built: images.Built
    values: list[str]

    def upgrade(self) -> None:
        self.kube.helm("upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, *self.values, "--wait", "--timeout", "5m")


def release_values(built: images.Built) -> list[str]:
    sidecar_repo, sidecar_tag = built.sidecar_with_ca.rsplit(":", 1)
    redis_repo, redis_tag = built.redis.rsplit(":", 1)
    return [
        "--set", "operator.image.pullPolicy=Never",
        "--set", f"sidecar.image.repository={sidecar_repo}",
        "--set", f"sidecar.image.tag={sidecar_tag}",
        "--set", "sidecar.image.pullPolicy=Never",
        "--set", "redis.enabled=true",
        "--set", f"redis.image.repository={redis_repo}",
        "--set", f"redis.image.tag={redis_tag}",
        "--set", "redis.image.pullPolicy=Never",
        "--set", f"redis.defaultCache.namespace={APP_NS}",
        "--set", f"transparent.clusterCIDRs={{{POD_CIDR},{SERVICE_CIDR}}}",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def release(kube: Kube, built: images.Built) -> Release:
    """`helm install llmcache charts/llmcache -n llmcache-system --create-namespace`, our images, --wait."""
    kube.kubectl("create", "namespace", APP_NS)
    values = release_values(built)
    kube.helm(
        "install", RELEASE, str(CHART), "-n", RELEASE_NS, "--create-namespace", *values, "--wait", "--timeout", "5m"
    )
    eventually(
        lambda: ready_condition(kube, APP_NS, "default") == "True", "the chart's default LLMCache Ready", timeout=120
    )
    return Release(kube, built, values)


def ready_condition(kube: Kube, namespace: str, name: str) -> str | None:
    status = kube.get("llmcache", name, namespace).get("status") or {}
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"), None)


APP_SCRIPT = """
import json, os, ssl, sys
import openai
prompt, mode = sys.argv[1], sys.argv[2]
if mode == "sdk":  # as the app is: the SDK reads OPENAI_BASE_URL, set by the webhook
    client = openai.OpenAI(api_key="sk-e2e-app", max_retries=0)
else:  # an app that hard-codes the provider's URL; "direct" also ignores the proxy variables
    context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    http = openai.DefaultHttpxClient(trust_env=(mode == "proxy"), verify=context, timeout=60)
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="sk-e2e-app", max_retries=0, http_client=http)
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
)
print(json.dumps({"status": raw.status_code, "cache": raw.headers.get("cache-status"), "id": raw.parse().id,
                  "base_url": str(client.base_url)}))
"""


@dataclass(frozen=True)
class Answer:
    status: int
    cache: str | None
    id: str
    base_url: str


def ask(kube: Kube, namespace: str, pod: str, prompt: str, mode: str = "sdk") -> Answer:
    """One chat completion from inside the app container, with the official SDK."""
    return Answer(**kube.exec_python(namespace, pod, APP_SCRIPT, prompt, mode))


def app_deployment(name: str, namespace: str, image: str, *, replicas: int = 1, labels: dict[str, str] | None = None):
    """An app as users write one: nothing llmcache-specific but the label the docs name."""
    pod_labels = {"app": name, **(labels if labels is not None else {"llmcache.dev/enabled": "true"})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": "Never",
                            # idle; the tests run the SDK in it with kubectl exec
                            "command": ["python", "-c", "import signal; signal.pause()"],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def labelled_pod(name: str, namespace: str, image: str) -> dict[str, object]:
    """A bare idle pod with the label the docs name: what the webhook would inject."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"llmcache.dev/enabled": "true"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import signal; signal.pause()"],
                }
            ],
        },
    }


def rolled_out(kube: Kube, namespace: str, name: str, replicas: int = 1) -> list[dict[str, object]]:
    """Wait until the Deployment's pods are all Ready; its pods."""
    kube.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=180s", timeout=200)

    def ready() -> list[dict[str, object]] | None:
        pods = kube.pods(namespace, f"app={name}")
        ok = len(pods) == replicas and all(
            all(c.get("ready") for c in p["status"].get("containerStatuses", [])) for p in pods
        )
        return pods if ok else None

    return eventually(ready, f"{replicas} ready pods of {namespace}/{name}", timeout=180)


def container_names(pod: dict[str, object]) -> list[str]:
    spec = pod["spec"]
    assert isinstance(spec, dict)
    return [c["name"] for c in spec.get("initContainers", [])] + [c["name"] for c in spec["containers"]]


def restarts(pod: dict[str, object]) -> int:
    status = pod["status"]
    assert isinstance(status, dict)
    return sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))


def path_of(pod: dict[str, object]) -> str:
    meta = pod["metadata"]
    assert isinstance(meta, dict)
    return str(meta["name"])


__all__ = ["APP_NS", "RELEASE", "RELEASE_NS", "Answer", "Path", "Release", "app_deployment", "ask"]

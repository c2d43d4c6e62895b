"""The rendered Helm chart against a real kube-apiserver (1.20.2) and etcd on loopback.

1. `helm template | kubectl apply --dry-run=server` for several option sets: the API
   server accepts every object. cert-manager and prometheus-operator resources are left
   out, because their CRDs are not installed here.
2. The chart applied for real with `webhook.url` pointing at 127.0.0.1 (no Service can be
   reached: this control plane has no kube-proxy, kubelet or scheduler), then the operator
   run as a local process **with the chart's ServiceAccount token and RBAC**, and with
   the environment the chart's Deployment gives it. It creates its CA Secret, writes the
   caBundle into the chart's MutatingWebhookConfiguration, and the API server then calls
   it to inject a pod. Its log must show no request the RBAC refused.

Real: API server, etcd, RBAC, admission, helm 4, kubectl, redis-server, the operator.
Not here: controllers (pods stay Pending; nothing is garbage-collected).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import FOREIGN_GROUPS, Helm, group_of, helm_binary
from tests.k8s.controlplane import ControlPlane, stop_process
from tests.realparts import RedisServer, free_port, redis

pytestmark = pytest.mark.e2e_k8s

ROOT = Path(__file__).resolve().parents[2]
RELEASE_NS = "llmcache-system"
APP_NS = "chart-e2e"
REDIS_PASSWORD = "chart-e2e-password"
WAIT_S = 40.0
DRY_RUN_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "redis": {"redis": {"enabled": True, "persistence": {"enabled": True}}},
    "dashboards": {"monitoring": {"dashboard": {"enabled": True}}},
    "webhook-off": {"webhook": {"enabled": False}},
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "embedder": {"embedder": {"enabled": True}, "redis": {"enabled": True, "defaultCache": {"semantic": True}}},
    "watch-namespaces": {"operator": {"watchNamespaces": [RELEASE_NS]}},
    "network-policy": {
        "operator": {
            "networkPolicy": {
                "apiServerCIDRs": ["127.0.0.1/32"],
                "probeCIDRs": ["10.0.0.0/8"],
                "webhookFrom": [{"podSelector": {}}],
            }
        }
    },
}
# An HTTP 403 in kopf's or the client's words; a bare "403" would also match a
# log line's milliseconds ("14:50:31,403"), which failed CI once.
FORBIDDEN = re.compile(r"forbidden|Not enough permissions|(?<![\d,.:])403(?!\d)", re.IGNORECASE)


def helm4(tmp: Path) -> Helm:
    binary = helm_binary("helm4")
    if not os.access(binary, os.X_OK):
        pytest.skip("helm 4 missing: run scripts/fetch-tools.sh")
    return Helm("helm4", binary, tmp)


def without_foreign(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if group_of(o) not in FOREIGN_GROUPS]


def as_list(objs: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})


def wait_until(check: Callable[[], Any], what: str, log: Path | None = None, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"not within {timeout}s: {what}; last: {last!r}\n{tail}")


def ok(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    result = plane.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def get(plane: ControlPlane, *args: str) -> Any:
    return json.loads(ok(plane, "get", *args, "-o", "json"))


@pytest.fixture(scope="module")
def with_crds(control_plane: ControlPlane) -> ControlPlane:
    ok(control_plane, "apply", "-f", str(ROOT / "charts" / "llmcache" / "crds"))
    ok(control_plane, "wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev")
    ok(control_plane, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NS}}))  # fmt: skip
    return control_plane


@pytest.mark.parametrize("option_set", sorted(DRY_RUN_SETS))
def test_the_server_accepts_the_rendered_chart_in_a_server_side_dry_run(
    with_crds: ControlPlane, tmp_path: Path, option_set: str
) -> None:
    objs = without_foreign(
        helm4(tmp_path).template(DRY_RUN_SETS[option_set], namespace=RELEASE_NS, kube_version="1.20.2")
    )
    result = with_crds.kubectl("apply", "--dry-run=server", "-f", "-", input=as_list(objs))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(objs)


# --- The chart for real, with the operator running on its RBAC ----------------------------------------------------


@dataclass
class Installed:
    plane: ControlPlane
    objs: list[dict[str, Any]]
    redis: RedisServer
    webhook_port: int
    workdir: Path
    release_ns: str = RELEASE_NS
    extra_env: dict[str, str] = field(default_factory=dict)

    def operator_env(self, kubeconfig: Path) -> dict[str, str]:
        """The environment the chart's Deployment gives the operator, moved to loopback and a scratch dir."""
        (deployment,) = [o for o in self.objs if o["kind"] == "Deployment"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env.update({
            "LLMCACHE_OPERATOR_NAMESPACE": self.release_ns,  # the chart's fieldRef
            "LLMCACHE_OPERATOR_WEBHOOK_ADDR": "127.0.0.1",
            "LLMCACHE_OPERATOR_WEBHOOK_PORT": str(self.webhook_port),
            "LLMCACHE_OPERATOR_WEBHOOK_CERT": str(self.workdir / "tls" / "tls.crt"),
            "LLMCACHE_OPERATOR_WEBHOOK_KEY": str(self.workdir / "tls" / "tls.key"),
            "LLMCACHE_OPERATOR_LIVENESS": f"http://127.0.0.1:{free_port()}/healthz",
            "LLMCACHE_OPERATOR_RETRY_DELAY": "1",
            **self.extra_env,
        })  # fmt: skip
        return {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}


def service_account_kubeconfig(plane: ControlPlane, name: str, path: Path, namespace: str = RELEASE_NS) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest API)."""
    token = ok(plane, "create", "token", name, "-n", namespace, "--duration=1h").strip()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "e2e", "cluster": {"server": plane.server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "e2e", "user": "sa"}}],
    }  # fmt: skip
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def operator(installed: Installed, kubeconfig: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmcache_operator"], env=installed.operator_env(kubeconfig),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        stop_process(proc, term_timeout=15, kill_timeout=10)


@pytest.fixture(scope="module")
def installed(with_crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    workdir = tmp_path_factory.mktemp("chart-e2e")
    port = free_port()
    values = {"webhook": {"url": f"https://127.0.0.1:{port}/inject-sidecar"}}
    objs = helm4(workdir).template(values, namespace=RELEASE_NS, kube_version="1.20.2")
    ok(with_crds, "apply", "-f", "-", input=as_list(objs))
    ok(with_crds, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NS}}))  # fmt: skip
    with redis(workdir, password=REDIS_PASSWORD) as server:
        try:
            yield Installed(with_crds, objs, server, port, workdir)
        finally:
            # Cluster-scoped leftovers would send the next module's pods to a webhook that is gone.
            for obj in objs:
                if "namespace" not in obj["metadata"]:
                    with_crds.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found")


@pytest.fixture(scope="module")
def running(installed: Installed) -> Iterator[tuple[Installed, Path, Path]]:
    (account,) = [o for o in installed.objs if o["kind"] == "ServiceAccount"]
    kubeconfig = service_account_kubeconfig(installed.plane, account["metadata"]["name"], installed.workdir / "sa")
    log = installed.workdir / "operator.log"
    with operator(installed, kubeconfig, log):
        wait_until(lambda: (installed.workdir / "tls" / "tls.crt").exists(), "the operator wrote its certificate", log)
        yield installed, kubeconfig, log


def llmcache_spec(redis: RedisServer) -> dict[str, Any]:
    return {
        "podSelector": {"matchLabels": {"llmcache.dev/enabled": "true"}},
        "backend": {"type": "redis", "redis": {"url": redis.url, "passwordSecretRef": {"name": "redis", "key": "password"}}},
        "providers": ["openai"],
    }  # fmt: skip


def pod(name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}  # fmt: skip


def test_the_operator_keeps_its_ca_in_a_secret_and_sets_the_ca_bundle(running: tuple[Installed, Path, Path]) -> None:
    installed, _, log = running
    plane = installed.plane
    (configuration,) = [o for o in installed.objs if o["kind"] == "MutatingWebhookConfiguration"]
    name = configuration["metadata"]["name"]
    stored = wait_until(
        lambda: (c := get(plane, "mutatingwebhookconfiguration", name))["webhooks"][0]["clientConfig"].get("caBundle")
        and c, "the caBundle set", log,
    )  # fmt: skip
    secret = get(plane, "secret", "-n", RELEASE_NS, f"{name}-webhook-tls")

    assert secret["type"] == "kubernetes.io/tls"
    assert stored["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert (installed.workdir / "tls" / "tls.crt").read_bytes() == base64.b64decode(secret["data"]["tls.crt"])


def test_on_the_charts_rbac_the_operator_reconciles_and_the_server_calls_its_webhook(
    running: tuple[Installed, Path, Path],
) -> None:
    installed, _, log = running
    plane = installed.plane
    ok(plane, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "redis", "namespace": APP_NS, "labels": {"llmcache.dev/usable": "true"}},
        "stringData": {"password": REDIS_PASSWORD}}))  # fmt: skip
    ok(plane, "apply", "-f", "-", input=json.dumps({"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache",
        "metadata": {"name": "shared", "namespace": APP_NS}, "spec": llmcache_spec(installed.redis)}))  # fmt: skip

    def ready() -> Any:
        conditions = get(plane, "llmc", "shared", "-n", APP_NS).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Ready" and c["status"] == "True"), None)

    wait_until(ready, "the LLMCache Ready (ConfigMap written, Secret read, backend answered)", log)
    # Indexed for the webhook a moment after the reconcile: retry with fresh pods until injected.
    attempts = iter(range(100))

    def injected() -> Any:
        name = f"chat-{next(attempts)}"
        ok(plane, "apply", "-f", "-", input=json.dumps(pod(name, APP_NS, {"llmcache.dev/enabled": "true"})))
        stored = get(plane, "pod", name, "-n", APP_NS)
        return stored if stored["metadata"].get("annotations", {}).get("llmcache.dev/injected") else None

    stored = wait_until(injected, "a labelled pod injected through the chart's webhook configuration", log)
    assert [c["name"] for c in stored["spec"]["containers"]] == ["llmcache-sidecar", "app"]
    sidecar_image = installed.operator_env(Path("unused"))["LLMCACHE_OPERATOR_SIDECAR_IMAGE"]
    assert stored["spec"]["containers"][0]["image"] == sidecar_image
    ok(plane, "apply", "-f", "-", input=json.dumps(pod("plain", APP_NS, {})))
    assert [c["name"] for c in get(plane, "pod", "plain", "-n", APP_NS)["spec"]["containers"]] == ["app"]
    wait_until(lambda: get(plane, "llmc", "shared", "-n", APP_NS)["status"].get("injectedPods", 0) >= 1,
               "injectedPods counted (pods listed and watched, status patched)", log)  # fmt: skip

    denied = [line for line in log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
    assert not denied, "the operator hit RBAC limits:\n" + "\n".join(denied[:20])


def test_on_the_charts_rbac_a_transparent_llmcache_gets_its_ca_and_its_interception_checked(
    running: tuple[Installed, Path, Path],
) -> None:
    installed, _, log = running
    plane = installed.plane
    spec = {"mode": "transparent", "interception": "iptables", "providers": ["openai"],
            "podSelector": {"matchLabels": {"egress": "llm"}}}  # fmt: skip
    ok(plane, "apply", "-f", "-", input=json.dumps({"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache",
        "metadata": {"name": "edge", "namespace": APP_NS}, "spec": spec}))  # fmt: skip

    def settled() -> Any:
        conditions = get(plane, "llmc", "edge", "-n", APP_NS).get("status", {}).get("conditions", [])
        found = {c["type"]: c["status"] for c in conditions}
        return found if {"InterceptionCA", "InterceptionAllowed"} <= set(found) else None

    found = wait_until(settled, "the CA Secret written and the namespace's Pod Security read", log)
    assert (found["InterceptionCA"], found["InterceptionAllowed"]) == ("True", "True")
    assert get(plane, "secret", "llmcache-edge-ca", "-n", APP_NS)["type"] == "kubernetes.io/tls"
    denied = [line for line in log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
    assert not denied, "the operator hit RBAC limits:\n" + "\n".join(denied[:20])


def test_the_release_namespace_is_never_injected(running: tuple[Installed, Path, Path]) -> None:
    installed, _, log = running
    plane = installed.plane
    ok(plane, "apply", "-f", "-", input=json.dumps({"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache",
        "metadata": {"name": "own", "namespace": RELEASE_NS}, "spec": {"podSelector": {}}}))  # fmt: skip
    wait_until(lambda: get(plane, "llmc", "own", "-n", RELEASE_NS).get("status", {}).get("conditions"),
               "the LLMCache in the release namespace reconciled", log)  # fmt: skip
    time.sleep(1)  # let the index catch up, as for the injected pod above
    ok(plane, "apply", "-f", "-", input=json.dumps(pod("own-pod", RELEASE_NS, {"app": "x"})))
    stored = get(plane, "pod", "own-pod", "-n", RELEASE_NS)
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app"]


def test_a_restarted_operator_reuses_its_ca(running: tuple[Installed, Path, Path]) -> None:
    installed, kubeconfig, _ = running
    plane = installed.plane
    (configuration,) = [o for o in installed.objs if o["kind"] == "MutatingWebhookConfiguration"]
    before = get(plane, "secret", "-n", RELEASE_NS, f"{configuration['metadata']['name']}-webhook-tls")
    second_log = installed.workdir / "operator-2.log"
    second = Installed(installed.plane, installed.objs, installed.redis, free_port(), installed.workdir / "second")
    with operator(second, kubeconfig, second_log):
        wait_until(lambda: (second.workdir / "tls" / "tls.crt").exists(), "the second operator's certificate",
                   second_log)  # fmt: skip
    after = get(plane, "secret", "-n", RELEASE_NS, f"{configuration['metadata']['name']}-webhook-tls")
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

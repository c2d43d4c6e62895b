"""The operator end to end against a real kube-apiserver (1.20.2) and etcd on loopback.

Real: the API server (CRD schema validation, defaulting, admission calling our webhook
over HTTPS with a URL client config, storing the mutated pods), the operator run as
`python -m llmcache_operator` (kopf, its webhook server), and a password-protected
redis-server. Missing from this control plane: scheduler, kubelet and
controller-manager, so pods stay Pending (they are still stored, which is what the
webhook changes) and no garbage collector deletes owned ConfigMaps. Kubernetes 1.20
has no native sidecars: it drops `restartPolicy` from init containers, so for those the
test checks the webhook's own answer, as K8S-TESTING.md says.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.k8s.controlplane import ControlPlane, stop_process
from tests.realparts import TLS, RedisServer, free_port, make_tls, redis

pytestmark = pytest.mark.e2e_k8s

ROOT = Path(__file__).parents[2]
WEBHOOK_NS_LABEL = {"llmcache.dev/webhook": "enabled"}
REDIS_PASSWORD = "e2e-redis-password"
WAIT_S = 30.0


@dataclass
class Cluster:
    plane: ControlPlane
    redis: RedisServer
    tls: TLS
    webhook_url: str
    operator: subprocess.Popen[bytes]
    operator_log: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, input=input)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self.kubectl(*args, input=input)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}\n{self.log_tail()}"
        return result.stdout

    def get(self, kind: str, name: str, namespace: str) -> Any:
        return json.loads(self.ok("get", kind, name, "-n", namespace, "-o", "json"))

    def apply(self, obj: dict[str, Any], *extra: str) -> str:
        return self.ok("apply", *extra, "-f", "-", input=json.dumps(obj))

    def log_tail(self, lines: int = 40) -> str:
        text = self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""
        return "operator log tail:\n" + "\n".join(text.splitlines()[-lines:])


def wait_until(check: Callable[[], Any], what: str, cluster: Cluster | None = None, timeout: float = WAIT_S) -> Any:
    """Poll `check` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, IndexError, TypeError, StopIteration, json.JSONDecodeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what}; last: {last!r}\n{cluster.log_tail() if cluster else ''}")


def namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def llmcache(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "llmcache.dev/v1alpha1",
        "kind": "LLMCache",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def pod(name: str, ns: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }


def condition(obj: dict[str, Any], kind: str) -> tuple[str, str, str] | None:
    for found in obj.get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found["status"], found["reason"], found["message"]
    return None


def webhook_configuration(url: str, ca_pem: bytes) -> dict[str, Any]:
    """What the Helm chart will install, with the URL client config tests need (no Service here)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "llmcache-e2e"},
        "webhooks": [
            {
                "name": "inject-sidecar.llmcache.dev",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                     "scope": "Namespaced"}
                ],
                # 1.20 has no kubernetes.io/metadata.name label: opt namespaces in explicitly.
                "namespaceSelector": {"matchLabels": WEBHOOK_NS_LABEL},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }  # fmt: skip


def _tls_answers(port: int, ca_pem: bytes) -> bool:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    request = urllib.request.Request(f"https://127.0.0.1:{port}/inject-sidecar", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        error.close()
        return True  # it answered
    except OSError:
        return False


@contextlib.contextmanager
def operator_process(
    plane: ControlPlane, tls: TLS, workdir: Path, **extra_env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`python -m llmcache_operator` against `plane`, serving its webhook on a free port."""
    port, liveness = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(plane.kubeconfig),
        "LLMCACHE_OPERATOR_WEBHOOK_ADDR": "127.0.0.1",
        "LLMCACHE_OPERATOR_WEBHOOK_PORT": str(port),
        "LLMCACHE_OPERATOR_WEBHOOK_CERT": str(tls.certfile),
        "LLMCACHE_OPERATOR_WEBHOOK_KEY": str(tls.keyfile),
        "LLMCACHE_OPERATOR_LIVENESS": f"http://127.0.0.1:{liveness}/healthz",
        "LLMCACHE_OPERATOR_RETRY_DELAY": "1",
        "LLMCACHE_OPERATOR_BACKEND_TIMEOUT": "2",
        **extra_env,
    }
    log = workdir / f"operator-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmcache_operator"], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT_S
        while not _tls_answers(port, tls.ca_pem):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the operator did not serve its webhook:\n{log.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.2)
        yield proc, port, log
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, term_timeout=15, kill_timeout=10)


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("operator-e2e")
    applied = control_plane.kubectl("apply", "-f", str(ROOT / "crds"))
    assert applied.returncode == 0, applied.stderr
    established = control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev"
    )
    assert established.returncode == 0, established.stderr
    for name, labels in (("team-a", WEBHOOK_NS_LABEL), ("team-b", WEBHOOK_NS_LABEL), ("ml", {})):
        created = control_plane.kubectl("apply", "-f", "-", input=json.dumps(namespace(name, labels)))
        assert created.returncode == 0, created.stderr
    tls = make_tls(workdir / "tls")
    with redis(workdir, password=REDIS_PASSWORD) as server, operator_process(control_plane, tls, workdir) as running:
        proc, port, log = running
        url = f"https://127.0.0.1:{port}/inject-sidecar"
        configured = control_plane.kubectl("apply", "-f", "-", input=json.dumps(webhook_configuration(url, tls.ca_pem)))
        assert configured.returncode == 0, configured.stderr
        yield Cluster(control_plane, server, tls, url, proc, log)
        control_plane.kubectl("delete", "mutatingwebhookconfiguration", "llmcache-e2e", "--ignore-not-found")


def shared_spec(redis: RedisServer) -> dict[str, Any]:
    return {
        "podSelector": {"matchLabels": {"llmcache.dev/enabled": "true"}},
        "ttl": "1h",
        "backend": {
            "type": "redis",
            "redis": {"url": redis.url, "passwordSecretRef": {"name": "redis", "key": "password"}},
        },
        "providers": ["openai", "anthropic"],
    }


def when(cluster: Cluster, name: str, ns: str, predicate: Callable[[dict[str, Any]], Any], what: str) -> dict[str, Any]:
    """The LLMCache once `predicate` holds for it (bounded wait)."""

    def check() -> dict[str, Any] | None:
        obj: dict[str, Any] = cluster.get("llmc", name, ns)
        return obj if predicate(obj) else None

    found: dict[str, Any] = wait_until(check, f"{ns}/{name}: {what}", cluster)
    return found


def ready(cluster: Cluster, name: str, ns: str) -> dict[str, Any]:
    return when(cluster, name, ns, lambda o: condition(o, "Ready"), "has a Ready condition")


# --- The API server checks LLMCaches against the generated schema ------------------------


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"backend": {"type": "memcached"}}, 'spec.backend.type: Unsupported value: "memcached"'),
        ({"ttl": "soon"}, 'spec.ttl: Invalid value: "soon"'),
        (
            {"backend": {"redis": {"passwordSecretRef": {"name": "r"}}}},
            "spec.backend.redis.passwordSecretRef.key: Required value",
        ),
        ({"sidecar": {"port": 70000}}, "spec.sidecar.port: Invalid value: 70000"),
        (
            {"sidecar": {"resources": {"requests": {"cpu": "lots"}}}},
            'spec.sidecar.resources.requests.cpu: Invalid value: "lots"',
        ),
        ({"maxBodyBytes": 0}, "spec.maxBodyBytes: Invalid value: 0"),
        ({"rules": [{"action": "cache"}]}, "spec.rules.when: Required value"),  # 1.20 names no index
        ({"recording": "sometimes"}, 'spec.recording: Unsupported value: "sometimes"'),
    ],
)
def test_the_server_rejects_an_invalid_llmcache(cluster: Cluster, spec: dict[str, Any], error: str) -> None:
    # --validate=false: the verdict must be the server's (kubectl 1.32 would check client-side).
    result = cluster.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(llmcache("bad", "team-a", spec)))
    assert result.returncode != 0
    assert error in result.stderr


def test_the_server_accepts_every_example_and_fills_in_defaults(cluster: Cluster) -> None:
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        cluster.ok("apply", "--dry-run=server", "-f", str(example))
    cluster.apply(llmcache("defaults", "ml", {}))
    stored = cluster.get("llmc", "defaults", "ml")["spec"]
    assert (stored["ttl"], stored["isolation"], stored["backend"]["type"]) == ("1h", "credential", "memory")
    assert stored["providers"] == ["openai", "anthropic", "gemini"]
    # The TTL column shows a defaulted TTL as a given one is shown (issue 14: 3600 beside 1h).
    header, row = cluster.ok("get", "llmc", "defaults", "-n", "ml").splitlines()
    assert dict(zip(header.split(), row.split(), strict=False))["TTL"] == "1h"
    cluster.ok("delete", "llmc", "defaults", "-n", "ml")


# --- Reconcile against the real server -------------------------------------------------------


def test_an_llmcache_gets_its_config_map_and_becomes_ready(cluster: Cluster) -> None:
    """Its Secret is used once labelled llmcache.dev/usable=true: before, the LLMCache is refused and
    nothing is written (the labels are read as PartialObjectMetadata, which this server answers)."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis", "namespace": "team-a"},
              "stringData": {"password": REDIS_PASSWORD}}  # fmt: skip
    cluster.apply(secret)
    cluster.apply(llmcache("shared", "team-a", shared_spec(cluster.redis)))
    unusable = when(cluster, "shared", "team-a", lambda o: condition(o, "Allowed"), "has an Allowed condition")
    no_config_map = cluster.kubectl("get", "configmap", "llmcache-shared", "-n", "team-a")
    cluster.ok("label", "secret", "redis", "-n", "team-a", "llmcache.dev/usable=true")
    obj = when(
        cluster, "shared", "team-a", lambda o: (condition(o, "Ready") or ("",))[0] == "True", "Ready once labelled"
    )
    config_map = cluster.get("configmap", "llmcache-shared", "team-a")
    table = cluster.ok("get", "llmc", "-n", "team-a")

    assert condition(unusable, "Allowed")[:2] == ("False", "SecretNotUsable"), cluster.log_tail()
    assert condition(unusable, "Ready")[:2] == ("False", "NotAllowed")
    assert no_config_map.returncode != 0 and "NotFound" in no_config_map.stderr
    assert condition(obj, "Allowed")[:2] == ("True", "WithinPolicy")
    assert condition(obj, "Ready")[:2] == ("True", "Reconciled"), cluster.log_tail()
    assert condition(obj, "BackendReachable")[:2] == ("True", "Answered")  # the password came from the Secret
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert config_map["metadata"]["annotations"]["llmcache.dev/config-hash"] == obj["status"]["configHash"]
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert "passwordFile: /var/run/secrets/llmcache/redis-password/password" in config_map["data"]["config.yaml"]
    assert REDIS_PASSWORD not in json.dumps(config_map)
    header = table.splitlines()[0].split()
    assert header == [
        "NAME",
        "BACKEND",
        "TTL",
        "READY",
        "INJECTED",
        "HIT",
        "RATIO",
        "TOKENS",
        "SAVED",
        "USD",
        "SAVED",
        "AGE",
    ]
    assert table.splitlines()[1].split()[:5] == ["shared", "redis", "1h", "True", "0"]


def test_an_llmcache_beyond_the_operators_allowlists_is_refused_and_its_pods_start_without_it(
    cluster: Cluster,
) -> None:
    spec = {"podSelector": {"matchLabels": {"app": "billing"}}, "sidecar": {"image": "evil.example/x:1"},
            "namespace": "team-a"}  # fmt: skip
    cluster.apply(llmcache("evil", "team-b", spec))
    obj = when(cluster, "evil", "team-b", lambda o: condition(o, "Allowed"), "has an Allowed condition")
    created = cluster.kubectl("apply", "-f", "-", input=json.dumps(pod("billing", "team-b", {"app": "billing"})))
    stored = cluster.get("pod", "billing", "team-b")
    no_config_map = cluster.kubectl("get", "configmap", "llmcache-evil", "-n", "team-b")
    cluster.ok("delete", "llmc", "evil", "-n", "team-b")

    assert condition(obj, "Allowed")[:2] == ("False", "ImageNotAllowed"), cluster.log_tail()
    assert condition(obj, "Ready")[:2] == ("False", "NotAllowed")
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app"]
    assert created.returncode == 0 and "llmcache: sidecar not injected: LLMCache evil is not allowed" in created.stderr
    assert no_config_map.returncode != 0


def test_a_labelled_pod_is_stored_with_the_sidecar_and_an_unlabelled_one_untouched(cluster: Cluster) -> None:
    cluster.apply(pod("chat", "team-a", {"llmcache.dev/enabled": "true"}))
    cluster.apply(pod("plain", "team-a"))
    chat, plain = cluster.get("pod", "chat", "team-a"), cluster.get("pod", "plain", "team-a")

    assert [c["name"] for c in chat["spec"]["containers"]] == ["llmcache-sidecar", "app"], cluster.log_tail()
    assert "initContainers" not in chat["spec"]  # a 1.20 server: a regular container placed first
    assert chat["metadata"]["annotations"]["llmcache.dev/injected"] == "shared"
    sidecar, app = chat["spec"]["containers"]
    assert sidecar["lifecycle"]["postStart"]["exec"]["command"][0] == "python"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/openai/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8787/anthropic"
    volumes = {v["name"]: v for v in chat["spec"]["volumes"]}
    assert volumes["llmcache-config"]["configMap"]["name"] == "llmcache-shared"
    assert volumes["llmcache-redis-password"]["secret"]["secretName"] == "redis"
    assert [c["name"] for c in plain["spec"]["containers"]] == ["app"]
    assert "llmcache.dev/injected" not in (plain["metadata"].get("annotations") or {})


def test_the_status_counts_the_injected_pods(cluster: Cluster) -> None:
    when(cluster, "shared", "team-a", lambda o: o["status"]["injectedPods"] == 1, "1 injected pod")


def test_a_flush_edit_converges_into_the_config_map_and_the_status(cluster: Cluster) -> None:
    cluster.ok(
        "patch", "llmc", "shared", "-n", "team-a", "--type=merge", "-p", json.dumps({"spec": {"flush": "e2e-1"}})
    )
    wait_until(lambda: "flush: e2e-1" in cluster.get("configmap", "llmcache-shared", "team-a")["data"]["config.yaml"],
               "the flush value rendered", cluster)  # fmt: skip
    obj = when(cluster, "shared", "team-a", lambda o: o["status"].get("lastFlush"), "lastFlush recorded")
    assert obj["status"]["lastFlush"]["value"] == "e2e-1"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2


def test_an_unreachable_backend_and_an_invalid_spec_are_reported_in_conditions(cluster: Cluster) -> None:
    down = {"backend": {"type": "redis", "redis": {"url": f"redis://127.0.0.1:{free_port()}/0"}}}
    cluster.apply(llmcache("down", "ml", down))
    cluster.apply(llmcache("typo", "ml", {"providers": ["openai", "vllm"]}))  # the schema cannot know vllm
    down_obj, typo_obj = ready(cluster, "down", "ml"), ready(cluster, "typo", "ml")
    events = wait_until(
        lambda: [e for e in json.loads(cluster.ok("get", "events", "-n", "ml", "-o", "json"))["items"]
                 if e["reason"] == "InvalidSpec" and e["involvedObject"]["name"] == "typo"],
        "an InvalidSpec event", cluster,
    )  # fmt: skip

    assert condition(down_obj, "BackendReachable")[:2] == ("False", "Unreachable")
    assert condition(down_obj, "Ready")[:2] == ("False", "BackendUnreachable")
    status, reason, message = condition(typo_obj, "Ready")
    assert (status, reason) == ("False", "InvalidSpec")
    assert message.startswith("spec.providers[1]: 'vllm' is not built in")
    assert events[0]["type"] == "Warning" and events[0]["message"] == message


def test_a_rule_that_does_not_compile_is_refused_in_the_status_and_good_rules_reach_the_config_map(
    cluster: Cluster,
) -> None:
    """The schema cannot check CEL: the operator compiles every rule and says which one is wrong."""
    embeddings = {"when": 'endpoint == "embeddings"', "action": "cache", "ttl": "720h"}
    cluster.apply(
        llmcache("bad-rule", "ml", {"rules": [embeddings, {"when": "body.temperature = 0", "action": "bypass"}]})
    )
    cluster.apply(llmcache("good-rules", "ml", {"rules": [embeddings], "recording": "replay"}))
    bad, good = ready(cluster, "bad-rule", "ml"), ready(cluster, "good-rules", "ml")
    rendered = cluster.get("configmap", "llmcache-good-rules", "ml")["data"]["config.yaml"]

    status, reason, message = condition(bad, "Ready")
    assert (status, reason) == ("False", "InvalidSpec")
    assert message.startswith("spec.rules[1].when: at 1:18: Syntax error: token recognition error at: '= '")
    assert condition(good, "Ready")[:2] == ("True", "Reconciled"), cluster.log_tail()
    assert 'when: endpoint == "embeddings"' in rendered and "recording: replay" in rendered


def injected_pod(cluster: Cluster, prefix: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    """A fresh labelled pod, stored with the sidecar: the webhook's index follows the reconciled
    status (status.configHash) a moment after it is written, so retry with new pods until then."""
    attempts = iter(range(100))

    def stored() -> dict[str, Any] | None:
        name = f"{prefix}-{next(attempts)}"
        cluster.apply(pod(name, ns, labels))
        found: dict[str, Any] = cluster.get("pod", name, ns)
        return found if "llmcache.dev/injected" in (found["metadata"].get("annotations") or {}) else None

    found: dict[str, Any] = wait_until(stored, f"a labelled pod in {ns} stored with the sidecar", cluster)
    return found


def test_a_forced_native_sidecar_falls_back_to_a_regular_container_on_a_1_20_server(cluster: Cluster) -> None:
    spec = {"podSelector": {"matchLabels": {"app": "worker"}}, "sidecar": {"nativeSidecar": "always"}}
    cluster.apply(llmcache("native", "team-b", spec))
    ready(cluster, "native", "team-b")
    stored = injected_pod(cluster, "worker", "team-b", {"app": "worker"})
    assert "initContainers" not in stored["spec"]
    assert [c["name"] for c in stored["spec"]["containers"]] == ["llmcache-sidecar", "app"]


def test_a_pod_created_before_its_llmcache_was_reconciled_starts_without_the_sidecar_and_is_told_why(
    cluster: Cluster,
) -> None:
    """A ConfigMap of the same name that the LLMCache does not own is never written (issue 15,
    finding 6), so the first reconcile never completes: the LLMCache exists but has no
    status.configHash, and Ready says why."""
    blocker = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "llmcache-early", "namespace": "team-b"},
               "data": {"config.yaml": "{}"}, "immutable": True}  # fmt: skip
    cluster.apply(blocker)
    cluster.apply(llmcache("early", "team-b", {"podSelector": {"matchLabels": {"app": "early"}}}))
    attempts = iter(range(100))
    warning = (
        "llmcache: sidecar not injected: LLMCache early is not reconciled yet (no status.configHash),"
        " so its config may not exist"
    )

    def created_with_the_warning() -> tuple[str, str] | None:
        name = f"early-{next(attempts)}"
        created = cluster.kubectl("apply", "-f", "-", input=json.dumps(pod(name, "team-b", {"app": "early"})))
        assert created.returncode == 0, created.stderr
        return (name, created.stderr) if warning in created.stderr else None

    try:
        name, _ = wait_until(created_with_the_warning, "the API server passes the webhook's warning on", cluster)
        stored = cluster.get("pod", name, "team-b")
        status = when(cluster, "early", "team-b", lambda o: condition(o, "Ready"), "has a Ready condition")["status"]
    finally:
        cluster.ok("delete", "llmc", "early", "-n", "team-b", "--wait=false")
        cluster.ok("delete", "configmap", "llmcache-early", "-n", "team-b")

    assert [c["name"] for c in stored["spec"]["containers"]] == ["app"]  # started uncached, by construction
    assert "llmcache.dev/injected" not in (stored["metadata"].get("annotations") or {})
    assert "configHash" not in status
    assert condition({"status": status}, "Ready")[:2] == ("False", "ConfigMapConflict")


def test_deleting_the_llmcache_stops_new_injections(cluster: Cluster) -> None:
    cluster.ok("delete", "llmc", "shared", "-n", "team-a")
    attempts = iter(range(100))

    def next_pod_is_untouched() -> bool:
        name = f"after-delete-{next(attempts)}"
        cluster.apply(pod(name, "team-a", {"llmcache.dev/enabled": "true"}))
        return "llmcache.dev/injected" not in (cluster.get("pod", name, "team-a")["metadata"].get("annotations") or {})

    wait_until(next_pod_is_untouched, "a labelled pod created after the deletion is not injected", cluster)
    # A real cluster's garbage collector then deletes the ConfigMap through its ownerReference;
    # this control plane has no controller-manager, so the ConfigMap stays and only the reference is checked.
    owner = cluster.get("configmap", "llmcache-shared", "team-a")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("LLMCache", "shared", True)


def test_pods_still_start_uncached_when_the_operator_is_down(cluster: Cluster) -> None:
    stop(cluster.operator)
    started = time.monotonic()
    cluster.apply(pod("while-down", "team-b", {"app": "worker"}))  # matches LLMCache "native"
    stored = cluster.get("pod", "while-down", "team-b")
    assert "initContainers" not in stored["spec"]
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app"]
    assert time.monotonic() - started < 15  # failurePolicy Ignore: a refused connection fails fast


def post_review(url: str, ca_pem: bytes, the_pod: dict[str, Any], ns: str) -> dict[str, Any]:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e", "operation": "CREATE", "namespace": ns, "name": the_pod["metadata"]["name"],
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "e2e", "uid": "1", "groups": []},
            "object": the_pod,
        },
    }  # fmt: skip
    context = ssl.create_default_context(cadata=ca_pem.decode())
    request = urllib.request.Request(url, data=json.dumps(review).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        answer: dict[str, Any] = json.loads(response.read())["response"]
    return answer


def test_native_sidecars_are_checked_in_the_webhook_answer_because_1_20_has_none(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An operator told that the server runs native sidecars (as a 1.29+ server would say).

    The 1.20 server cannot store such a pod, so the webhook's answer is what is checked;
    applying the answer shows why the operator never does this on an old server.
    """
    stop(cluster.operator)
    worker = pod("worker-native", "team-b", {"app": "worker"})
    native = {"LLMCACHE_OPERATOR_NATIVE_SIDECARS": "true"}
    with operator_process(cluster.plane, cluster.tls, tmp_path, **native) as (_, port, _):
        url = f"https://127.0.0.1:{port}/inject-sidecar"
        answer = wait_until(
            lambda: (a := post_review(url, cluster.tls.ca_pem, worker, "team-b")).get("patch") and a,
            "the LLMCache indexed by the second operator", cluster,
        )  # fmt: skip
    ops = json.loads(base64.b64decode(answer["patch"]))
    native_pod = jsonpatch.apply_patch(worker, ops)
    sidecar = native_pod["spec"]["initContainers"][0]
    refused = cluster.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(native_pod))

    assert answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("llmcache-sidecar", "Always")
    assert "startupProbe" in sidecar
    assert [c["name"] for c in native_pod["spec"]["containers"]] == ["app"]
    assert refused.returncode != 0
    assert "must not be set for init containers" in refused.stderr

"""Transparent mode's operator side against a real kube-apiserver (1.20.2) and etcd.

Real: the API server (the CRD's schema for `mode`, `interception` and `transparent`,
Secrets, admission through our webhook over HTTPS), and the operator as
`python -m llmcache_operator`, its CA timer every second. Missing, as in
test_operator_e2e.py: kubelet, scheduler and controller-manager, so pods are stored but
never run; a deleted pod goes at once. Kubernetes 1.20 has no Pod Security admission: the
`pod-security.kubernetes.io/enforce` label is only read by the operator here, which is
what decides whether the iptables variant is injected. That pods and files work together
in a pod is tested in tests/transparent/test_netns.py, with these same pieces.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from llmcache_sidecar.intercept import certs
from tests.e2e_k8s.test_operator_e2e import (
    ROOT,
    WEBHOOK_NS_LABEL,
    Cluster,
    condition,
    llmcache,
    namespace,
    operator_process,
    pod,
    wait_until,
    webhook_configuration,
    when,
)
from tests.k8s.controlplane import ControlPlane
from tests.realparts import RedisServer, make_tls

pytestmark = pytest.mark.e2e_k8s

CIDR = "10.96.0.0/12"
EDGE = {
    "podSelector": {"matchLabels": {"egress": "llm"}},
    "mode": "transparent",
    "providers": ["openai", "anthropic"],
    "transparent": {"hosts": {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}},
}
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("transparent-e2e")
    assert control_plane.kubectl("apply", "-f", str(ROOT / "crds")).returncode == 0
    waited = control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev")
    assert waited.returncode == 0, waited.stderr
    for name, labels in (
        ("edge", WEBHOOK_NS_LABEL),
        ("open", WEBHOOK_NS_LABEL),
        ("locked", WEBHOOK_NS_LABEL | RESTRICTED),
    ):
        created = control_plane.kubectl("apply", "-f", "-", input=json.dumps(namespace(name, labels)))
        assert created.returncode == 0, created.stderr
    tls = make_tls(workdir / "tls")
    extra = {
        "LLMCACHE_OPERATOR_CA_CHECK_INTERVAL": "1",
        "LLMCACHE_OPERATOR_CLUSTER_CIDRS": CIDR,
        # A host a cluster admin allowed besides the built-in providers' (issue 15, finding 1).
        "LLMCACHE_OPERATOR_ALLOWED_HOSTS": "api.openai.com,api.anthropic.com,api.mistral.ai",
    }
    with operator_process(control_plane, tls, workdir, **extra) as (proc, port, log):
        url = f"https://127.0.0.1:{port}/inject-sidecar"
        configuration = webhook_configuration(url, tls.ca_pem)
        configuration["metadata"]["name"] = "llmcache-e2e-transparent"
        configured = control_plane.kubectl("apply", "-f", "-", input=json.dumps(configuration))
        assert configured.returncode == 0, configured.stderr
        yield Cluster(control_plane, RedisServer(0, None), tls, url, proc, log)  # no backend here
        control_plane.kubectl("delete", "mutatingwebhookconfiguration", "llmcache-e2e-transparent")


def secret_files(cluster: Cluster, name: str, ns: str) -> dict[str, bytes]:
    secret = cluster.get("secret", name, ns)
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def permitted(cert_pem: bytes) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    return {str(name.value) for name in constraints.permitted_subtrees or ()}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or []}


def test_a_transparent_llmcache_gets_its_own_name_constrained_ca_which_the_sidecar_loads(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.apply(llmcache("edge", "edge", EDGE))
    # The CA loop may write InterceptionCA before the first reconcile writes Ready: wait for both.
    obj = when(
        cluster,
        "edge",
        "edge",
        lambda o: condition(o, "InterceptionCA") and condition(o, "Ready"),
        "InterceptionCA and Ready conditions",
    )
    secret = cluster.get("secret", "llmcache-edge-ca", "edge")
    files = secret_files(cluster, "llmcache-edge-ca", "edge")
    config = cluster.get("configmap", "llmcache-edge", "edge")["data"]["config.yaml"]

    assert condition(obj, "InterceptionCA")[:2] == ("True", "Current"), cluster.log_tail()
    assert condition(obj, "Ready")[0] == "True"
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert set(files) == {"tls.crt", "tls.key", "trust.crt"}
    assert files["trust.crt"] == files["tls.crt"]
    assert permitted(files["tls.crt"]) == {"api.openai.com", "api.anthropic.com"}
    assert "enabled: true" in config and "caKeyFile: /var/run/secrets/llmcache/ca/tls.key" in config
    assert "PRIVATE KEY" not in json.dumps(cluster.get("configmap", "llmcache-edge", "edge"))
    # The contract with the sidecar: it loads this pair and signs for the listed hosts.
    (tmp_path / "tls.crt").write_bytes(files["tls.crt"])
    (tmp_path / "tls.key").write_bytes(files["tls.key"])
    certs.Authority.load(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))


def test_a_pod_gets_the_trust_bundle_and_proxy_variables_and_only_the_sidecar_gets_the_key(cluster: Cluster) -> None:
    cluster.apply(pod("crawler", "edge", {"egress": "llm"}))
    stored = cluster.get("pod", "crawler", "edge")
    init = {c["name"]: c for c in stored["spec"].get("initContainers") or []}
    containers = {c["name"]: c for c in stored["spec"]["containers"]}
    volumes = {v["name"]: v for v in stored["spec"]["volumes"]}

    assert list(init) == ["llmcache-trust"], cluster.log_tail()
    assert list(containers) == ["llmcache-sidecar", "app"]  # 1.20: a regular container placed first
    mounts = {name: {m["name"] for m in c.get("volumeMounts") or []} for name, c in {**init, **containers}.items()}
    assert mounts["llmcache-sidecar"] >= {"llmcache-ca"}
    assert mounts["llmcache-trust"] == {"llmcache-ca-trust", "llmcache-trust"}
    assert mounts["app"] == {"llmcache-trust"}
    assert volumes["llmcache-ca"]["secret"]["items"] == [
        {"key": "tls.crt", "path": "tls.crt"},
        {"key": "tls.key", "path": "tls.key"},
    ]
    assert volumes["llmcache-ca-trust"]["secret"]["items"] == [{"key": "trust.crt", "path": "trust.crt"}]
    env = env_of(containers["app"])
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://127.0.0.1:8787"
    assert env["NO_PROXY"].endswith(f",$(KUBERNETES_SERVICE_HOST),{CIDR}")
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == "/etc/llmcache/trust/ca-bundle.crt"
    assert env["NODE_EXTRA_CA_CERTS"] == "/etc/llmcache/trust/ca.crt"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/openai/v1"  # SDK apps keep base-URL mode
    assert "HTTPS_PROXY" not in env_of(containers["llmcache-sidecar"])
    added = json.loads(stored["metadata"]["annotations"]["llmcache.dev/added-env"])
    assert "HTTPS_PROXY" in added["app"] and "SSL_CERT_FILE" in added["app"]


def test_a_new_host_brings_a_staged_ca_that_signs_once_the_older_pods_are_replaced(cluster: Cluster) -> None:
    before = secret_files(cluster, "llmcache-edge-ca", "edge")
    # A finished pod (a Job's, kept for its logs) runs no app: it does not hold the rotation back.
    cluster.apply(pod("finished", "edge", {"egress": "llm"}))
    cluster.ok("patch", "pod", "finished", "-n", "edge", "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": {"phase": "Succeeded"}}))  # fmt: skip
    hosts = {**EDGE["transparent"]["hosts"], "api.mistral.ai": "openai"}
    cluster.ok("patch", "llmc", "edge", "-n", "edge", "--type=merge",
               "-p", json.dumps({"spec": {"transparent": {"hosts": hosts}}}))  # fmt: skip
    obj = when(
        cluster, "edge", "edge",
        lambda o: (condition(o, "InterceptionCA") or ("",))[0] == "False", "a rotation pending",
    )  # fmt: skip
    staged = secret_files(cluster, "llmcache-edge-ca", "edge")
    config = cluster.get("configmap", "llmcache-edge", "edge")["data"]["config.yaml"]

    _, reason, message = condition(obj, "InterceptionCA")
    assert reason == "RotationPending" and message.startswith("1 pod(s)"), message
    assert staged["tls.crt"] == before["tls.crt"]  # the sidecars keep signing with the trusted CA
    assert staged["trust.crt"] == before["tls.crt"] + staged["next.crt"]  # new pods trust both
    assert "api.mistral.ai" in permitted(staged["next.crt"])
    assert "api.mistral.ai" not in config  # tunnelled, uncached, until the switch

    cluster.ok("delete", "pod", "crawler", "-n", "edge")  # the pod that trusts only the old CA
    when(cluster, "edge", "edge", lambda o: condition(o, "InterceptionCA")[0] == "True", "the switch")
    switched = secret_files(cluster, "llmcache-edge-ca", "edge")
    assert switched["tls.crt"] == staged["next.crt"] and switched["trust.crt"] == staged["next.crt"]
    assert "next.crt" not in switched
    wait_until(
        lambda: "api.mistral.ai" in cluster.get("configmap", "llmcache-edge", "edge")["data"]["config.yaml"],
        "the new host intercepted",
        cluster,
    )


@pytest.mark.parametrize(("ns", "allowed"), [("open", True), ("locked", False)])
def test_the_iptables_variant_is_injected_only_where_pod_security_allows_it(
    cluster: Cluster, ns: str, allowed: bool
) -> None:
    cluster.apply(llmcache("redirect", ns, {**EDGE, "interception": "iptables"}))
    obj = when(cluster, "redirect", ns, lambda o: condition(o, "InterceptionAllowed"), "InterceptionAllowed")
    assert condition(obj, "InterceptionAllowed")[:2] == (
        ("True", "Allowed") if allowed else ("False", "ForbiddenByPodSecurity")
    )
    names = itertools.count()

    def stored_pod() -> dict[str, Any] | None:
        name = f"legacy-{next(names)}"
        cluster.apply(pod(name, ns, {"egress": "llm"}))
        stored: dict[str, Any] = cluster.get("pod", name, ns)
        found = [c["name"] for c in stored["spec"].get("initContainers") or []]
        # The webhook's index follows the status a moment later: retry until it has.
        return stored if ("llmcache-redirect" in found) == allowed else None

    stored = wait_until(stored_pod, "the webhook following InterceptionAllowed", cluster)
    found = {c["name"]: c for c in stored["spec"]["initContainers"]}
    assert list(found) == (["llmcache-trust", "llmcache-redirect"] if allowed else ["llmcache-trust"])
    if allowed:
        redirect = found["llmcache-redirect"]
        assert redirect["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
        assert redirect["image"].startswith("ghcr.io/llmcache/llmcache-redirect:")
        script = redirect["command"][-1]
        assert "--uid-owner 65531 -j RETURN" in script and f"-d {CIDR} -j RETURN" in script
        (sidecar,) = [c for c in stored["spec"]["containers"] if c["name"] == "llmcache-sidecar"]
        assert sidecar["securityContext"]["runAsUser"] == 65531  # the UID the rule exempts


def test_a_secret_of_the_ca_name_that_the_llmcache_does_not_own_is_left_alone_and_reported(cluster: Cluster) -> None:
    theirs = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "llmcache-mine-ca", "namespace": "edge"},
              "stringData": {"note": "someone else's"}}  # fmt: skip
    cluster.apply(theirs)
    cluster.apply(llmcache("mine", "edge", EDGE))
    obj = when(cluster, "mine", "edge", lambda o: condition(o, "InterceptionCA"), "an InterceptionCA condition")
    status, reason, message = condition(obj, "InterceptionCA")
    assert (status, reason) == ("False", "SecretConflict")
    assert "is not owned by this LLMCache" in message
    assert secret_files(cluster, "llmcache-mine-ca", "edge") == {"note": b"someone else's"}
    assert "hosts: {}" in cluster.get("configmap", "llmcache-mine", "edge")["data"]["config.yaml"]

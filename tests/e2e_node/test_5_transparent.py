"""5. Transparent mode, both variants: an app calling https://api.openai.com gets hits; a host that is
not listed is tunnelled untouched (the app sees that origin's own certificate)."""

from __future__ import annotations

import pytest

from tests.e2e_node.conftest import Release, app_deployment, ask, container_names, path_of, rolled_out
from tests.node.kube import Kube, eventually
from tests.node.origins import ORIGIN_BODY, ORIGIN_HOST, Origins

ORIGIN_SCRIPT = """
import http.client, json, os, ssl, sys, urllib.parse
context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
if sys.argv[1] == "proxy":
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    conn = http.client.HTTPSConnection(proxy.hostname, proxy.port, context=context, timeout=30)
    conn.set_tunnel(sys.argv[2], 443)
else:
    conn = http.client.HTTPSConnection(sys.argv[2], 443, context=context, timeout=30)
conn.request("GET", "/")
body = conn.getresponse().read().decode()
issuer = dict(part[0] for part in conn.sock.getpeercert()["issuer"])["commonName"]
print(json.dumps({"body": body, "issuer": issuer}))
"""


def transparent_cache(namespace: str, interception: str) -> dict[str, object]:
    return {
        "apiVersion": "llmcache.dev/v1alpha1",
        "kind": "LLMCache",
        "metadata": {"name": "transparent", "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {"llmcache.dev/enabled": "true"}},
            "mode": "transparent",
            "interception": interception,
            "providers": ["openai"],
        },
    }


@pytest.fixture(scope="module", params=["proxy", "iptables"])
def variant(request: pytest.FixtureRequest, release: Release, kube: Kube) -> tuple[str, str, str]:
    """(interception, namespace, app pod) with a reconciled transparent LLMCache."""
    interception = request.param
    namespace = f"e2e-transparent-{interception}"
    kube.kubectl("create", "namespace", namespace)
    kube.apply(transparent_cache(namespace, interception))

    def settled() -> bool:
        status = kube.get("llmcache", "transparent", namespace).get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        wanted = ["Ready", "InterceptionCA"] + (["InterceptionAllowed"] if interception == "iptables" else [])
        return bool(status.get("configHash")) and all(conditions.get(c) == "True" for c in wanted)

    eventually(settled, f"the {interception} LLMCache reconciled", timeout=120)
    kube.apply(app_deployment("app", namespace, release.built.app))
    (pod,) = rolled_out(kube, namespace, "app")
    return interception, namespace, path_of(pod)


def test_an_app_calling_the_providers_url_gets_hits(variant: tuple[str, str, str], kube: Kube, fake: Origins) -> None:
    interception, namespace, pod = variant
    mode = "proxy" if interception == "proxy" else "direct"  # direct: the proxy variables are ignored
    calls = fake.provider.count("/chat/completions")
    first = ask(kube, namespace, pod, f"transparent {interception}", mode)
    second = ask(kube, namespace, pod, f"transparent {interception}", mode)
    assert first.base_url == "https://api.openai.com/v1/"
    assert (first.status, second.status) == (200, 200)
    assert first.cache == "llmcache; fwd=miss; stored"
    assert second.cache == "llmcache; hit"
    assert fake.provider.count("/chat/completions") == calls + 1
    names = container_names(kube.get("pod", pod, namespace))
    assert ("llmcache-redirect" in names) == (interception == "iptables")


def test_a_host_that_is_not_listed_is_tunnelled_with_its_own_certificate(
    variant: tuple[str, str, str], kube: Kube
) -> None:
    interception, namespace, pod = variant
    mode = "proxy" if interception == "proxy" else "direct"
    seen = kube.exec_python(namespace, pod, ORIGIN_SCRIPT, mode, ORIGIN_HOST)
    assert seen == {"body": ORIGIN_BODY, "issuer": "llmcache e2e provider CA"}  # the origin's CA, not the cache's

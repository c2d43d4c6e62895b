"""3. An unmodified app gets the sidecar, runs with 0 restarts, and its second identical call is a hit.

Also what users do next with such a pod: `kubectl logs` and `kubectl exec` without `-c` open
the app, from the kubectl version the docs name.
"""

from __future__ import annotations

import pytest

from tests.e2e_node.conftest import APP_NS, Release, app_deployment, ask, container_names, path_of, restarts, rolled_out
from tests.node.kube import Kube
from tests.node.layout import Layout
from tests.node.origins import Origins

APP = "chat"


@pytest.fixture(scope="module")
def app_pod(release: Release, kube: Kube) -> str:
    kube.apply(app_deployment(APP, APP_NS, release.built.app))
    (pod,) = rolled_out(kube, APP_NS, APP)
    return path_of(pod)


def test_the_app_pod_starts_with_the_sidecar_injected_and_nothing_restarts(app_pod: str, kube: Kube) -> None:
    pod = kube.get("pod", app_pod, APP_NS)
    assert container_names(pod) == ["llmcache-sidecar", "app"]  # 1.20: a regular container, placed first
    assert all(c["ready"] and "running" in c["state"] for c in pod["status"]["containerStatuses"])
    assert restarts(pod) == 0
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][1]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/openai/v1"


def test_the_second_identical_call_is_a_hit_and_the_provider_saw_one(app_pod: str, kube: Kube, fake: Origins) -> None:
    calls = fake.provider.count("/chat/completions")
    first = ask(kube, APP_NS, app_pod, "Name three prime numbers.")
    second = ask(kube, APP_NS, app_pod, "Name three prime numbers.")
    assert first.status == second.status == 200
    assert first.cache == "llmcache; fwd=miss; stored"
    assert second.cache == "llmcache; hit"
    assert second.id == first.id
    assert fake.provider.count("/chat/completions") == calls + 1


def test_kubectl_logs_and_exec_default_to_the_app_container(app_pod: str, kube: Kube, layout: Layout) -> None:
    """kubectl 1.21 and later read kubectl.kubernetes.io/default-container; 1.20 does not."""
    probe = ["python", "-c", "import openai; print('in-app')"]  # the sidecar's image has no openai
    assert kube.kubectl("exec", "-n", APP_NS, f"deploy/{APP}", "--", *probe).strip() == "in-app"
    kube.kubectl("logs", "-n", APP_NS, f"deploy/{APP}")  # no "a container name must be specified"
    old = layout.binary("kubectl")  # 1.20.2, built with the node
    result = kube.run(old, "logs", "-n", APP_NS, app_pod)
    assert result.returncode != 0 and "a container name must be specified" in result.stderr

"""examples/quickstart builds with `kubectl kustomize` (the pinned kubectl) into valid, wired objects."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import KUBE_VERSIONS, ROOT, Obj, by_kind, one, validation_errors

QUICKSTART = ROOT / "examples" / "quickstart"
NAMESPACE = "llmcache-quickstart"


@pytest.fixture(scope="module")
def objects(kubectl: Path) -> list[Obj]:
    result = subprocess.run(
        [str(kubectl), "kustomize", str(QUICKSTART)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_quickstart_has_redis_an_llmcache_and_an_app(objects: list[Obj]) -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert kinds == ["Deployment/chat", "LLMCache/quickstart", "Namespace/llmcache-quickstart",
                     "Secret/redis", "Service/redis", "StatefulSet/redis"]  # fmt: skip
    assert {o["metadata"].get("namespace", NAMESPACE) for o in objects} == {NAMESPACE}


def test_every_quickstart_object_is_valid_for_kubernetes_1_28_to_1_35_and_the_crd(objects: list[Obj]) -> None:
    errors = [f"{v} {o['kind']}: {e}" for v in KUBE_VERSIONS for o in objects for e in validation_errors(o, v)]
    assert not errors, "\n".join(errors)


def test_the_app_is_selected_by_the_llmcache_and_redis_is_wired_to_it(objects: list[Obj]) -> None:
    cache = one(objects, "LLMCache")["spec"]
    app_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    secret = one(objects, "Secret")
    service = one(objects, "Service")

    assert cache["podSelector"]["matchLabels"].items() <= app_labels.items()
    assert "app.kubernetes.io/part-of" not in app_labels or app_labels["app.kubernetes.io/part-of"] != "llmcache"
    assert cache["backend"]["redis"]["url"] == f"redis://{service['metadata']['name']}.{NAMESPACE}.svc:6379/0"
    ref = cache["backend"]["redis"]["passwordSecretRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["data"]
    assert secret["metadata"]["labels"]["llmcache.dev/usable"] == "true"  # else the operator refuses the LLMCache
    password = base64.b64decode(secret["data"]["password"]).decode()
    conf = base64.b64decode(secret["data"]["redis.conf"]).decode()
    assert f"requirepass {password}\n" in conf


def test_every_quickstart_container_is_non_root_read_only_and_without_capabilities(objects: list[Obj]) -> None:
    for workload in by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}

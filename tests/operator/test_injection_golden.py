"""Pod in, pod out: each `tests/testdata/inject/<case>.yaml` against `<case>.yaml.patched`.

The patched pod is the original with the JSON Patch applied (the patch kopf would send),
and it must validate against the Kubernetes 1.30 schema, strictly. Regenerate the
expected files with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llmcache_operator import injection, patching
from llmcache_operator.injection import Policy
from tests.operator.caches import ALLOWLIST, all_caches

GOLDEN = Path(__file__).parents[1] / "testdata" / "inject"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
OLD_SERVER = Policy(native_sidecars=False, allowlist=ALLOWLIST)
NEW_SERVER = Policy(native_sidecars=True, allowlist=ALLOWLIST)
CLUSTER = Policy(
    native_sidecars=True, cluster_cidrs=("10.96.0.0/12", "10.244.0.0/16", "fd00:10:96::/112"), allowlist=ALLOWLIST
)

# case -> (policy, the LLMCache expected to be injected, or None)
CASES: dict[str, tuple[Policy, str | None]] = {
    "selector-match": (OLD_SERVER, "shared"),
    "selector-mismatch": (OLD_SERVER, None),
    "annotation-opt-in": (OLD_SERVER, "shared"),
    "annotation-true": (OLD_SERVER, "shared"),
    "annotation-opt-out": (OLD_SERVER, None),
    "unknown-cache-annotation": (OLD_SERVER, None),
    "already-injected": (OLD_SERVER, None),
    "native-sidecar": (NEW_SERVER, "shared"),
    "old-server-regular-container": (OLD_SERVER, "shared"),
    "own-base-url": (OLD_SERVER, "shared"),
    "several-app-containers": (OLD_SERVER, "shared"),
    "host-network": (OLD_SERVER, None),
    "kube-system": (OLD_SERVER, None),
    "port-clash": (OLD_SERVER, None),
    "llmcache-own-pod": (OLD_SERVER, None),
    "custom-providers": (NEW_SERVER, "models"),
    "disk-backend": (OLD_SERVER, "scratch"),
    "transparent-proxy": (OLD_SERVER, "edge"),
    "transparent-native": (CLUSTER, "edge"),
    "transparent-own-trust": (CLUSTER, "edge"),
    "transparent-iptables": (CLUSTER, "redirect"),
}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def patched_pod(pod: dict[str, Any], policy: Policy) -> tuple[str | None, dict[str, Any]]:
    namespace = pod["metadata"]["namespace"]
    decision = injection.inject_required(pod, namespace, all_caches(), policy)
    desired = injection.desired_pod(pod, decision.cache, policy) if decision.cache else pod
    ops = patching.json_patch(pod, desired)
    result = patching.apply(pod, ops)
    assert result == desired, "the JSON Patch must turn the pod into exactly the desired pod"
    return (decision.cache.name if decision.cache else None), result


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_patched_pod_matches_its_golden_file(case: str) -> None:
    policy, expected_cache = CASES[case]
    pod = load(GOLDEN / f"{case}.yaml")
    injected, result = patched_pod(pod, policy)
    assert injected == expected_cache
    expected_file = GOLDEN / f"{case}.yaml.patched"
    if UPDATE:
        expected_file.write_text(yaml.safe_dump(result, sort_keys=False, width=120), encoding="utf-8")
    assert result == load(expected_file)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_patched_pod_is_a_valid_kubernetes_1_30_pod(case: str) -> None:
    result = load(GOLDEN / f"{case}.yaml.patched")
    kubernetes_validate.validate(result, "1.30.0", strict=True)


@pytest.mark.parametrize("case", sorted(c for c, (_, cache) in CASES.items() if cache))
def test_injecting_an_injected_pod_again_changes_nothing(case: str) -> None:
    policy, _ = CASES[case]
    once = load(GOLDEN / f"{case}.yaml.patched")
    injected, twice = patched_pod(once, policy)
    assert injected is None
    assert twice == once


def test_every_golden_file_has_a_table_entry_and_an_expected_result() -> None:
    inputs = {p.name.removesuffix(".yaml") for p in GOLDEN.glob("*.yaml")}
    assert inputs == set(CASES)
    for case in CASES:
        assert (GOLDEN / f"{case}.yaml.patched").is_file(), case

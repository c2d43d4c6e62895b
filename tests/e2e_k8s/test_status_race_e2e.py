"""The CA loop and reconcile write the same `status.conditions`: neither drops the other's, on a real server.

Seen flaking CI under load: the loop listed an LLMCache before its first reconcile, reconcile
then wrote Ready, and the loop's merge patch (the whole list, computed from what it had
listed) replaced it, so the LLMCache waited for its next reconcile without Ready. Here the
race is made to happen every time: the loop's `list_llmcaches` returns its list only after
a reconcile-like write of Ready has landed (a status patch through kubectl, as kopf's
would). The API server then refuses the loop's stale write (409, the resourceVersion it
carries), the loop reads the LLMCache again, and both conditions are there.

Real: kube-apiserver 1.20.2 and etcd, the operator's own Api client, CA Secret and
ConfigMap writes. No operator process runs: the loop is called directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmcache_operator import ca_checks, injection, k8s
from llmcache_operator.memo import Shared
from llmcache_operator.options import Options
from tests.k8s.controlplane import ControlPlane

pytestmark = pytest.mark.e2e_k8s

ROOT = Path(__file__).parents[2]
NS = "race"
EDGE = {"mode": "transparent", "providers": ["openai"], "transparent": {"hosts": {"api.openai.com": "openai"}}}
T0 = "2026-11-28T10:00:00Z"


def ok(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    result = plane.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def conditions(plane: ControlPlane) -> dict[str, str]:
    obj = json.loads(ok(plane, "get", "llmc", "edge", "-n", NS, "-o", "json"))
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


def condition(kind: str, generation: int) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": "R", "message": "m", "lastTransitionTime": T0,
            "observedGeneration": generation}  # fmt: skip


def patch_status(plane: ControlPlane, status: dict[str, Any]) -> None:
    ok(plane, "patch", "llmc", "edge", "-n", NS, "--subresource=status", "--type=merge",
       "-p", json.dumps({"status": status}))  # fmt: skip


class RacingApi(k8s.Api):
    """The operator's Api, whose list answers what it read before a concurrent status write landed."""

    def __init__(self, plane: ControlPlane) -> None:
        base = k8s.Api.for_server(plane.server, token=plane.token, verify_ssl=False)
        super().__init__(base._client)
        self.plane = plane

    async def list_llmcaches(self, namespaces: Any = ()) -> list[dict[str, Any]]:
        listed = await super().list_llmcaches(namespaces)
        # Reconcile writes Ready (and, as it always does, Allowed) after the loop has listed.
        patch_status(
            self.plane, {"conditions": [condition("Allowed", 1), condition("Ready", 1)], "observedGeneration": 1}
        )
        return [o for o in listed if o["metadata"]["namespace"] == NS]


async def test_a_ready_written_by_reconcile_between_the_loops_list_and_write_is_kept(
    control_plane: ControlPlane,
) -> None:
    plane = control_plane
    ok(plane, "apply", "-f", str(ROOT / "crds"))
    ok(plane, "wait", "--for=condition=Established", "--timeout=30s", "crd/llmcaches.llmcache.dev")
    ok(plane, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
    ok(plane, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache", "metadata": {"name": "edge", "namespace": NS},
         "spec": EDGE}))  # fmt: skip
    # As after the operator first checked it: allowed for generation 1, not reconciled further yet.
    patch_status(plane, {"conditions": [condition("Allowed", 1)], "observedGeneration": 1})
    api = RacingApi(plane)
    options = Options(webhook=None)
    rt = Shared(api=api, options=options, policy=injection.Policy())
    try:
        await ca_checks.check_transparent_caches(rt)
    finally:
        await api.aclose()

    found = conditions(plane)
    assert found.get("Ready") == "True", found  # the loop's stale write would have dropped it
    assert found.get("InterceptionCA") == "True", found
    assert (
        json.loads(ok(plane, "get", "secret", "llmcache-edge-ca", "-n", NS, "-o", "json"))["type"]
        == "kubernetes.io/tls"
    )

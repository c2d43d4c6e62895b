"""Spec in, ConfigMap and status out: the reconcile functions, without kopf or a cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmcache_operator import reconcile, spec
from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError
from tests.operator.caches import SHARED, cache

GOLDEN = Path(__file__).parents[1] / "testdata" / "reconcile"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CASES = sorted(p.name.removesuffix(".spec.yaml") for p in GOLDEN.glob("*.spec.yaml"))
T0, T1 = "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z"


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as | blocks, so that golden ConfigMaps read like files."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def rendered(case: str) -> tuple[spec.Cache, reconcile.Rendered]:
    raw = yaml.safe_load((GOLDEN / f"{case}.spec.yaml").read_text(encoding="utf-8"))
    the_cache = spec.parse(raw, name=case, namespace="team-a")
    return the_cache, reconcile.render(the_cache, uid=f"uid-{case}")


@pytest.mark.parametrize("case", CASES)
def test_the_config_map_matches_its_golden_file(case: str) -> None:
    _, result = rendered(case)
    expected = GOLDEN / f"{case}.configmap.yaml"
    if UPDATE:
        expected.write_text(yaml.dump(result.config_map, Dumper=_BlockDumper, sort_keys=False), encoding="utf-8")
    assert result.config_map == yaml.safe_load(expected.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES)
def test_the_sidecar_reads_exactly_the_settings_the_operator_checked(case: str, tmp_path: Path) -> None:
    the_cache, result = rendered(case)
    file = tmp_path / reconcile.CONFIG_FILE
    file.write_text(result.config_map["data"][reconcile.CONFIG_FILE], encoding="utf-8")
    assert config.load(file, env={}) == the_cache.settings


def test_the_config_map_is_owned_by_its_llmcache_so_it_goes_with_it() -> None:
    _, result = rendered("memory-default")
    (owner,) = result.config_map["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "llmcache.dev/v1alpha1",
        "kind": "LLMCache",
        "name": "memory-default",
        "uid": "uid-memory-default",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_a_secret_value_never_reaches_the_config_map() -> None:
    _, result = rendered("redis-with-secret")
    text = result.config_map["data"][reconcile.CONFIG_FILE]
    assert "passwordFile: /var/run/secrets/llmcache/redis-password/password" in text
    assert "passwordSecretRef" not in text


def test_the_hash_changes_with_the_config_and_only_with_it() -> None:
    a = reconcile.render(cache(SHARED, "shared", "team-a"), uid="1").config_hash
    b = reconcile.render(cache(dict(reversed(list(SHARED.items()))), "shared", "team-a"), uid="2").config_hash
    c = reconcile.render(cache({**SHARED, "ttl": "2h"}, "shared", "team-a"), uid="1").config_hash
    d = reconcile.render(cache({**SHARED, "flush": "now"}, "shared", "team-a"), uid="1").config_hash
    assert a == b
    assert len({a, c, d}) == 3


def test_a_new_setting_appears_in_the_file_only_when_it_is_used() -> None:
    # Running sidecars may be older than the operator and hot-reload this file.
    _, result = rendered("memory-default")
    assert yaml.safe_load(result.text).keys() == {"namespace", "providers"}


def status(previous: dict[str, Any] | None, problem: str | None, now: str, **changes: Any) -> dict[str, Any]:
    the_cache = cache({**SHARED, **changes}, "shared", "team-a")
    return reconcile.status_after_reconcile(
        previous,
        cache=the_cache,
        rendered=reconcile.render(the_cache, uid="u"),
        backend=reconcile.BackendCheck(problem is None, problem or "The redis backend answered."),
        generation=3,
        injected_pods=2,
        now=now,
    )


def conditions(result: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["lastTransitionTime"]) for c in result["conditions"]}


def test_a_reachable_backend_makes_the_cache_ready() -> None:
    result = status(None, None, T0)
    assert conditions(result) == {
        "Ready": ("True", "Reconciled", T0),
        "Allowed": ("True", "WithinPolicy", T0),
        "BackendReachable": ("True", "Answered", T0),
    }
    assert result["observedGeneration"] == 3
    assert result["configMap"] == "llmcache-shared"
    assert result["injectedPods"] == 2
    assert len(result["configHash"]) == 16
    assert all(c["observedGeneration"] == 3 for c in result["conditions"])


def test_an_unreachable_backend_makes_the_cache_not_ready_and_says_why() -> None:
    result = status(None, "Error 111 connecting to redis:6379. Connection refused.", T0)
    assert conditions(result) == {
        "Ready": ("False", "BackendUnreachable", T0),
        "Allowed": ("True", "WithinPolicy", T0),
        "BackendReachable": ("False", "Unreachable", T0),
    }
    ready = next(c for c in result["conditions"] if c["type"] == "Ready")
    assert "Connection refused" in ready["message"]
    assert "uncached" in ready["message"]


def test_a_backend_the_operator_cannot_check_leaves_the_cache_ready_and_says_so() -> None:
    the_cache = cache(SHARED, "shared", "team-a")
    result = reconcile.status_after_reconcile(
        None, cache=the_cache, rendered=reconcile.render(the_cache, uid="u"),
        backend=reconcile.BackendCheck(None, "The operator cannot check the s3 backend: no boto"),
        generation=1, injected_pods=0, now=T0,
    )  # fmt: skip
    assert conditions(result) == {
        "Ready": ("True", "Reconciled", T0),
        "Allowed": ("True", "WithinPolicy", T0),
        "BackendReachable": ("Unknown", "NotChecked", T0),
    }


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    first = status(None, None, T0)
    again = status(first, None, T1)
    broken = status(again, "down", T1)
    assert conditions(again)["Ready"] == ("True", "Reconciled", T0)
    assert conditions(broken)["Ready"] == ("False", "BackendUnreachable", T1)


def test_an_invalid_spec_sets_ready_false_naming_the_field_and_keeps_the_rest() -> None:
    previous = status(None, None, T0)
    result = reconcile.status_after_invalid(
        previous, error=ConfigError("spec.backend.type", "must be one of memory, redis, dual"), generation=4, now=T1
    )
    assert set(result) == {"conditions", "observedGeneration"}  # configHash and configMap stay as they were
    ready = next(c for c in result["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == "spec.backend.type: must be one of memory, redis, dual"
    assert conditions(result)["BackendReachable"] == ("True", "Answered", T0)


def test_an_invalid_first_spec_leaves_the_backend_unknown() -> None:
    result = reconcile.status_after_invalid(None, error=ConfigError("spec.ttl", "bad"), generation=1, now=T0)
    assert conditions(result)["BackendReachable"] == ("Unknown", "NotChecked", T0)


def test_a_new_flush_value_is_recorded_once_with_its_time() -> None:
    first = status(None, None, T0, flush="a")
    same = status(first, None, T1, flush="a")
    other = status(same, None, T1, flush="b")
    assert first["lastFlush"] == {"value": "a", "time": T0}
    assert same["lastFlush"] == {"value": "a", "time": T0}
    assert other["lastFlush"] == {"value": "b", "time": T1}
    assert "lastFlush" not in status(None, None, T0)


def test_the_injected_pod_count_is_written_only_when_it_moves() -> None:
    assert reconcile.injected_pods_patch({"injectedPods": 2}, 2) == {}
    assert reconcile.injected_pods_patch({"injectedPods": 2}, 3) == {"injectedPods": 3}
    assert reconcile.injected_pods_patch(None, 0) == {"injectedPods": 0}


def test_an_unreadable_stored_status_counts_as_never_written() -> None:
    assert reconcile.read_status({"conditions": "garbage", "kopf": {"x": 1}}) == spec.Status()


def allowed(state: str, generation: int) -> dict[str, Any]:
    return {"type": "Allowed", "status": state, "reason": "R", "message": "why", "observedGeneration": generation}


@pytest.mark.parametrize(
    ("status", "uses_secrets", "refused"),
    [
        (None, False, None),  # never reconciled and nothing to check: configHash decides
        (None, True, None),  # never reconciled: "not reconciled yet" says it
        ({"configHash": "h", "conditions": [allowed("True", 2)]}, True, None),
        ({"configHash": "h", "conditions": [allowed("True", 1)]}, False, None),  # an edit without Secrets
        (
            {"configHash": "h", "conditions": [allowed("True", 1)]},
            True,
            "the operator has not checked the Secrets that generation 2 references yet",
        ),
        (
            {"configHash": "h", "conditions": []},
            True,
            "the operator has not checked the Secrets that generation 2 references yet",
        ),  # from before the label rule
        ({"configHash": "h", "conditions": [allowed("False", 2)]}, False, "it is not allowed: why"),
        ({"conditions": [allowed("False", 2)]}, True, "it is not allowed: why"),
        ({"configHash": "h", "conditions": [allowed("False", 1)]}, False, None),  # an older generation's refusal
    ],
)
def test_the_webhook_follows_the_allowed_condition_of_the_current_generation(
    status: dict[str, Any] | None, uses_secrets: bool, refused: str | None
) -> None:
    assert reconcile.refused_by_status(status, 2, uses_secrets=uses_secrets) == refused

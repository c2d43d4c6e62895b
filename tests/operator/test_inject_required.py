"""Which pods get which sidecar: the decision table, label selectors, base URLs, server versions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmcache_operator import injection, reconcile
from llmcache_operator.injection import Policy
from llmcache_operator.options import Options
from llmcache_operator.spec import LabelSelector, LabelSelectorRequirement
from llmcache_sidecar import config
from tests.operator.caches import ALLOWLIST, MODELS, SHARED, all_caches, cache


def pod(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


MATCH = {"llmcache.dev/enabled": "true"}


@pytest.mark.parametrize(
    ("the_pod", "namespace", "injected", "reason"),
    [
        (pod(MATCH), "team-a", "shared", "labels match the podSelector of shared"),
        (pod({"llmcache.dev/enabled": "no"}), "team-a", None, "no podSelector matches"),
        (pod(annotations={"llmcache.dev/inject": "zz-memory"}), "team-a", "zz-memory", "llmcache.dev/inject=zz-memory"),
        (pod(MATCH, {"llmcache.dev/inject": "zz-memory"}), "team-a", "zz-memory", "llmcache.dev/inject=zz-memory"),
        (pod(annotations={"llmcache.dev/inject": "True"}), "team-a", "shared", "llmcache.dev/inject=true"),
        (pod(MATCH, {"llmcache.dev/inject": "false"}), "team-a", None, "opted out by llmcache.dev/inject"),
        (pod(MATCH, {"llmcache.dev/injected": "shared"}), "team-a", None, "already injected"),
        (pod(MATCH), "nowhere", None, "no LLMCache in namespace nowhere"),
        (pod(MATCH), "kube-system", None, "namespace kube-system is excluded"),
        (pod(MATCH, hostNetwork=True), "team-a", None, "hostNetwork pods share the node's loopback"),
        (pod({**MATCH, "app.kubernetes.io/part-of": "llmcache"}), "team-a", None, "llmcache's own pod"),
        (pod({"app": "search"}), "ml", "models", "labels match the podSelector of models"),
    ],
)
def test_the_decision_names_the_cache_and_says_why(
    the_pod: dict[str, Any], namespace: str, injected: str | None, reason: str
) -> None:
    decision = injection.inject_required(the_pod, namespace, all_caches(), Policy(allowlist=ALLOWLIST))
    assert (decision.cache.name if decision.cache else None, decision.reason) == (injected, reason)


def test_a_pod_that_already_runs_a_container_named_like_the_sidecar_is_not_injected() -> None:
    the_pod = pod(MATCH, initContainers=[{"name": "llmcache-sidecar", "image": "x"}])
    assert injection.inject_required(the_pod, "team-a", all_caches(), Policy()).cache is None


def test_a_declared_port_that_is_the_sidecars_blocks_injection() -> None:
    the_pod = pod(MATCH)
    the_pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8788}]
    decision = injection.inject_required(the_pod, "team-a", all_caches(), Policy())
    assert decision.cache is None
    assert decision.reason == "port 8788 of container app is the sidecar's"


@pytest.mark.parametrize(
    "annotations",
    [{}, {"llmcache.dev/inject": "shared"}, {"llmcache.dev/inject": "true"}],
    ids=["selector", "name", "true"],
)
def test_a_cache_that_was_not_reconciled_yet_leaves_the_pod_alone_and_says_so(annotations: dict[str, str]) -> None:
    caches = [dataclasses.replace(c, reconciled=False) if c.name == "shared" else c for c in all_caches()]
    decision = injection.inject_required(pod(MATCH, annotations), "team-a", caches, Policy())
    assert decision.cache is None
    assert decision.notable
    assert decision.reason == (
        "LLMCache shared is not reconciled yet (no status.configHash), so its config may not exist"
    )


def test_the_operator_namespace_can_be_excluded_too() -> None:
    policy = Policy(excluded_namespaces=frozenset({"kube-system", "team-a"}))
    assert injection.inject_required(pod(MATCH), "team-a", all_caches(), policy).cache is None


def req(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, {"a": "1"}, False),
        (LabelSelector(), {}, True),
        (LabelSelector(), {"a": "1"}, True),
        (LabelSelector(match_labels={"a": "1"}), {"a": "1", "b": "2"}, True),
        (LabelSelector(match_labels={"a": "1"}), {"a": "2"}, False),
        (LabelSelector(match_expressions=(req("a", "In", "1", "2"),)), {"a": "2"}, True),
        (LabelSelector(match_expressions=(req("a", "In", "1"),)), {}, False),
        (LabelSelector(match_expressions=(req("a", "NotIn", "1"),)), {}, True),
        (LabelSelector(match_expressions=(req("a", "NotIn", "1"),)), {"a": "1"}, False),
        (LabelSelector(match_expressions=(req("a", "Exists"),)), {"a": ""}, True),
        (LabelSelector(match_expressions=(req("a", "DoesNotExist"),)), {"a": ""}, False),
        (LabelSelector(match_labels={"a": "1"}, match_expressions=(req("b", "Exists"),)), {"a": "1"}, False),
    ],
)
def test_label_selectors_follow_kubernetes_semantics(
    selector: LabelSelector | None, labels: dict[str, str], matches: bool
) -> None:
    assert injection.selector_matches(selector, labels) is matches


def test_each_sdk_gets_its_base_url_variable() -> None:
    env = dict(injection.base_url_env(cache(SHARED, "shared", "team-a")))
    assert env == {
        "LLMCACHE_URL": "http://127.0.0.1:8787",
        "OPENAI_BASE_URL": "http://127.0.0.1:8787/openai/v1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787/anthropic",
    }


def test_custom_providers_take_the_variable_of_their_kind() -> None:
    env = dict(injection.base_url_env(cache(MODELS, "models", "ml")))
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:9787/vllm/v1"
    assert env["AZURE_OPENAI_ENDPOINT"] == "http://127.0.0.1:9787/azure-prod"
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9787/gemini"


def test_the_provider_named_like_its_kind_wins_the_variable() -> None:
    raw = {"providers": ["vllm", "openai"], "customProviders": {"vllm": {"kind": "openai", "upstream": "http://v"}}}
    env = dict(injection.base_url_env(cache(raw, "c", "ns")))
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/openai/v1"


@pytest.mark.parametrize(
    ("version", "native"),
    [(None, False), ((1, 20), False), ((1, 28), False), ((1, 29), True), ((1, 33), True), ((2, 0), True)],
)
def test_native_sidecars_are_used_from_kubernetes_1_29(version: tuple[int, int] | None, native: bool) -> None:
    assert injection.native_sidecars_supported(version) is native


@pytest.mark.parametrize(
    ("mode", "version", "native"),
    [
        ("auto", (1, 29), True),
        ("auto", (1, 28), False),
        ("auto", None, False),
        ("always", (1, 28), True),
        ("always", None, True),
        ("always", (1, 20), False),  # a 1.20 server refuses probes on init containers: the pod would not start
        ("never", (1, 33), False),
    ],
)
def test_the_spec_can_force_native_sidecars_only_where_the_server_can_run_them(
    mode: str, version: tuple[int, int] | None, native: bool
) -> None:
    the_cache = cache({"sidecar": {"nativeSidecar": mode}}, "c", "ns")
    assert injection.use_native_sidecar(the_cache, Options().policy(version)) is native


def test_the_fallback_config_routes_and_listens_as_the_rendered_config_does() -> None:
    """What an injected sidecar serves with, uncached, while its ConfigMap is gone."""
    for each in all_caches():
        fallback = config.loads(injection.fallback_config(each), "--fallback-config", env={})
        full = config.loads(reconcile.config_text(each), "config.yaml", env={})
        assert (fallback.listen, fallback.admin, fallback.providers) == (full.listen, full.admin, full.providers)


def test_only_the_operators_own_sidecar_image_is_given_the_fallback_option() -> None:
    # A pinned image may be an older sidecar, which would exit on an option it does not know.
    for each in all_caches():
        args = injection.sidecar_args(each)
        assert args[:2] == ["--config", "/etc/llmcache/config.yaml"]
        assert ("--fallback-config" in args) == (each.sidecar.image is None), each.name
    assert any(each.sidecar.image for each in all_caches())  # the case is covered

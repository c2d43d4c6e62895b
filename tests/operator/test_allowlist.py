"""What a cluster admin allows LLMCaches to use (issue 15, findings 1 and 5): images, hosts, cache namespaces.

Pure decisions, as tables: `allowlist.refusal` for a parsed spec, the operator's settings
read from its environment, and the webhook leaving a refused cache's pods alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmcache_operator import allowlist, injection
from llmcache_operator.allowlist import Allowlist
from llmcache_operator.injection import Policy
from llmcache_operator.options import Options, OptionsError
from tests.operator.caches import EDGE, cache

OWN = "ghcr.io/llmcache/llmcache-sidecar:0.1.0"
DEFAULTS = Allowlist()


def refused(raw: dict[str, Any], allowed: Allowlist = DEFAULTS, namespace: str = "team-a") -> str | None:
    found = allowlist.refusal(cache(raw, "c", namespace), allowed, OWN)
    return found.reason if found else None


def transparent(*hosts: str) -> dict[str, Any]:
    return {**EDGE, "transparent": {"hosts": dict.fromkeys(hosts, "openai")}}


# --- The spec: another team's pod would have got all of this ----------------------------------


def test_the_spec_of_the_report_is_refused_on_every_count() -> None:
    image = {"sidecar": {"image": "evil.example/x:1"}}
    hosts = transparent("login.microsoftonline.com", "sts.amazonaws.com")
    namespace = {"namespace": "team-b"}
    assert refused(image) == "ImageNotAllowed"
    assert refused(hosts) == "HostNotAllowed"
    assert refused(namespace) == "CacheNamespaceNotAllowed"
    assert refused({**image, **hosts, **namespace}) == "ImageNotAllowed"  # the first one found is reported


# --- Images ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "extra", "reason"),
    [
        (None, (), None),  # the operator's own, the default
        (OWN, (), None),
        ("ghcr.io/llmcache/llmcache-sidecar:0.0.9", (), "ImageNotAllowed"),  # not even another tag of ours
        ("evil.example/x:1", (), "ImageNotAllowed"),
        ("registry.corp/llmcache-sidecar:1.2", ("registry.corp/llmcache-sidecar:*",), None),
        ("registry.corp/llmcache-sidecar-evil:1", ("registry.corp/llmcache-sidecar:*",), "ImageNotAllowed"),
        ("registry.corp/llmcache-sidecar@sha256:ab", ("registry.corp/llmcache-sidecar@sha256:ab",), None),
        ("anything/at:all", ("*",), None),
    ],
)
def test_only_allowed_sidecar_images_are_used(image: str | None, extra: tuple[str, ...], reason: str | None) -> None:
    raw = {"sidecar": {"image": image}} if image else {}
    assert refused(raw, Allowlist(images=extra)) == reason


# --- Hosts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("api.openai.com", None),
        ("api.anthropic.com", None),
        ("generativelanguage.googleapis.com", None),
        ("*.openai.azure.com", None),
        ("contoso.openai.azure.com", None),  # one label under the allowed wildcard, as the sidecar matches
        ("a.b.openai.azure.com", "HostNotAllowed"),
        ("openai.azure.com", "HostNotAllowed"),
        ("login.microsoftonline.com", "HostNotAllowed"),
        ("sts.amazonaws.com", "HostNotAllowed"),
        ("api.openai.com.evil.example", "HostNotAllowed"),
        ("*.azure.com", "HostNotAllowed"),
    ],
)
def test_by_default_only_the_built_in_providers_hosts_may_be_intercepted(host: str, reason: str | None) -> None:
    assert refused(transparent(host)) == reason


def test_a_cluster_admin_can_allow_more_hosts_and_base_url_mode_needs_none() -> None:
    mistral = Allowlist(hosts=(*allowlist.DEFAULT_HOSTS, "api.mistral.ai", "*.corp.example"))
    assert refused(transparent("api.mistral.ai", "llm.corp.example"), mistral) is None
    assert refused(transparent("*.corp.example"), mistral) is None
    assert refused({"transparent": {"hosts": {"login.microsoftonline.com": "openai"}}}) is None  # not transparent


# --- Cache namespaces (finding 5) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "patterns", "reason"),
    [
        (None, allowlist.DEFAULT_CACHE_NAMESPACES, None),  # defaults to the resource's namespace
        ("team-a", allowlist.DEFAULT_CACHE_NAMESPACES, None),
        ("team-a.batch", allowlist.DEFAULT_CACHE_NAMESPACES, None),  # a sub-namespace
        ("team-b", allowlist.DEFAULT_CACHE_NAMESPACES, "CacheNamespaceNotAllowed"),  # another team's
        ("team-b.x", allowlist.DEFAULT_CACHE_NAMESPACES, "CacheNamespaceNotAllowed"),
        ("team-ab", allowlist.DEFAULT_CACHE_NAMESPACES, "CacheNamespaceNotAllowed"),  # a prefix is not enough
        ("shared", allowlist.DEFAULT_CACHE_NAMESPACES, "CacheNamespaceNotAllowed"),
        ("shared", ("{namespace}", "shared"), None),  # sharing across namespaces, allowed by the admin
        ("team-a", ("shared",), "CacheNamespaceNotAllowed"),
        ("anything", ("*",), None),
    ],
)
def test_a_cache_namespace_must_be_the_namespace_or_below_it_unless_allowed(
    wanted: str | None, patterns: tuple[str, ...], reason: str | None
) -> None:
    raw = {"namespace": wanted} if wanted else {}
    assert refused(raw, Allowlist(cache_namespaces=patterns)) == reason


def test_no_kubernetes_namespace_name_falls_under_another_ones_default() -> None:
    # Namespace names are DNS labels (no dot): "team-a.x" can only be team-a's sub-namespace.
    assert not allowlist.cache_namespace_allowed("team-a-x", "team-a", allowlist.DEFAULT_CACHE_NAMESPACES)
    assert allowlist.cache_namespace_allowed("team-a.x", "team-a", allowlist.DEFAULT_CACHE_NAMESPACES)


def test_the_message_names_the_field_what_is_allowed_and_the_setting() -> None:
    found = allowlist.refusal(cache({"namespace": "team-b"}, "c", "team-a"), DEFAULTS, OWN)
    assert found is not None
    assert found.message == (
        "spec.namespace: 'team-b' is not a cache namespace LLMCaches in team-a may use (team-a, team-a.*);"
        " a cluster admin allows more in the chart's operator.allowedCacheNamespaces"
    )


# --- The operator's settings --------------------------------------------------------------------------------------


def test_the_allowlists_come_from_the_operators_environment_with_safe_defaults() -> None:
    default = Options.from_env({})
    assert default.allowlist == Allowlist(images=(), hosts=allowlist.DEFAULT_HOSTS)
    assert default.allowlist.cache_namespaces == ("{namespace}", "{namespace}.*")
    assert default.policy(None).allowlist == default.allowlist
    env = {
        "LLMCACHE_OPERATOR_ALLOWED_SIDECAR_IMAGES": "registry.corp/llmcache-sidecar:*, registry.corp/x:1",
        "LLMCACHE_OPERATOR_ALLOWED_HOSTS": "api.openai.com,*.corp.example",
        "LLMCACHE_OPERATOR_ALLOWED_CACHE_NAMESPACES": "{namespace},shared",
    }
    found = Options.from_env(env).allowlist
    assert found.images == ("registry.corp/llmcache-sidecar:*", "registry.corp/x:1")
    assert found.hosts == ("api.openai.com", "*.corp.example")
    assert found.cache_namespaces == ("{namespace}", "shared")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_SIDECAR_IMAGES", "registry.corp/*/sidecar:1"),  # '*' only at the end
        ("ALLOWED_HOSTS", "API.OPENAI.COM"),
        ("ALLOWED_HOSTS", "https://api.openai.com"),
        ("ALLOWED_CACHE_NAMESPACES", "team:a"),
        ("WATCH_NAMESPACES", "Team_A"),
    ],
)
def test_a_pattern_the_operator_cannot_use_stops_it_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(OptionsError, match=f"LLMCACHE_OPERATOR_{name.split('_')[0]}"):
        Options.from_env({f"LLMCACHE_OPERATOR_{name}": value})


# --- The webhook leaves a refused cache's pods alone --------------------------------------------------------------


def test_the_webhook_checks_the_allowlists_itself_and_says_why_it_did_not_inject() -> None:
    evil = cache({"podSelector": {}, "sidecar": {"image": "evil.example/x:1"}}, "evil", "team-a")
    pod = {"metadata": {"name": "p", "labels": {"app": "payments"}}, "spec": {"containers": [{"name": "a"}]}}
    decision = injection.inject_required(pod, "team-a", [evil], Policy(image=OWN))
    assert decision.cache is None and decision.notable
    assert decision.reason.startswith("LLMCache evil is not allowed: spec.sidecar.image: 'evil.example/x:1'")
    assert injection.inject_required(pod, "team-a", [evil], Policy(image=OWN, allowlist=Allowlist(images=("*",))))


def test_the_webhook_follows_a_refusal_the_operator_wrote_in_the_status() -> None:
    shared = dataclasses.replace(cache({"podSelector": {}}, "shared", "team-a"), refused="it is not allowed: x")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    decision = injection.inject_required(pod, "team-a", [shared], Policy())
    assert (decision.cache, decision.reason, decision.notable) == (None, "LLMCache shared: it is not allowed: x", True)

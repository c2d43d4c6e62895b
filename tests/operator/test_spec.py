"""The LLMCache spec: one model with the sidecar's config, and errors that name the field."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from llmcache_operator import spec
from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError, Settings
from tests.operator.caches import MODELS, SHARED


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ttl": "soon"}, "spec.ttl: expected seconds or a duration such as 30s, 5m, 1h; got 'soon'"),
        (
            {"backend": {"type": "memcached"}},
            "spec.backend.type: must be one of memory, redis, dual, s3, gcs, azureBlob, disk, got 'memcached'",
        ),
        (
            {"backend": {"redis": {"pasword": "x"}}},
            "spec.backend.redis.pasword: unknown key; known keys: cluster, maxConnections, passwordSecretRef, sentinel, timeoutMs, url",
        ),
        (
            {"backend": {"redis": {"passwordFile": "/x"}}},
            "spec.backend.redis.passwordFile: unknown key; did you mean passwordSecretRef?",
        ),
        (
            {"backend": {"redis": {"passwordSecretRef": {"name": "r"}}}},
            "spec.backend.redis.passwordSecretRef.key: required",
        ),
        (
            {"providers": ["openai", "vllm"]},
            "spec.providers[1]: 'vllm' is not built in (openai, anthropic, gemini);"
            " define it under customProviders.vllm",
        ),
        ({"providers": ["openai", "openai"]}, "spec.providers[1]: 'openai' is listed twice"),
        (
            {"customProviders": {"vllm": {"kind": "openai", "upstream": "http://v"}}},
            "spec.customProviders.vllm: not listed in providers",
        ),
        (
            {"providers": ["v"], "customProviders": {"v": {"upstream": "http://v"}}},
            "spec.customProviders.v.kind: required for a provider that is not built in",
        ),
        (
            {"providers": ["v"], "customProviders": {"v": {"kind": "openai", "upstream": "ftp://v"}}},
            "spec.customProviders.v.upstream: expected an http(s) URL, got 'ftp://v'",
        ),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
            "spec.podSelector.matchExpressions[0].values: must be empty with operator Exists",
        ),
        ({"podSelector": {"matchLabels": {"a": 1}}}, "spec.podSelector.matchLabels.a: expected a string, got int"),
        ({"sidecar": {"port": 70000}}, "spec.sidecar.port: must be at most 65535, got 70000"),
        ({"sidecar": {"adminPort": 8787}}, "spec.sidecar.adminPort: must differ from port"),
        (
            {"sidecar": {"nativeSidecar": "yes"}},
            "spec.sidecar.nativeSidecar: must be one of auto, always, never, got 'yes'",
        ),
        ({"namespace": "team a"}, "spec.namespace: use letters, digits, '.', '_' and '-' (at most 63)"),
        (
            {"listen": "0.0.0.0:80"},
            "spec.listen: unknown key; known keys: backend, coalesce, customProviders, flush, interception,"
            " isolation, keyParams, maxBodyBytes, maxResponseBytes, mode, namespace, podSelector, providers, replay,"
            " semantic, sidecar, telemetry, transparent, ttl",
        ),
        ({"podSelektor": {}}, "spec.podSelektor: unknown key; did you mean podSelector?"),
        ({"interception": "iptables"}, "spec.interception: iptables needs mode: transparent"),
        ({"mode": "mitm"}, "spec.mode: must be one of baseURL, transparent, got 'mitm'"),
        (
            {"mode": "transparent", "transparent": {"hosts": {}}},
            "spec.transparent.hosts: transparent mode needs at least one host to intercept",
        ),
        (
            {"mode": "transparent", "transparent": {"hosts": {"*.com": "openai"}}},
            "spec.transparent.hosts.*.com: a wildcard needs at least two labels after '*.'",
        ),
        (
            {"mode": "transparent", "transparent": {"hosts": {"10.0.0.5": "openai"}}},
            "spec.transparent.hosts.10.0.0.5: an IP address cannot be intercepted: the CA signs DNS names only",
        ),
        (
            {"mode": "transparent", "transparent": {"caKeyFile": "/tmp/key.pem"}},
            "spec.transparent.caKeyFile: unknown key; known keys: hosts, leafValidity",
        ),
    ],
)
def test_an_invalid_spec_is_refused_with_the_path_of_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        spec.parse(raw, name="c", namespace="team-a")
    assert str(caught.value) == message


def test_an_empty_spec_is_a_memory_cache_for_the_built_in_providers() -> None:
    cache = spec.parse(None, name="c", namespace="team-a")
    assert cache.settings.backend.type == "memory"
    assert list(cache.settings.providers) == ["openai", "anthropic", "gemini"]
    assert cache.settings.namespace == "team-a"
    assert cache.pod_selector is None
    assert (cache.settings.listen, cache.settings.admin) == ("127.0.0.1:8787", "127.0.0.1:8788")


def test_the_spec_shares_the_sidecars_fields_instead_of_copying_them() -> None:
    spec_fields = {f.name: f for f in fields(spec.LLMCacheSpec)}
    replaced = {
        "listen",
        "admin",
        "namespace",
        "backend",
        "semantic",
        "providers",
        "transparent",
        "tenant_salt_file",  # the operator's own: a Secret it makes, mounted (injection.salted)
    }  # transparent: not offered yet
    for fld in fields(Settings):
        if fld.name in replaced:
            continue
        assert dict(spec_fields[fld.name].metadata) == dict(fld.metadata), fld.name
        assert spec_fields[fld.name].default == fld.default, fld.name
    assert {"pod_selector", "sidecar", "custom_providers"} <= set(spec_fields)


def test_a_password_is_referenced_as_a_mounted_file_never_copied() -> None:
    cache = spec.parse(SHARED, name="shared", namespace="team-a")
    assert cache.settings.backend.redis.password_file == "/var/run/secrets/llmcache/redis-password/password"
    (mount,) = cache.secrets
    assert (mount.ref.name, mount.ref.key, mount.volume) == ("redis", "password", "llmcache-redis-password")


def test_the_semantic_judges_key_is_referenced_as_a_mounted_file_never_copied() -> None:
    raw = {
        "semantic": {"enabled": True, "judge": {"enabled": True, "apiKeySecretRef": {"name": "judge", "key": "key"}}}
    }
    cache = spec.parse(raw, name="c", namespace="team-a")
    judge = cache.settings.semantic.judge
    assert judge.api_key_file == "/var/run/secrets/llmcache/semantic-judge-api-key/api-key"
    (mount,) = cache.secrets
    assert (mount.ref.name, mount.ref.key, mount.volume) == ("judge", "key", "llmcache-semantic-judge-api-key")


def test_custom_providers_become_sidecar_providers_and_change_built_in_ones() -> None:
    raw = {**MODELS, "providers": [*MODELS["providers"], "openai"]}
    raw["customProviders"] = {**MODELS["customProviders"], "openai": {"timeout": "2m"}}
    providers = spec.parse(raw, name="models", namespace="ml").settings.providers
    assert providers["vllm"].upstream == "http://vllm.ml.svc:8000"
    assert providers["azure-prod"].kind == "azure"
    assert (providers["openai"].upstream, providers["openai"].timeout) == ("https://api.openai.com", 120.0)


def test_quantities_may_be_written_as_numbers() -> None:
    cache = spec.parse({"sidecar": {"resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}}, name="c", namespace="n")
    assert cache.sidecar.resources.limits == {"cpu": "1", "memory": "1Gi"}


def test_the_cache_namespace_can_be_shared_across_kubernetes_namespaces() -> None:
    assert (
        spec.parse({"namespace": "shared-prompts"}, name="c", namespace="team-a").settings.namespace == "shared-prompts"
    )


def test_settings_written_back_to_a_mapping_parse_to_the_same_settings() -> None:
    settings = spec.parse(MODELS, name="models", namespace="ml").settings
    assert config.parse(Settings, config.to_mapping(settings)) == settings
    assert config.parse(Settings, config.to_mapping(settings, omit_defaults=True)) == settings


def test_transparent_mode_points_the_sidecar_at_the_mounted_ca_and_at_the_redirect_port() -> None:
    raw = {"mode": "transparent", "interception": "iptables", "transparent": {"hosts": {"api.openai.com": "openai"}}}
    cache = spec.parse(raw, name="edge", namespace="apps")
    transparent = cache.settings.transparent
    assert (cache.transparent, cache.interception, cache.ca_secret) == (True, "iptables", "llmcache-edge-ca")
    assert transparent.enabled and transparent.hosts == {"api.openai.com": "openai"}
    assert (transparent.ca_cert_file, transparent.ca_key_file) == (
        "/var/run/secrets/llmcache/ca/tls.crt",
        "/var/run/secrets/llmcache/ca/tls.key",
    )
    assert transparent.iptables_port == spec.IPTABLES_PORT
    plain = spec.parse({}, name="edge", namespace="apps")
    assert not plain.transparent and not plain.settings.transparent.enabled

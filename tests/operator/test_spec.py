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
            {"backend": {"type": "redis", "redis": {"url": "http://redis:6379"}}},
            "spec.backend.redis.url: expected a URL starting with redis://, rediss://, unix://;"
            " got 'http://redis:6379'",
        ),
        (
            {"semantic": {"store": {"type": "redis", "redis": {"url": "redis.cache.svc:6379"}}}},
            "spec.semantic.store.redis.url: expected a URL starting with redis://, rediss://, unix://;"
            " got 'redis.cache.svc:6379'",
        ),
        (
            {"backend": {"type": "disk", "disk": {"path": "/etc/llmcache"}}},
            "spec.backend.disk.path: '/etc/llmcache' overlaps /etc/llmcache, where the operator mounts the sidecar's files",
        ),
        (
            {"backend": {"type": "dual", "dual": {"l2": "disk"}, "disk": {"path": "/var/run/secrets"}}},
            "spec.backend.disk.path: '/var/run/secrets' overlaps /var/run/secrets/llmcache,"
            " where the operator mounts the sidecar's files",
        ),
        (
            {"backend": {"type": "disk", "disk": {"path": "cache"}}},
            "spec.backend.disk.path: expected an absolute, normalized directory other than /, got 'cache'",
        ),
        (
            {"backend": {"type": "disk", "disk": {"path": "/var/cache/../../etc/llmcache"}}},
            "spec.backend.disk.path: expected an absolute, normalized directory other than /,"
            " got '/var/cache/../../etc/llmcache'",
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
            "spec.listen: unknown key; known keys: backend, coalesce, customProviders, entryTransfer, flush,"
            " interception, isolation, keyParams, maxBodyBytes, maxResponseBytes, mode, namespace, podSelector,"
            " providers, recording, recordingTtl, replay, rules, semantic, shareStreamEntries, sidecar, staleIfError,"
            " telemetry, transparent, ttl",
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


def test_every_setting_the_sidecar_reads_is_in_the_spec_or_set_by_the_operator() -> None:
    """A setting declared in Settings instead of CacheSettings would silently miss the CRD."""
    shared = {f.name for f in fields(config.CacheSettings)}
    in_spec = {s.key for s in config.settings_of(spec.LLMCacheSpec)}
    for s in config.settings_of(Settings):
        if s.name not in shared:
            assert s.operator_owned or s.key in in_spec, f"{s.key}: declare it in CacheSettings"


def test_a_setting_added_to_the_shared_settings_is_in_the_spec_with_the_same_declaration() -> None:
    spec_fields = {f.name: f for f in fields(spec.LLMCacheSpec)}
    for fld in fields(config.CacheSettings):
        assert spec_fields[fld.name] is fld, fld.name
    assert issubclass(Settings, config.CacheSettings)


def test_what_the_operator_sets_is_not_offered_in_the_spec() -> None:
    view = spec.KubernetesView()
    shown = {s.key for s in view.settings(config.TransparentSettings)}
    assert shown == {"hosts", "leafValidity"}
    assert {"listen", "admin"}.isdisjoint(s.key for s in config.settings_of(spec.LLMCacheSpec, view))


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


def test_stale_if_error_and_shared_stream_entries_reach_the_sidecars_config() -> None:
    cache = spec.parse({"staleIfError": "1h", "shareStreamEntries": False}, name="c", namespace="n")
    assert (cache.settings.stale_if_error, cache.settings.share_stream_entries) == (3600.0, False)
    mapping = config.to_mapping(cache.settings, omit_defaults=True)
    assert (mapping["staleIfError"], mapping["shareStreamEntries"]) == (3600.0, False)
    defaults = spec.parse(None, name="c", namespace="n").settings
    assert (defaults.stale_if_error, defaults.share_stream_entries) == (0.0, True)


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


POLICY = {
    "rules": [
        {"when": '"send_email" in tools', "action": "bypass", "reason": "sends-email"},
        {"when": 'endpoint == "embeddings"', "action": "cache", "ttl": "720h"},
        {"when": 'provider == "anthropic"', "semantic": False},
    ],
    "recording": "replay",
    "recordingTtl": "24h",
}


def test_rules_and_recording_reach_the_sidecar_as_written() -> None:
    settings = spec.parse(POLICY, name="policy", namespace="apps").settings
    assert [(r.action, r.ttl, r.reason, r.semantic) for r in settings.rules] == [
        ("bypass", None, "sends-email", None),
        ("cache", 30 * 86400.0, None, None),
        (None, None, None, False),
    ]
    assert (settings.recording, settings.recording_ttl) == ("replay", 86400.0)
    assert config.parse(Settings, config.to_mapping(settings)) == settings  # what the ConfigMap holds


def test_a_rule_that_does_not_compile_is_refused_with_its_index_in_the_spec() -> None:
    raw = {"rules": [POLICY["rules"][0], {"when": "body.temperature = 0", "action": "bypass"}]}
    with pytest.raises(ConfigError) as refused:
        spec.parse(raw, name="policy", namespace="apps")
    assert refused.value.path == "spec.rules[1].when"
    assert refused.value.message.startswith("at 1:18: Syntax error: token recognition error at: '= '")


def test_a_name_longer_than_a_label_value_is_refused_before_anything_is_made() -> None:
    """The ConfigMap and Secrets made for a cache carry its name as a label value (63 characters at most)."""
    assert spec.parse(None, name="c" * 63, namespace="team-a").name == "c" * 63
    with pytest.raises(ConfigError) as caught:
        spec.parse(None, name="c" * 64, namespace="team-a")
    assert str(caught.value).startswith("metadata.name: at most 63 characters")

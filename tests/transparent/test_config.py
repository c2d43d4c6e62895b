"""The `transparent:` block of the configuration, and how hosts map to providers."""

from __future__ import annotations

from typing import Any

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.intercept.target import Target, parse_authority, provider_for


def parse(transparent: dict[str, Any], **more: Any) -> config.Settings:
    return config.parse(config.Settings, {"transparent": transparent, **more})


def test_transparent_mode_is_off_by_default_and_lists_the_public_llm_hosts() -> None:
    settings = config.parse(config.Settings, {})
    assert settings.transparent.enabled is False
    assert settings.transparent.hosts == {
        "api.openai.com": "openai",
        "api.anthropic.com": "anthropic",
        "generativelanguage.googleapis.com": "gemini",
        "*.openai.azure.com": "azure",
    }


@pytest.mark.parametrize(
    ("transparent", "path", "message"),
    [
        ({"enabled": True}, "transparent.caCertFile", "required"),
        ({"enabled": True, "caCertFile": "/ca.crt"}, "transparent.caKeyFile", "required"),
        ({"hosts": {"API.openai.com": "openai"}}, "transparent.hosts.API.openai.com", "lower-case DNS name"),
        ({"hosts": {"api.*.com": "openai"}}, "transparent.hosts.api.*.com", "lower-case DNS name"),
        ({"hosts": {"llm.internal": "vllm"}}, "transparent.hosts.llm.internal", "neither a configured provider"),
        ({"leafValidity": "1m"}, "transparent.leafValidity", "at least 5m"),
        ({"iptablesPort": 70000}, "transparent.iptablesPort", "not a port"),
        ({"caCertFil": "x"}, "transparent.caCertFil", "did you mean caCertFile"),
    ],
)
def test_a_wrong_transparent_setting_names_its_path(transparent: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        parse(transparent)
    assert error.value.path == path
    assert message in error.value.message


def test_a_host_may_map_to_a_configured_provider_by_name() -> None:
    settings = parse(
        {"hosts": {"llm.internal": "vllm"}},
        providers={"vllm": {"kind": "openai", "upstream": "http://vllm:8000"}},
    )
    assert settings.transparent.hosts == {"llm.internal": "vllm"}


def test_the_hosts_can_be_set_from_the_environment() -> None:
    settings = config.load(None, {"LLMCACHE_TRANSPARENT_HOSTS": "{api.openai.com: openai}"})
    assert settings.transparent.hosts == {"api.openai.com": "openai"}


def test_the_crd_schema_describes_the_transparent_block() -> None:
    props = config.object_schema(config.Settings)["properties"]["transparent"]["properties"]
    assert set(props) == {"enabled", "caCertFile", "caKeyFile", "hosts", "leafValidity", "iptablesPort"}
    assert props["hosts"]["additionalProperties"] == {"type": "string"}


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("api.openai.com", "openai"),
        ("myres.openai.azure.com", "azure"),
        ("a.b.openai.azure.com", None),  # `*.` is one label
        ("openai.azure.com", None),
        ("example.com", None),
    ],
)
def test_host_patterns_match_exact_names_and_one_label_wildcards(host: str, provider: str | None) -> None:
    assert provider_for(config.DEFAULT_INTERCEPTED_HOSTS, host) == provider


@pytest.mark.parametrize(
    ("authority", "target"),
    [
        ("api.openai.com:443", Target("api.openai.com", 443)),
        ("API.OpenAI.com.:443", Target("api.openai.com", 443)),
        ("[::1]:8443", Target("::1", 8443)),
        ("10.0.0.1:80", Target("10.0.0.1", 80)),
        ("api.openai.com", None),
        ("api.openai.com:0", None),
        ("api.openai.com:https", None),
        ("a b:443", None),
    ],
)
def test_connect_authorities_are_parsed_strictly(authority: str, target: Target | None) -> None:
    assert parse_authority(authority) == target

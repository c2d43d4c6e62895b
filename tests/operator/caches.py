"""LLMCache specs shared by the operator's tests, parsed with the operator's own parser."""

from __future__ import annotations

from typing import Any

from llmcache_operator import spec
from llmcache_operator.allowlist import Allowlist
from llmcache_operator.spec import Cache

SHARED: dict[str, Any] = {
    "podSelector": {"matchLabels": {"llmcache.dev/enabled": "true"}},
    "ttl": "1h",
    "backend": {
        "type": "redis",
        "redis": {"url": "redis://redis.team-a.svc:6379/0", "passwordSecretRef": {"name": "redis", "key": "password"}},
    },
    "providers": ["openai", "anthropic"],
    "sidecar": {"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
}

MODELS: dict[str, Any] = {
    "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rag", "search"]}]},
    "providers": ["vllm", "azure-prod", "gemini"],
    "customProviders": {
        "vllm": {"kind": "openai", "upstream": "http://vllm.ml.svc:8000"},
        "azure-prod": {"kind": "azure", "upstream": "https://contoso.openai.azure.com"},
    },
    "sidecar": {"image": "registry.example/llmcache-sidecar:dev", "imagePullPolicy": "IfNotPresent", "port": 9787},
}

DISK: dict[str, Any] = {
    "podSelector": {},  # every pod of the namespace
    "backend": {"type": "dual", "dual": {"l2": "disk"}, "disk": {"path": "/var/cache/llmcache", "maxBytes": 536870912}},
    "providers": ["openai"],
}


EDGE: dict[str, Any] = {
    "podSelector": {"matchLabels": {"egress": "llm"}},
    "mode": "transparent",
    "providers": ["openai", "anthropic"],
    "transparent": {"hosts": {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}},
}

REDIRECT: dict[str, Any] = {**EDGE, "interception": "iptables", "podSelector": {"matchLabels": {"egress": "redirect"}}}


ALLOWLIST = Allowlist(images=("registry.example/llmcache-sidecar:*",))
"""What a cluster admin allows for these caches: MODELS pins an image of its own."""


def cache(raw: dict[str, Any], name: str, namespace: str) -> Cache:
    return spec.parse(raw, name=name, namespace=namespace)


def all_caches() -> list[Cache]:
    return [
        cache(SHARED, "shared", "team-a"),
        cache({"backend": {"type": "memory"}}, "zz-memory", "team-a"),  # sorts after "shared"
        cache(SHARED, "shared", "kube-system"),
        cache(MODELS, "models", "ml"),
        cache(DISK, "scratch", "batch"),
        cache(EDGE, "edge", "apps"),
        cache(REDIRECT, "redirect", "apps"),
    ]

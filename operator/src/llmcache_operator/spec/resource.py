"""The LLMCache spec: the cache's settings, shared with the sidecar, plus what only Kubernetes needs.

`LLMCacheSpec` extends the sidecar's `CacheSettings`, so every setting declared there is
in the spec and in the CRD (`make crds`) without a second declaration. Its own fields
are Kubernetes': which pods (`podSelector`), the injected container (`sidecar`), the
mode, and the sidecar's settings in a Kubernetes shape:

- `providers` is a list of names (`[openai, anthropic]`); upstreams that are not built
  in, or changes to a built-in one, go under `customProviders`;
- `namespace` (the cache's key prefix) defaults to the resource's Kubernetes namespace;
- `transparent` offers what the user chooses; the operator sets the rest (`view`).

Ports are not in the spec: they live under `sidecar`, and the sidecar always binds to
127.0.0.1 in the pod.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar import config
from llmcache_sidecar.config import (
    BUILTIN_PROVIDERS,
    CacheSettings,
    ConfigError,
    ProviderSettings,
    TransparentSettings,
    setting,
)

GROUP = "llmcache.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LLMCache"
PLURAL = "llmcaches"
SINGULAR = "llmcache"
SHORT_NAMES = ("llmc",)

# Kubernetes' own pattern for resource.Quantity (apimachinery's OpenAPI "quantity").
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_MAP = {"additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}}
_PORT = {"maximum": 65535}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretKeyRef:
    """One key of a Secret in the resource's namespace."""

    name: str = setting("name", "Name of the Secret, in the LLMCache's namespace.", default="", required=True)
    key: str = setting("key", "Key within the Secret.", default="", required=True)

    def _check(self, path: str) -> None:
        for fld_name, value in (("name", self.name), ("key", self.key)):
            if not value:
                raise ConfigError(f"{path}.{fld_name}", "required")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelectorRequirement:
    key: str = setting("key", "Label key.", default="", required=True)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = setting(
        "operator", "How the label's value is compared with values.", default="In"
    )
    values: tuple[str, ...] = setting(
        "values", "Values for In and NotIn; empty for Exists and DoesNotExist.", default=()
    )

    def _check(self, path: str) -> None:
        if not self.key:
            raise ConfigError(f"{path}.key", "required")
        if self.operator in ("In", "NotIn") and not self.values:
            raise ConfigError(f"{path}.values", f"required with operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ConfigError(f"{path}.values", f"must be empty with operator {self.operator}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """A Kubernetes label selector: every condition must hold; {} matches every pod."""

    match_labels: dict[str, str] = setting(
        "matchLabels", "Labels the pod must carry with exactly these values.", factory=dict
    )
    match_expressions: tuple[LabelSelectorRequirement, ...] = setting(
        "matchExpressions", "Further conditions on the pod's labels.", default=()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarResources:
    requests: dict[str, str] = setting(
        "requests",
        "Resources reserved for the sidecar (default cpu 50m, memory 64Mi).",
        factory=lambda: {"cpu": "50m", "memory": "64Mi"},
        schema=_QUANTITY_MAP,
    )
    limits: dict[str, str] = setting(
        "limits",
        "Resource limits of the sidecar; a memory limit must leave room for backend.memory.maxBytes.",
        factory=dict,
        schema=_QUANTITY_MAP,
    )


NativeSidecarMode = Literal["auto", "always", "never"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarSpec:
    image: str | None = setting(
        "image",
        "Sidecar image; defaults to the operator's own (ghcr.io/llmcache/llmcache-sidecar:<version>).",
        default=None,
    )
    image_pull_policy: PullPolicy | None = setting("imagePullPolicy", "Pull policy of the sidecar image.", default=None)
    resources: SidecarResources = setting(
        "resources", "Requests and limits of the sidecar container.", factory=SidecarResources
    )
    port: int = setting(
        "port", "Data port on 127.0.0.1 that app containers call.", default=8787, minimum=1, schema=_PORT
    )
    admin_port: int = setting(
        "adminPort", "Admin port on 127.0.0.1 (health, metrics, flush).", default=8788, minimum=1, schema=_PORT
    )
    native_sidecar: NativeSidecarMode = setting(
        "nativeSidecar",
        "auto: a native sidecar (init container with restartPolicy Always) where the API server is 1.29 or"
        " newer, else a regular container placed first; always: native also on 1.28 (feature gate) or an"
        " unknown version, never below 1.28 (such a server refuses the pod); never: always a regular container.",
        default="auto",
    )

    def _check(self, path: str) -> None:
        for fld_name, port in (("port", self.port), ("adminPort", self.admin_port)):
            if port > 65535:
                raise ConfigError(f"{path}.{fld_name}", f"must be at most 65535, got {port}")
        if self.port == self.admin_port:
            raise ConfigError(f"{path}.adminPort", "must differ from port")


Mode = Literal["baseURL", "transparent"]
Interception = Literal["proxy", "iptables"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMCacheSpec(CacheSettings):
    """Which pods get the llmcache sidecar, and how it caches their LLM calls."""

    # `before=` lists a field among the shared ones, where the CRD has always had it.
    pod_selector: LabelSelector | None = setting(
        "podSelector",
        "Pods in this namespace whose labels match get the sidecar. Without it, only pods annotated"
        " llmcache.dev/inject: <name>. {} matches every pod.",
        default=None,
        before="ttl",
    )
    namespace: str | None = setting(
        "namespace",
        "Prefix that isolates this cache's entries; defaults to the resource's Kubernetes namespace.",
        default=None,
        before="flush",
    )
    providers: tuple[str, ...] = setting(
        "providers",
        "Providers the sidecar serves at /<name>/...; built in: "
        + ", ".join(BUILTIN_PROVIDERS)
        + ". Others are defined under customProviders.",
        default=tuple(BUILTIN_PROVIDERS),
        before="key_params",
    )
    custom_providers: dict[str, ProviderSettings] = setting(
        "customProviders",
        "Upstreams by provider name: OpenAI-compatible servers, Azure OpenAI resources, or changes to"
        " a built-in provider. Each must also be listed in providers.",
        factory=dict,
        before="key_params",
    )
    mode: Mode = setting(
        "mode",
        "baseURL: app containers get OPENAI_BASE_URL and the like pointing at the sidecar."
        " transparent: also HTTPS_PROXY and a trust bundle with a CA the operator issues for this"
        " cache, so that apps calling https://api.openai.com directly are cached too"
        " (docs/transparent.md).",
        default="baseURL",
    )
    interception: Interception = setting(
        "interception",
        "How transparent mode reaches the sidecar. proxy: through HTTPS_PROXY. iptables: an init"
        " container (NET_ADMIN, NET_RAW, root) also redirects the app's outbound port 443 to the"
        " sidecar, for apps that ignore proxy variables; refused where Pod Security forbids it.",
        default="proxy",
    )
    transparent: TransparentSettings = setting(
        "transparent", "Settings of transparent mode.", factory=TransparentSettings, schema={"default": {}}
    )
    sidecar: SidecarSpec = setting("sidecar", "The injected sidecar container.", factory=SidecarSpec)

    def _check(self, path: str) -> None:
        if self.interception == "iptables" and self.mode != "transparent":
            raise ConfigError(f"{path}.interception", "iptables needs mode: transparent")
        if self.mode == "transparent":
            _check_intercepted_hosts(self.transparent.hosts, f"{path}.transparent.hosts")
        seen: set[str] = set()
        for i, name in enumerate(self.providers):
            if name in seen:
                raise ConfigError(f"{path}.providers[{i}]", f"{name!r} is listed twice")
            seen.add(name)
            if name not in BUILTIN_PROVIDERS and name not in self.custom_providers:
                raise ConfigError(
                    f"{path}.providers[{i}]",
                    f"{name!r} is not built in ({', '.join(BUILTIN_PROVIDERS)});"
                    f" define it under customProviders.{name}",
                )
        for name, provider in self.custom_providers.items():
            sub = f"{path}.customProviders.{name}"
            if name not in seen:
                raise ConfigError(sub, "not listed in providers")
            if name not in BUILTIN_PROVIDERS:  # a change to a built-in one is checked by the sidecar's settings
                config.resolve_provider(name, provider, sub)


def _check_intercepted_hosts(hosts: dict[str, str], path: str) -> None:
    """What the operator's CA can be constrained to: DNS names, wildcards below a registrable domain."""
    if not hosts:
        raise ConfigError(path, "transparent mode needs at least one host to intercept")
    for pattern in hosts:
        base = pattern.removeprefix("*.")
        try:
            ipaddress.ip_address(base)
        except ValueError:
            pass
        else:
            raise ConfigError(f"{path}.{pattern}", "an IP address cannot be intercepted: the CA signs DNS names only")
        if pattern.startswith("*.") and base.count(".") < 1:
            raise ConfigError(f"{path}.{pattern}", "a wildcard needs at least two labels after '*.'")

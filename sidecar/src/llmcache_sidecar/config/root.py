"""The sidecar's settings: the root of the file, its providers, keys and coalescing.

These frozen dataclasses, with the area modules beside this one, are the one model of
the configuration. `parse` reads a YAML mapping into them (camelCase keys, as in the
`LLMCache` spec), and `schema` walks the same fields to write the CRD's OpenAPI schema,
so the two cannot drift. Every error names the key path:
`backend.memory.maxByte: unknown key; did you mean maxBytes?`.

Settings are never mutated: a reload parses a new `Settings` and swaps one reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, get_args

from llmcache_sidecar.config.backends import BackendSettings
from llmcache_sidecar.config.fields import NAME_RE, ConfigError, check_address, setting
from llmcache_sidecar.config.policy import Recording, Rule
from llmcache_sidecar.config.semantic import SemanticSettings
from llmcache_sidecar.config.telemetry import TelemetrySettings
from llmcache_sidecar.config.transparent import TransparentSettings

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
Isolation = Literal["credential", "namespace"]
ProviderKind = Literal["openai", "azure", "anthropic", "gemini"]
ReplayMode = Literal["fast", "paced"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    kind: ProviderKind | None = setting(
        "kind",
        "Wire format: openai (or compatible), azure, anthropic, gemini. Built-in providers default to their name.",
        default=None,
    )
    upstream: str | None = setting(
        "upstream", "Base URL requests are forwarded to, e.g. https://api.openai.com.", default=None
    )
    timeout: float = setting("timeout", "Longest time an upstream call may take.", default=600.0, duration=True)
    credential_headers: tuple[str, ...] = setting(
        "credentialHeaders",
        "Request headers that carry the caller's credential besides the kind's own (authorization, api-key,"
        " x-api-key, x-goog-api-key): a gateway's, such as Ocp-Apim-Subscription-Key or x-litellm-api-key. With"
        " isolation: credential, every one a request carries is part of its tenant.",
        default=(),
    )
    allow_anonymous: bool = setting(
        "allowAnonymous",
        "With isolation: credential, also cache requests that carry no credential this provider knows (all such"
        " callers share one tenant): for an upstream that needs no key. Off: they pass through uncached"
        " (Cache-Status detail=no-credential).",
        default=False,
    )

    def _check(self, path: str) -> None:
        for i, name in enumerate(self.credential_headers):
            if not _HEADER_NAME_RE.match(name):
                raise ConfigError(f"{path}.credentialHeaders[{i}]", f"not an HTTP header name: {name!r}")
        object.__setattr__(self, "credential_headers", tuple(name.lower() for name in self.credential_headers))


BUILTIN_PROVIDERS: Mapping[str, ProviderSettings] = {
    "openai": ProviderSettings(kind="openai", upstream="https://api.openai.com"),
    "anthropic": ProviderSettings(kind="anthropic", upstream="https://api.anthropic.com"),
    "gemini": ProviderSettings(kind="gemini", upstream="https://generativelanguage.googleapis.com"),
}


def resolve_provider(name: str, provider: ProviderSettings, path: str) -> ProviderSettings:
    """`provider` with a built-in provider's kind and upstream filled in, checked.

    The one check of a provider block, for the sidecar's file and the operator's
    `customProviders` alike: a provider that is not built in names its kind and an
    http(s) upstream.
    """
    builtin = BUILTIN_PROVIDERS.get(name)
    kind = provider.kind or (builtin.kind if builtin else None)
    upstream = provider.upstream or (builtin.upstream if builtin else None)
    if kind is None:
        raise ConfigError(f"{path}.kind", "required for a provider that is not built in")
    if upstream is None:
        raise ConfigError(f"{path}.upstream", "required for a provider that is not built in")
    if not upstream.startswith(("http://", "https://")):
        raise ConfigError(f"{path}.upstream", f"expected an http(s) URL, got {upstream!r}")
    return replace(provider, kind=kind, upstream=upstream.rstrip("/"))


def _default_providers() -> dict[str, ProviderSettings]:
    return dict(BUILTIN_PROVIDERS)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyParams:
    exclude: tuple[str, ...] = setting(
        "exclude", "Top-level body fields left out of the cache key.", default=("user", "metadata")
    )
    include: tuple[str, ...] = setting(
        "include", "If set, only these top-level body fields make the key (exclude is then ignored).", default=()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CoalesceSettings:
    enabled: bool = setting("enabled", "Identical requests in flight at once go upstream once.", default=True)
    max_wait: float = setting(
        "maxWait",
        "Longest time a follower waits for the leader's answer before its own call.",
        default=60.0,
        duration=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    """What a cache does, the same whether the sidecar's file or an LLMCache spec says it.

    The sidecar's `Settings` and the operator's `LLMCacheSpec` both extend this class, so
    a setting declared here is in both, and in the CRD, with one declaration. What only
    the file has (ports, providers as upstreams) is declared in `Settings`; what only
    Kubernetes needs, in `LLMCacheSpec`.
    """

    ttl: float = setting(
        "ttl",
        "Default time-to-live of an entry: seconds, or a duration such as 1h or 30m.",
        default=3600.0,
        duration=True,
    )
    flush: str = setting(
        "flush", "Changing this value empties this cache's namespace: it is part of every key.", default=""
    )
    isolation: Isolation = setting(
        "isolation",
        "credential: entries are also keyed by a hash of the caller's API key; namespace: shared by all callers.",
        default="credential",
    )
    tenant_salt_file: str | None = setting(
        "tenantSaltFile",
        "File holding a secret salt of the credential hash in every key (a mounted Secret; the operator makes one"
        " per LLMCache): without it, a key's tenant part is the same hash of an API key in every install. A new"
        " salt turns the entries keyed by credential into misses.",
        default=None,
        operator_owned=True,
    )
    max_body_bytes: int = setting(
        "maxBodyBytes", "Larger request bodies pass through uncached.", default=10 * 2**20, minimum=1
    )
    max_response_bytes: int | None = setting(
        "maxResponseBytes",
        "Largest answer recorded for the cache: a larger one streams on to the caller as it comes, is not stored"
        " (Cache-Status detail=response-too-large) and is never held whole. Unset: a sixteenth of the"
        " container's memory limit, between 1 MiB and 64 MiB (64 MiB without a limit).",
        default=None,
        minimum=1,
    )
    replay: ReplayMode = setting(
        "replay", "How a cached stream is replayed: fast, or paced with the original gaps.", default="fast"
    )
    stale_if_error: float = setting(
        "staleIfError",
        "How long past its ttl an entry is kept, to be served (stale) only when the provider fails:"
        " a 5xx or 429, a timeout, no connection (RFC 5861). 0 keeps nothing past the ttl.",
        default=0.0,
        duration=True,
    )
    share_stream_entries: bool = setting(
        "shareStreamEntries",
        "A streamed request and its non-streamed twin share one entry, rendered as each caller asks"
        " (OpenAI chat completions and Responses, Anthropic messages). false keeps them apart.",
        default=True,
    )
    backend: BackendSettings = setting("backend", "Cache storage.", factory=BackendSettings, schema={"default": {}})
    key_params: KeyParams = setting("keyParams", "Which body fields make the key.", factory=KeyParams)
    coalesce: CoalesceSettings = setting("coalesce", "Single-flight of identical requests.", factory=CoalesceSettings)
    rules: tuple[Rule, ...] = setting(
        "rules",
        "Policy rules, read in order: a CEL condition and what a match decides (docs/policy.md).",
        default=(),
    )
    recording: Recording = setting(
        "recording",
        "live: the usual cache. record: every answer forwarded is stored for recordingTtl, whatever the rules"
        " say. replay: answers only from the cache; a miss is a 504 and never goes upstream (docs/policy.md).",
        default="live",
    )
    recording_ttl: float = setting(
        "recordingTtl",
        "How long entries stored in record mode, or imported through the admin port, are kept.",
        default=30 * 86400.0,
        duration=True,
    )
    entry_transfer: bool = setting(
        "entryTransfer",
        "Whether the admin port's GET /cache/export and POST /cache/import work. They read and write every"
        " tenant's entries of the namespace, for whoever reaches the admin port (any container of the pod):"
        " turn on only where all its callers may see each other's answers, such as a recording job or CI.",
        default=False,
    )
    semantic: SemanticSettings = setting(
        "semantic",
        "Semantic caching: near-duplicate prompts answered from the cache, verified.",
        factory=SemanticSettings,
    )
    telemetry: TelemetrySettings = setting("telemetry", "Traces, metrics and logs.", factory=TelemetrySettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings(CacheSettings):
    """The sidecar's settings: the cache's, plus the ports and the providers' upstreams."""

    listen: str = setting("listen", "Data port address (host:port).", default="127.0.0.1:8787", operator_owned=True)
    admin: str = setting("admin", "Admin port address (host:port).", default="127.0.0.1:8788", operator_owned=True)
    namespace: str = setting("namespace", "Prefix that isolates this cache's entries.", default="default")
    providers: dict[str, ProviderSettings] = setting(
        "providers",
        "Providers by the name used in the path: /<name>/... is forwarded to its upstream.",
        factory=_default_providers,
    )
    transparent: TransparentSettings = setting(
        "transparent", "Forward-proxy mode with TLS interception for LLM hosts.", factory=TransparentSettings
    )

    def _check(self, path: str) -> Settings:
        """Check addresses and names; the copy with built-in provider defaults filled in (once, at parse)."""
        check_address(self.listen, "listen")
        check_address(self.admin, "admin")
        if self.telemetry.metrics_listen:
            check_address(self.telemetry.metrics_listen, "telemetry.metricsListen")
        if not NAME_RE.match(self.namespace):
            raise ConfigError("namespace", "use letters, digits, '.', '_' and '-' (at most 63)")
        resolved: dict[str, ProviderSettings] = {}
        for name, provider in self.providers.items():
            sub = f"providers.{name}"
            if not NAME_RE.match(name):
                raise ConfigError(sub, "a provider name is used in the URL path: letters, digits, '.', '_', '-'")
            resolved[name] = resolve_provider(name, provider, sub)
        judge = self.semantic.judge
        if judge.enabled and judge.provider not in resolved:
            raise ConfigError(
                "semantic.judge.provider", f"{judge.provider!r} is not a configured provider ({', '.join(resolved)})"
            )
        kinds = get_args(ProviderKind)
        for pattern, target in self.transparent.hosts.items():
            if target not in resolved and target not in kinds:
                raise ConfigError(
                    f"transparent.hosts.{pattern}", f"{target!r} is neither a configured provider nor a provider kind"
                )
        return replace(self, providers=resolved)

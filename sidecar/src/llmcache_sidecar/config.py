"""The sidecar's configuration: frozen dataclasses, parsed from YAML and environment.

These classes are the one model of the configuration. `parse` reads a YAML mapping
into them (camelCase keys, as in the `LLMCache` spec), and `schema.py` walks the same
fields to write the CRD's OpenAPI schema, so the two cannot drift. Every error names
the key path: `backend.memory.maxByte: unknown key; did you mean maxBytes?`.

Settings are never mutated: a reload parses a new `Settings` and swaps one reference.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

Isolation = Literal["credential", "namespace"]
BackendType = Literal["memory", "redis", "dual", "s3", "gcs", "azureBlob", "disk"]
RemoteBackendType = Literal["redis", "s3", "gcs", "azureBlob", "disk"]
S3AddressingStyle = Literal["auto", "virtual", "path"]
ProviderKind = Literal["openai", "azure", "anthropic", "gemini"]
ReplayMode = Literal["fast", "paced"]
SemanticMode = Literal["serve", "shadow"]
SemanticStoreType = Literal["memory", "redis", "qdrant"]

ENV_PREFIX = "LLMCACHE_"
_NOT_SETTINGS = frozenset({"LLMCACHE_CONFIG", "LLMCACHE_LOG_LEVEL"})  # read by the command itself
_UNIONS = (Union, types.UnionType)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_PATTERN_RE = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: Unicode category Cc


class ConfigError(ValueError):
    """A configuration value is wrong; `path` says which one."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class SecretFileError(ConfigError):
    """A secret file the configuration names cannot be read.

    Not bad input like the rest of `ConfigError`: in a pod the file comes from a Secret
    volume that is not filled yet, or whose Secret is gone, and may appear later. The
    sidecar runs without the part that needs it (requests pass through) and retries.
    """


def read_secret(path: str | None, key_path: str) -> str | None:
    """The content of the secret file at `path` (None when unset), without surrounding whitespace.

    A value with a control character left inside (`sk-a\nsk-b`, a CR of a CRLF file pasted
    into a password) is refused: it cannot go into an HTTP header (aiohttp raises on every
    request) nor mean what its author meant. The error names the file, never its content.
    """
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(key_path, f"cannot read the secret file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SecretFileError(key_path, f"the secret file {path} is not UTF-8 text") from exc
    if _CONTROL_RE.search(value):
        raise SecretFileError(
            key_path, f"the secret file {path} has a control character (a line break?) inside its value"
        )
    return value


def key(name: str, doc: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the camelCase key, its description, and schema extras."""
    return {"key": name, "doc": doc, **extra}


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySettings:
    max_bytes: int = field(
        default=256 * 2**20,
        metadata=key("maxBytes", "Upper bound of the bytes the in-memory cache holds.", minimum=1024),
    )
    max_entries: int = field(
        default=100_000,
        metadata=key("maxEntries", "Upper bound of the entries the in-memory cache holds.", minimum=1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SentinelSettings:
    master_name: str = field(
        default="mymaster",
        metadata=key("masterName", "Name the Sentinels monitor the master by."),
    )
    addresses: tuple[str, ...] = field(
        default=(),
        metadata=key("addresses", "Sentinel host:port addresses; any that answers tells where the master is."),
    )
    password_file: str | None = field(
        default=None,
        metadata=key("passwordFile", "File holding the Sentinels' own password, if they require one."),
    )

    def _check(self, path: str) -> None:
        if not self.addresses:
            raise ConfigError(f"{path}.addresses", "list at least one Sentinel host:port")
        for i, address in enumerate(self.addresses):
            _check_address(address, f"{path}.addresses[{i}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str = field(
        default="redis://127.0.0.1:6379/0",
        metadata=key("url", "Redis URL: redis://host:port/db, or rediss:// for TLS."),
    )
    password_file: str | None = field(
        default=None,
        metadata=key("passwordFile", "File holding the Redis password (a mounted Secret)."),
    )
    timeout_ms: int = field(
        default=50,
        metadata=key(
            "timeoutMs", "Longest time one Redis lookup or write may take; past it the call is a miss.", minimum=1
        ),
    )
    max_connections: int = field(
        default=64,
        metadata=key("maxConnections", "Size of the connection pool.", minimum=1),
    )
    cluster: bool = field(
        default=False,
        metadata=key(
            "cluster",
            "Redis Cluster: url names any one node; the client learns the others and follows MOVED/ASK redirections.",
        ),
    )
    sentinel: SentinelSettings | None = field(
        default=None,
        metadata=key(
            "sentinel",
            "Find the master through Redis Sentinel instead of url's host (url's db and TLS still apply).",
        ),
    )

    def _check(self, path: str) -> None:
        if self.cluster and self.sentinel is not None:
            raise ConfigError(f"{path}.sentinel", "cluster and sentinel exclude each other")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Settings:
    bucket: str = field(default="", metadata=key("bucket", "Bucket that holds the entries (it must exist)."))
    prefix: str = field(default="llmcache/", metadata=key("prefix", "Key prefix of every object llmcache writes."))
    region: str | None = field(
        default=None,
        metadata=key("region", "AWS region; the standard AWS chain decides when unset."),
    )
    endpoint_url: str | None = field(
        default=None,
        metadata=key("endpointUrl", "S3-compatible endpoint (MinIO, Ceph, R2, ...); AWS when unset."),
    )
    addressing_style: S3AddressingStyle = field(
        default="auto",
        metadata=key("addressingStyle", "path for most S3-compatible stores; virtual or auto for AWS."),
    )
    access_key_id_file: str | None = field(
        default=None,
        metadata=key(
            "accessKeyIdFile",
            "File holding the access key id (a mounted Secret); the standard AWS chain when unset.",
        ),
    )
    secret_access_key_file: str | None = field(
        default=None,
        metadata=key("secretAccessKeyFile", "File holding the secret access key; required with accessKeyIdFile."),
    )
    timeout_ms: int = field(
        default=1000,
        metadata=key("timeoutMs", "Longest time one S3 call may take; past it the call is a miss.", minimum=1),
    )
    max_connections: int = field(
        default=32,
        metadata=key("maxConnections", "Size of the HTTP connection pool.", minimum=1),
    )

    def _check(self, path: str) -> None:
        if (self.access_key_id_file is None) != (self.secret_access_key_file is None):
            raise ConfigError(f"{path}.secretAccessKeyFile", "accessKeyIdFile and secretAccessKeyFile go together")


@dataclass(frozen=True, slots=True, kw_only=True)
class GcsSettings:
    bucket: str = field(default="", metadata=key("bucket", "Bucket that holds the entries (it must exist)."))
    prefix: str = field(default="llmcache/", metadata=key("prefix", "Name prefix of every object llmcache writes."))
    credentials_file: str | None = field(
        default=None,
        metadata=key(
            "credentialsFile",
            "Service-account JSON key file; Application Default Credentials (Workload Identity) when unset.",
        ),
    )
    endpoint_url: str | None = field(
        default=None,
        metadata=key(
            "endpointUrl",
            "Storage API root for an emulator (no authentication is sent to it); Google when unset.",
        ),
    )
    timeout_ms: int = field(
        default=1000,
        metadata=key("timeoutMs", "Longest time one GCS call may take; past it the call is a miss.", minimum=1),
    )
    max_connections: int = field(
        default=32,
        metadata=key("maxConnections", "Size of the HTTP connection pool.", minimum=1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AzureBlobSettings:
    container: str = field(
        default="",
        metadata=key("container", "Blob container that holds the entries (it must exist)."),
    )
    prefix: str = field(default="llmcache/", metadata=key("prefix", "Name prefix of every blob llmcache writes."))
    account_url: str | None = field(
        default=None,
        metadata=key("accountUrl", "https://<account>.blob.core.windows.net; not needed with connectionStringFile."),
    )
    connection_string_file: str | None = field(
        default=None,
        metadata=key("connectionStringFile", "File holding a storage connection string (a mounted Secret)."),
    )
    account_key_file: str | None = field(
        default=None,
        metadata=key("accountKeyFile", "File holding the account key, used with accountUrl."),
    )
    timeout_ms: int = field(
        default=1000,
        metadata=key("timeoutMs", "Longest time one Azure call may take; past it the call is a miss.", minimum=1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskSettings:
    path: str = field(
        default="/var/cache/llmcache",
        metadata=key(
            "path",
            "Directory that holds the entries (an emptyDir or a PersistentVolume); created if missing.",
        ),
    )
    max_bytes: int = field(
        default=2**30,
        metadata=key(
            "maxBytes",
            "Upper bound of the bytes stored files take; least recently used go first.",
            minimum=1024,
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DualSettings:
    front_ttl: float = field(
        default=60.0,
        metadata=key(
            "frontTtl",
            "Longest time an entry stays in the memory tier; a flush elsewhere is seen within it.",
            duration=True,
        ),
    )
    l1: Literal["memory"] = field(
        default="memory",
        metadata=key("l1", "The front tier, in this pod's memory (sized by backend.memory)."),
    )
    l2: RemoteBackendType = field(
        default="redis",
        metadata=key("l2", "The shared tier: redis, s3, gcs, azureBlob or disk, configured by its own block."),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSettings:
    type: BackendType = field(
        default="memory",
        metadata=key(
            "type",
            "Where entries live: memory (this pod), redis (shared), s3, gcs, azureBlob (object storage), "
            "disk (a directory), dual (memory in front of dual.l2).",
        ),
    )
    memory: MemorySettings = field(default_factory=MemorySettings, metadata=key("memory", "In-memory tier."))
    redis: RedisSettings = field(default_factory=RedisSettings, metadata=key("redis", "Redis connection."))
    s3: S3Settings = field(default_factory=S3Settings, metadata=key("s3", "Amazon S3 or an S3-compatible store."))
    gcs: GcsSettings = field(default_factory=GcsSettings, metadata=key("gcs", "Google Cloud Storage."))
    azure_blob: AzureBlobSettings = field(
        default_factory=AzureBlobSettings, metadata=key("azureBlob", "Azure Blob Storage.")
    )
    disk: DiskSettings = field(default_factory=DiskSettings, metadata=key("disk", "A local directory."))
    dual: DualSettings = field(default_factory=DualSettings, metadata=key("dual", "Two-tier settings."))

    def _check(self, path: str) -> None:
        used = self.dual.l2 if self.type == "dual" else self.type
        required = {
            "s3": (self.s3.bucket, "s3.bucket"),
            "gcs": (self.gcs.bucket, "gcs.bucket"),
            "azureBlob": (self.azure_blob.container, "azureBlob.container"),
        }
        if used in required and not required[used][0]:
            sub = f"{path}.{required[used][1]}" if path else required[used][1]
            raise ConfigError(sub, f"required when the {used} backend is used")
        azure = self.azure_blob
        if used == "azureBlob" and azure.account_url is None and azure.connection_string_file is None:
            sub = f"{path}.azureBlob.accountUrl" if path else "azureBlob.accountUrl"
            raise ConfigError(sub, "set accountUrl or connectionStringFile")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    kind: ProviderKind | None = field(
        default=None,
        metadata=key(
            "kind",
            "Wire format: openai (or compatible), azure, anthropic, gemini. Built-in providers default to their name.",
        ),
    )
    upstream: str | None = field(
        default=None,
        metadata=key("upstream", "Base URL requests are forwarded to, e.g. https://api.openai.com."),
    )
    timeout: float = field(
        default=600.0,
        metadata=key("timeout", "Longest time an upstream call may take.", duration=True),
    )


BUILTIN_PROVIDERS: Mapping[str, ProviderSettings] = {
    "openai": ProviderSettings(kind="openai", upstream="https://api.openai.com"),
    "anthropic": ProviderSettings(kind="anthropic", upstream="https://api.anthropic.com"),
    "gemini": ProviderSettings(kind="gemini", upstream="https://generativelanguage.googleapis.com"),
}


def _default_providers() -> dict[str, ProviderSettings]:
    return dict(BUILTIN_PROVIDERS)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyParams:
    exclude: tuple[str, ...] = field(
        default=("user", "metadata"),
        metadata=key("exclude", "Top-level body fields left out of the cache key."),
    )
    include: tuple[str, ...] = field(
        default=(),
        metadata=key("include", "If set, only these top-level body fields make the key (exclude is then ignored)."),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CoalesceSettings:
    enabled: bool = field(
        default=True,
        metadata=key("enabled", "Identical requests in flight at once go upstream once."),
    )
    max_wait: float = field(
        default=60.0,
        metadata=key(
            "maxWait", "Longest time a follower waits for the leader's answer before its own call.", duration=True
        ),
    )


DEFAULT_INTERCEPTED_HOSTS: Mapping[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gemini",
    "*.openai.azure.com": "azure",
}


def _default_intercepted_hosts() -> dict[str, str]:
    return dict(DEFAULT_INTERCEPTED_HOSTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransparentSettings:
    """Transparent mode: the data port is also an HTTP(S) forward proxy (see docs/transparent.md).

    `enabled`, the CA files and `iptablesPort` are read once, at start; `hosts` follows reloads.
    """

    enabled: bool = field(
        default=False,
        metadata=key(
            "enabled",
            "Also serve as a forward proxy (HTTPS_PROXY) on the data port: TLS to the listed hosts is intercepted "
            "and cached, every other host is tunnelled untouched.",
        ),
    )
    ca_cert_file: str | None = field(
        default=None,
        metadata=key("caCertFile", "PEM certificate of the CA that signs the interception certificates."),
    )
    ca_key_file: str | None = field(
        default=None,
        metadata=key("caKeyFile", "PEM private key of that CA (a mounted Secret; it never leaves the sidecar)."),
    )
    hosts: dict[str, str] = field(
        default_factory=_default_intercepted_hosts,
        metadata=key(
            "hosts",
            "Hosts whose TLS is intercepted, each to a provider name or kind; '*.' matches one DNS label. "
            "Replaces the default list.",
        ),
    )
    leaf_validity: float = field(
        default=24 * 3600.0,
        metadata=key(
            "leafValidity", "Lifetime of each interception certificate; renewed with a quarter left.", duration=True
        ),
    )
    iptables_port: int | None = field(
        default=None,
        metadata=key(
            "iptablesPort",
            "Also accept connections redirected by iptables (outbound 443 of the app) on this port of the listen "
            "host; the TLS server name chooses between interception and a tunnel to the original destination.",
            minimum=1,
        ),
    )

    def _check(self, path: str) -> None:
        sub = f"{path}." if path else ""
        if self.enabled and not (self.ca_cert_file and self.ca_key_file):
            missing = "caCertFile" if not self.ca_cert_file else "caKeyFile"
            raise ConfigError(sub + missing, "required when transparent mode is enabled")
        if self.leaf_validity < 300:
            raise ConfigError(sub + "leafValidity", "must be at least 5m")
        if self.iptables_port is not None and self.iptables_port > 65535:
            raise ConfigError(sub + "iptablesPort", f"not a port: {self.iptables_port}")
        for pattern in self.hosts:
            if not _HOST_PATTERN_RE.match(pattern):
                raise ConfigError(
                    f"{sub}hosts.{pattern}", "expected a lower-case DNS name, optionally starting with '*.'"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingSettings:
    url: str = field(
        default="http://127.0.0.1:8080/v1",
        metadata=key("url", "Base URL of an OpenAI-compatible embeddings API; /embeddings is appended."),
    )
    model: str = field(default="all-MiniLM-L6-v2", metadata=key("model", "Embedding model sent in each request."))
    api_key_file: str | None = field(
        default=None,
        metadata=key("apiKeyFile", "File holding the embeddings API key (a mounted Secret); none is sent if unset."),
    )
    timeout_ms: int = field(
        default=300,
        metadata=key("timeoutMs", "Longest an embedding may take; past it the request is a plain miss.", minimum=1),
    )
    cache_entries: int = field(
        default=10_000,
        metadata=key("cacheEntries", "Embeddings of identical texts kept in memory.", minimum=0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QdrantSettings:
    url: str = field(
        default="http://127.0.0.1:6333",
        metadata=key("url", "Qdrant server URL; :memory: runs qdrant-client's local mode in process (tests)."),
    )
    collection: str = field(default="llmcache", metadata=key("collection", "Collection the vectors go into."))
    api_key_file: str | None = field(
        default=None, metadata=key("apiKeyFile", "File holding the Qdrant API key (a mounted Secret).")
    )
    timeout_ms: int = field(default=200, metadata=key("timeoutMs", "Longest a Qdrant call may take.", minimum=1))


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticStoreSettings:
    type: SemanticStoreType = field(
        default="memory",
        metadata=key("type", "Where prompt vectors live: memory (this pod), redis (plain Redis, shared), qdrant."),
    )
    max_per_bucket: int = field(
        default=256,
        metadata=key(
            "maxPerBucket",
            "Most prompts kept per bucket (same model, parameters, system prompt, history, tenant); oldest go first.",
            minimum=1,
        ),
    )
    max_buckets: int = field(
        default=10_000, metadata=key("maxBuckets", "Most buckets the memory store keeps.", minimum=1)
    )
    redis: RedisSettings = field(default_factory=RedisSettings, metadata=key("redis", "Redis connection."))
    qdrant: QdrantSettings = field(default_factory=QdrantSettings, metadata=key("qdrant", "Qdrant connection."))


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeSettings:
    """An LLM asked whether two prompts ask for the same answer: a second gate after the verifier."""

    enabled: bool = field(
        default=False,
        metadata=key("enabled", "Ask an LLM judge before serving a semantic hit; its error or timeout means a miss."),
    )
    provider: str = field(
        default="openai",
        metadata=key("provider", "One of the configured providers: the judge is called through its upstream."),
    )
    model: str = field(
        default="gpt-4o-mini",
        metadata=key("model", "Judge model (for azure: the deployment name)."),
    )
    api_key_file: str | None = field(
        default=None,
        metadata=key(
            "apiKeyFile",
            "File holding the judge's own API key (a mounted Secret), sent in the provider's credential header;"
            " the callers' keys are never used for it.",
        ),
    )
    api_version: str = field(
        default="2024-10-21",
        metadata=key("apiVersion", "api-version query parameter, for an azure provider only."),
    )
    timeout_ms: int = field(
        default=2000,
        metadata=key("timeoutMs", "Longest a judge call may take; past it the request is a plain miss.", minimum=1),
    )
    min_similarity: float | None = field(
        default=None,
        metadata=key(
            "minSimilarity",
            "Also judge verifier-accepted candidates from this similarity up to the threshold (more recall);"
            " unset: only candidates at or above the threshold.",
            minimum=0.0,
        ),
    )
    max_calls_per_lookup: int = field(
        default=2,
        metadata=key(
            "maxCallsPerLookup", "Most judge calls one lookup may make (cached verdicts are free).", minimum=1
        ),
    )
    cache_entries: int = field(
        default=10_000,
        metadata=key("cacheEntries", "Verdicts kept in memory, by judge model and both prompts' hashes.", minimum=0),
    )

    def _check(self, path: str) -> None:
        if self.min_similarity is not None and not 0.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"{path}.minSimilarity" if path else "minSimilarity", "must be between 0 and 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticSettings:
    enabled: bool = field(
        default=False,
        metadata=key("enabled", "Answer near-duplicate chat prompts from the cache (after an exact miss)."),
    )
    mode: SemanticMode = field(
        default="serve",
        metadata=key("mode", "serve: answer semantic hits; shadow: only count and log them, to choose a threshold."),
    )
    threshold: float = field(
        default=0.80,
        metadata=key(
            "threshold",
            "Cosine similarity a stored prompt needs to be a candidate; the verifier still decides.",
            minimum=0.0,
        ),
    )
    candidates: int = field(
        default=4, metadata=key("candidates", "Most candidates checked by the verifier per lookup.", minimum=1)
    )
    embedding: EmbeddingSettings = field(
        default_factory=EmbeddingSettings, metadata=key("embedding", "Embeddings endpoint.")
    )
    store: SemanticStoreSettings = field(default_factory=SemanticStoreSettings, metadata=key("store", "Vector store."))
    judge: JudgeSettings = field(
        default_factory=JudgeSettings,
        metadata=key("judge", "Optional LLM judge: a verifier-accepted candidate is served only if it says SAME."),
    )

    def _check(self, path: str) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{path}.threshold" if path else "threshold", "must be between 0 and 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSettings:
    input: float = field(default=0.0, metadata=key("input", "US dollars per million input tokens.", minimum=0))
    output: float = field(default=0.0, metadata=key("output", "US dollars per million output tokens.", minimum=0))


# List prices (USD per million tokens) of common models, late 2026; a config entry with the
# same name replaces one, and a name matches dated variants by prefix (gpt-4o-mini-2024-07-18).
DEFAULT_PRICES: Mapping[str, PriceSettings] = {
    "gpt-4o": PriceSettings(input=2.50, output=10.00),
    "gpt-4o-mini": PriceSettings(input=0.15, output=0.60),
    "gpt-4.1": PriceSettings(input=2.00, output=8.00),
    "gpt-4.1-mini": PriceSettings(input=0.40, output=1.60),
    "gpt-4.1-nano": PriceSettings(input=0.10, output=0.40),
    "text-embedding-3-small": PriceSettings(input=0.02),
    "text-embedding-3-large": PriceSettings(input=0.13),
    "claude-opus-4": PriceSettings(input=15.00, output=75.00),
    "claude-sonnet-4": PriceSettings(input=3.00, output=15.00),
    "claude-haiku-4": PriceSettings(input=1.00, output=5.00),
    "claude-3-5-haiku": PriceSettings(input=0.80, output=4.00),
    "gemini-2.5-pro": PriceSettings(input=1.25, output=10.00),
    "gemini-2.5-flash": PriceSettings(input=0.30, output=2.50),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    traces: bool = field(
        default=True,
        metadata=key("traces", "Record a span per request; exported over OTLP when an endpoint is set."),
    )
    metrics: bool = field(default=True, metadata=key("metrics", "Keep metrics for /metrics and OTLP."))
    otlp_endpoint: str | None = field(
        default=None,
        metadata=key(
            "otlpEndpoint",
            "OTLP/HTTP endpoint, e.g. http://otel-collector:4318; OTEL_EXPORTER_OTLP_ENDPOINT works too.",
        ),
    )
    metrics_listen: str | None = field(
        default=None,
        metadata=key(
            "metricsListen",
            "Also serve /metrics (and nothing else) on this address, e.g. 0.0.0.0:9464, for a Prometheus scrape"
            " from outside the pod; the admin port stays on 127.0.0.1.",
        ),
    )
    log_format: Literal["json", "text"] = field(
        default="json",
        metadata=key("logFormat", "json: one JSON object per line, with the trace id; text: plain lines."),
    )
    prices: dict[str, PriceSettings] = field(
        default_factory=dict,
        metadata=key(
            "prices", "Prices by model name, added to (or replacing) the built-in table, for the money-saved metric."
        ),
    )

    @property
    def price_table(self) -> dict[str, PriceSettings]:
        return {**DEFAULT_PRICES, **self.prices}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    listen: str = field(default="127.0.0.1:8787", metadata=key("listen", "Data port address (host:port)."))
    admin: str = field(default="127.0.0.1:8788", metadata=key("admin", "Admin port address (host:port)."))
    ttl: float = field(
        default=3600.0,
        metadata=key(
            "ttl", "Default time-to-live of an entry: seconds, or a duration such as 1h or 30m.", duration=True
        ),
    )
    namespace: str = field(default="default", metadata=key("namespace", "Prefix that isolates this cache's entries."))
    flush: str = field(
        default="",
        metadata=key("flush", "Changing this value empties this cache's namespace: it is part of every key."),
    )
    isolation: Isolation = field(
        default="credential",
        metadata=key(
            "isolation",
            "credential: entries are also keyed by a hash of the caller's API key; namespace: shared by all callers.",
        ),
    )
    max_body_bytes: int = field(
        default=10 * 2**20,
        metadata=key("maxBodyBytes", "Larger request bodies pass through uncached.", minimum=1),
    )
    replay: ReplayMode = field(
        default="fast",
        metadata=key("replay", "How a cached stream is replayed: fast, or paced with the original gaps."),
    )
    backend: BackendSettings = field(default_factory=BackendSettings, metadata=key("backend", "Cache storage."))
    providers: dict[str, ProviderSettings] = field(
        default_factory=_default_providers,
        metadata=key("providers", "Providers by the name used in the path: /<name>/... is forwarded to its upstream."),
    )
    key_params: KeyParams = field(
        default_factory=KeyParams, metadata=key("keyParams", "Which body fields make the key.")
    )
    coalesce: CoalesceSettings = field(
        default_factory=CoalesceSettings, metadata=key("coalesce", "Single-flight of identical requests.")
    )
    semantic: SemanticSettings = field(
        default_factory=SemanticSettings,
        metadata=key("semantic", "Semantic caching: near-duplicate prompts answered from the cache, verified."),
    )
    telemetry: TelemetrySettings = field(
        default_factory=TelemetrySettings, metadata=key("telemetry", "Traces, metrics and logs.")
    )
    transparent: TransparentSettings = field(
        default_factory=TransparentSettings,
        metadata=key("transparent", "Forward-proxy mode with TLS interception for LLM hosts."),
    )

    def _check(self, path: str) -> None:
        """Check addresses and names, and fill built-in provider defaults (once, at parse)."""
        _check_address(self.listen, "listen")
        _check_address(self.admin, "admin")
        if self.telemetry.metrics_listen:
            _check_address(self.telemetry.metrics_listen, "telemetry.metricsListen")
        if not _NAME_RE.match(self.namespace):
            raise ConfigError("namespace", "use letters, digits, '.', '_' and '-' (at most 63)")
        resolved: dict[str, ProviderSettings] = {}
        for name, provider in self.providers.items():
            sub = f"providers.{name}"
            if not _NAME_RE.match(name):
                raise ConfigError(sub, "a provider name is used in the URL path: letters, digits, '.', '_', '-'")
            builtin = BUILTIN_PROVIDERS.get(name)
            kind = provider.kind or (builtin.kind if builtin else None)
            upstream = provider.upstream or (builtin.upstream if builtin else None)
            if kind is None:
                raise ConfigError(f"{sub}.kind", "required for a provider that is not built in")
            if upstream is None:
                raise ConfigError(f"{sub}.upstream", "required for a provider that is not built in")
            if not upstream.startswith(("http://", "https://")):
                raise ConfigError(f"{sub}.upstream", f"expected an http(s) URL, got {upstream!r}")
            resolved[name] = replace(provider, kind=kind, upstream=upstream.rstrip("/"))
        object.__setattr__(self, "providers", resolved)
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


T = TypeVar("T")


def parse(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping, got {_type_name(data)}")
    hints = get_type_hints(cls)
    by_key = {f.metadata["key"]: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name, raw in data.items():
        sub = f"{path}.{name}" if path else str(name)
        fld = by_key.get(name)
        if fld is None:
            close = difflib.get_close_matches(str(name), list(by_key), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(by_key))}"
            raise ConfigError(sub, "unknown key" + hint)
        values[fld.name] = _value(hints[fld.name], raw, sub, fld.metadata)
    result = cls(**values)
    check = getattr(result, "_check", None)
    if check is not None:
        check(path)
    return result


def _value(tp: Any, raw: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in _UNIONS:
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, raw, path, meta)
    if raw is None:
        raise ConfigError(path, "must not be null")
    if origin is Literal:
        if raw not in args:
            raise ConfigError(path, f"must be one of {', '.join(map(str, args))}, got {raw!r}")
        return raw
    if isinstance(tp, type) and is_dataclass(tp):
        return parse(tp, raw, path)
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_type_name(raw)}")
        return {str(k): _value(args[1], v, f"{path}.{k}", {}) for k, v in raw.items()}
    if origin is tuple:
        if not isinstance(raw, list):
            raise ConfigError(path, f"expected a list, got {_type_name(raw)}")
        return tuple(_value(args[0], v, f"{path}[{i}]", {}) for i, v in enumerate(raw))
    value: Any
    if tp is float and meta.get("duration"):
        value = parse_duration(raw, path)
    elif tp is bool:
        if not isinstance(raw, bool):
            raise ConfigError(path, f"expected true or false, got {raw!r}")
        value = raw
    elif tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(path, f"expected an integer, got {raw!r}")
        value = raw
    elif tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ConfigError(path, f"expected a number, got {raw!r}")
        value = float(raw)
    elif tp is str:
        if not isinstance(raw, str):
            raise ConfigError(path, f"expected a string, got {_type_name(raw)}")
        value = raw
    else:  # pragma: no cover - a model type parse() does not know is a bug here
        raise TypeError(f"{path}: unsupported type {tp!r}")
    minimum = meta.get("minimum")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def parse_duration(raw: Any, path: str = "") -> float:
    """Seconds from a number or a duration string: 90, 1.5, "90s", "30m", "1h30m", "500ms"."""
    if isinstance(raw, bool):
        raise ConfigError(path, f"expected a duration, got {raw!r}")
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    elif isinstance(raw, str) and (m := _DURATION_RE.match(raw.strip())) and any(m.groups()):
        h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s + ms / 1000
    else:
        raise ConfigError(path, f"expected seconds or a duration such as 30s, 5m, 1h; got {raw!r}")
    if seconds < 0:
        raise ConfigError(path, f"must not be negative, got {raw!r}")
    return seconds


def _type_name(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _check_address(value: str, path: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(path, f"expected host:port, got {value!r}")


def load(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply `LLMCACHE_*` overrides, and parse."""
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from exc
    return loads(text, f"config file {path}", env)


def loads(text: str, origin: str, env: Mapping[str, str] | None = None) -> Settings:
    """Parse YAML `text` (named `origin` in errors), apply `LLMCACHE_*` overrides, and parse."""
    data: dict[str, Any] = {}
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{origin} is not valid YAML: {exc}") from exc
    if loaded is not None:
        if not isinstance(loaded, dict):
            raise ConfigError("", f"{origin} must hold a mapping")
        data = loaded
    environment = os.environ if env is None else env
    try:
        return parse(Settings, apply_env(data, environment))
    except ConfigError as exc:
        # Name the variable when an environment override is what is wrong.
        variable = ENV_PREFIX + "_".join(_snake(part) for part in exc.path.split("."))
        if exc.path and variable in environment:
            raise ConfigError(exc.path, f"{exc.message} (set by {variable})") from exc
        raise


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Override single settings from `LLMCACHE_<PATH>` variables.

    The path is the key path in upper snake case: `LLMCACHE_TTL=600`,
    `LLMCACHE_BACKEND_TYPE=redis`, `LLMCACHE_BACKEND_REDIS_URL=redis://...`,
    `LLMCACHE_PROVIDERS_OPENAI_UPSTREAM=http://...`. Values are read as YAML scalars.
    """
    names = _env_paths(Settings, data, ())
    result: dict[str, Any] = _deep_copy(data)
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _NOT_SETTINGS or var.startswith("LLMCACHE_OPERATOR_"):
            continue
        target = names.get(var)
        if target is None:
            close = difflib.get_close_matches(var, list(names), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(var, "unknown environment setting" + hint)
        node = result
        for part in target[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(".".join(target), "cannot override inside a non-mapping value")
        try:
            node[target[-1]] = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise ConfigError(var, f"not a valid value: {exc}") from exc
    return result


def _env_paths(cls: type, data: Any, prefix: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    hints = get_type_hints(cls)
    out: dict[str, tuple[str, ...]] = {}
    data = data if isinstance(data, Mapping) else {}
    for fld in fields(cls):
        path = (*prefix, fld.metadata["key"])
        tp = hints[fld.name]
        if get_origin(tp) in _UNIONS:
            tp = next(a for a in get_args(tp) if a is not type(None))
        if is_dataclass(tp):
            out.update(_env_paths(tp, data.get(path[-1]), path))  # type: ignore[arg-type]
        elif get_origin(tp) is dict and is_dataclass(get_args(tp)[1]):
            value_cls = get_args(tp)[1]
            names = set(data.get(path[-1]) or ()) | set(BUILTIN_PROVIDERS)
            for name in names:
                out.update(_env_paths(value_cls, (data.get(path[-1]) or {}).get(name), (*path, name)))
        else:
            out[ENV_PREFIX + "_".join(_snake(p) for p in path)] = path
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).replace("-", "_").upper()


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    return data

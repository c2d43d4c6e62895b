"""The sidecar's configuration: one model (frozen dataclasses) for the file, the environment,
the operator's ConfigMap and the CRD.

The settings live by area (`root`, `backends`, `semantic`, `transparent`, `telemetry`,
`policy`),
each field declared once with `setting(...)` (`fields`). The walkers read those fields
through `settings_of`: `parsing` (`parse`: a mapping into settings, errors with the key
path), `env` (`LLMCACHE_*` overrides), `loading` (`load`: the file), `dump` (`to_mapping`:
settings back to a mapping, for the operator's ConfigMap) and `schema` (`object_schema`:
the CRD's OpenAPI schema). `secrets` reads the files that hold credentials.

`CacheSettings` is what a cache does wherever it is configured: the sidecar's `Settings`
and the operator's LLMCache spec both extend it. The spec sees it through a `View`
(`parse` and `object_schema` take one): what the operator sets is left out, secret files
are Secret references.

This face is what the rest of the sidecar, and the operator, import: the modules
behind it are private (`.importlinter` says so).
"""

from llmcache_sidecar.config.backends import (
    AzureBlobSettings,
    BackendSettings,
    BackendType,
    DiskSettings,
    DualSettings,
    GcsSettings,
    MemorySettings,
    RedisSettings,
    RemoteBackendType,
    S3AddressingStyle,
    S3Settings,
    SentinelSettings,
)
from llmcache_sidecar.config.dump import to_mapping
from llmcache_sidecar.config.env import ENV_PREFIX, apply_env, variable_for
from llmcache_sidecar.config.fields import (
    ConfigError,
    Setting,
    View,
    check_address,
    is_settings_class,
    parse_duration,
    setting,
    settings_of,
    unwrap,
)
from llmcache_sidecar.config.loading import load, loads
from llmcache_sidecar.config.parsing import parse
from llmcache_sidecar.config.policy import (
    CONDITION_VARIABLES,
    Recording,
    Rule,
    RuleAction,
    activation,
    compile_condition,
)
from llmcache_sidecar.config.root import (
    BUILTIN_PROVIDERS,
    CacheSettings,
    CoalesceSettings,
    Isolation,
    KeyParams,
    ProviderKind,
    ProviderSettings,
    ReplayMode,
    Settings,
    resolve_provider,
)
from llmcache_sidecar.config.schema import JSONSchema, duration_text, object_schema
from llmcache_sidecar.config.secrets import SecretFileError, read_secret
from llmcache_sidecar.config.semantic import (
    EmbeddingSettings,
    JudgeSettings,
    QdrantSettings,
    SemanticMode,
    SemanticSettings,
    SemanticStoreSettings,
    SemanticStoreType,
)
from llmcache_sidecar.config.telemetry import DEFAULT_PRICES, PriceSettings, TelemetrySettings
from llmcache_sidecar.config.transparent import DEFAULT_INTERCEPTED_HOSTS, TransparentSettings

__all__ = [
    "BUILTIN_PROVIDERS",
    "CONDITION_VARIABLES",
    "DEFAULT_INTERCEPTED_HOSTS",
    "DEFAULT_PRICES",
    "ENV_PREFIX",
    "AzureBlobSettings",
    "BackendSettings",
    "BackendType",
    "CacheSettings",
    "CoalesceSettings",
    "ConfigError",
    "DiskSettings",
    "DualSettings",
    "EmbeddingSettings",
    "GcsSettings",
    "Isolation",
    "JSONSchema",
    "JudgeSettings",
    "KeyParams",
    "MemorySettings",
    "PriceSettings",
    "ProviderKind",
    "ProviderSettings",
    "QdrantSettings",
    "Recording",
    "RedisSettings",
    "RemoteBackendType",
    "ReplayMode",
    "Rule",
    "RuleAction",
    "S3AddressingStyle",
    "S3Settings",
    "SecretFileError",
    "SemanticMode",
    "SemanticSettings",
    "SemanticStoreSettings",
    "SemanticStoreType",
    "SentinelSettings",
    "Setting",
    "Settings",
    "TelemetrySettings",
    "TransparentSettings",
    "View",
    "activation",
    "apply_env",
    "check_address",
    "compile_condition",
    "duration_text",
    "is_settings_class",
    "load",
    "loads",
    "object_schema",
    "parse",
    "parse_duration",
    "read_secret",
    "resolve_provider",
    "setting",
    "settings_of",
    "to_mapping",
    "unwrap",
    "variable_for",
]

"""The LLMCache resource: its spec (the sidecar's settings plus what only Kubernetes needs) and status.

One model: `LLMCacheSpec` (`resource`) extends the sidecar's `CacheSettings`, so every
setting the two share is declared once and reaches the CRD with `make crds`. How the
sidecar's settings look in the spec (what the operator sets is not offered, secrets are
referenced, never copied) is `view`, read from each field's declaration. `parse`
(`cache`) turns a raw spec into a `Cache`: typed, checked, with the exact `Settings`
the sidecar will read. `status` is what the operator writes back.
"""

from llmcache_operator.spec.cache import (
    CA_DIR,
    CONFIG_DIR,
    IPTABLES_PORT,
    SALT_DIR,
    SALT_KEY,
    SIDECAR_HOST,
    Cache,
    config_map_name,
    parse,
)
from llmcache_operator.spec.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    QUANTITY_PATTERN,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    Interception,
    LabelSelector,
    LabelSelectorRequirement,
    LLMCacheSpec,
    Mode,
    NativeSidecarMode,
    PullPolicy,
    SecretKeyRef,
    SidecarResources,
    SidecarSpec,
)
from llmcache_operator.spec.status import Condition, LastFlush, Savings, Status
from llmcache_operator.spec.view import SECRET_ROOT, KubernetesView, SecretMount, is_secret_file, secret_ref_key

__all__ = [
    "API_VERSION",
    "CA_DIR",
    "CONFIG_DIR",
    "GROUP",
    "IPTABLES_PORT",
    "KIND",
    "PLURAL",
    "QUANTITY_PATTERN",
    "SALT_DIR",
    "SALT_KEY",
    "SECRET_ROOT",
    "SHORT_NAMES",
    "SIDECAR_HOST",
    "SINGULAR",
    "VERSION",
    "Cache",
    "Condition",
    "Interception",
    "KubernetesView",
    "LLMCacheSpec",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LastFlush",
    "Mode",
    "NativeSidecarMode",
    "PullPolicy",
    "Savings",
    "SecretKeyRef",
    "SecretMount",
    "SidecarResources",
    "SidecarSpec",
    "Status",
    "config_map_name",
    "is_secret_file",
    "parse",
    "secret_ref_key",
]

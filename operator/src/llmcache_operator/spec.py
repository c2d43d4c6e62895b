"""The LLMCache resource: its spec (the sidecar's settings plus what only Kubernetes needs) and status.

One model: every part of the spec that the sidecar reads *is* the sidecar's own
dataclass (`llmcache_sidecar.config`), so `config.parse` checks it and
`config.object_schema` writes its part of the CRD. Where the resource must differ
from the sidecar's file, the spec class is *derived* from the sidecar's class by
dropping, replacing or adding fields (`derive`), never by copying a field:

- `listen`/`admin` are not in the spec: ports live under `sidecar` and the sidecar
  always binds to 127.0.0.1 in the pod.
- `providers` is a list of names (`[openai, anthropic]`); upstreams that are not
  built in, or changes to a built-in one, go under `customProviders`.
- Secrets are referenced, never copied: `backend.redis.passwordSecretRef` becomes
  a Secret volume in the pod and `passwordFile` in the sidecar's config; so do the
  semantic block's keys (`semantic.judge.apiKeySecretRef`, `semantic.embedding...`).
- `namespace` (the cache's key prefix) defaults to the resource's Kubernetes namespace.

`parse` turns a raw spec into a `Cache`: typed, checked, with the exact `Settings`
the sidecar will read. Errors are `ConfigError`s whose path starts at `spec.`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Literal, get_type_hints

from llmcache_sidecar import config
from llmcache_sidecar.config import (
    BUILTIN_PROVIDERS,
    BackendSettings,
    ConfigError,
    ProviderSettings,
    SemanticSettings,
    Settings,
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

SIDECAR_HOST = "127.0.0.1"
SECRET_ROOT = "/var/run/secrets/llmcache"
"""Where referenced Secrets are mounted in the sidecar, one directory per reference."""
CA_DIR = f"{SECRET_ROOT}/ca"
"""Where a transparent cache's CA (tls.crt, tls.key) is mounted in the sidecar, and only there."""
SALT_DIR = f"{SECRET_ROOT}/tenant-salt"
SALT_KEY = "salt"
"""Where the cache's tenant salt (its Secret's key `salt`) is mounted in the sidecar, and only there."""
IPTABLES_PORT = 15001
"""The sidecar's port for connections the iptables variant redirects."""

# Kubernetes' own pattern for resource.Quantity (apimachinery's OpenAPI "quantity").
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_MAP = {"additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}}
_PORT = {"maximum": 65535}

FieldDef = tuple[str, Any, Any]
"""(name, type, `setting(...)`) as `make_dataclass` takes them; `setting()` is typed as its default."""


def derive(
    base: type,
    name: str,
    doc: str,
    *,
    drop: Sequence[str] = (),
    replace: Mapping[str, Sequence[FieldDef]] | None = None,
    first: Sequence[FieldDef] = (),
    last: Sequence[FieldDef] = (),
    check: Callable[[Any, str], None] | None = None,
) -> type[Any]:
    """A frozen dataclass with `base`'s fields (same types, defaults and metadata), edited.

    `replace` maps a field of `base` to the fields that take its place, in its place.
    `check(self, path)` becomes the `_check` hook that `config.parse` calls.
    """
    replace = replace or {}
    hints = get_type_hints(base)
    unknown = (set(drop) | set(replace)) - {f.name for f in fields(base)}
    if unknown:
        raise TypeError(f"{base.__name__} has no fields {sorted(unknown)}")
    defs: list[FieldDef] = list(first)
    for fld in fields(base):
        if fld.name in drop:
            continue
        if fld.name in replace:
            defs.extend(replace[fld.name])
            continue
        copy: dataclasses.Field[Any] = field(
            default=fld.default, default_factory=fld.default_factory, metadata=fld.metadata
        )
        defs.append((fld.name, hints[fld.name], copy))
    defs.extend(last)
    namespace: dict[str, Any] = {"__doc__": doc}
    if check is not None:
        namespace["_check"] = check
    cls = make_dataclass(name, defs, namespace=namespace, frozen=True, slots=True, kw_only=True)
    cls.__module__ = __name__
    return cls


# --- Kubernetes-only parts ---------------------------------------------------------------


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


# --- The spec, derived from the sidecar's settings ----------------------------------------

SECRET_REF_KEYS: dict[str, str] = {}
"""The sidecar's `xFile` key -> the spec's `xSecretRef` key, for every one derived."""


def _secret_ref_field(fld: dataclasses.Field[Any]) -> FieldDef:
    """`xFile: str | None` (a file the sidecar reads) becomes `xSecretRef: SecretKeyRef | None`."""
    file_key: str = fld.metadata["key"]
    doc = f"Secret key mounted into the sidecar and read as its {file_key}. {fld.metadata['doc']}"
    ref_key = file_key.removesuffix("File") + "SecretRef"
    SECRET_REF_KEYS[file_key] = ref_key
    name = fld.name.removesuffix("_file") + "_secret_ref"
    return (name, SecretKeyRef | None, setting(ref_key, doc, default=None))


def with_secret_refs(cls: type) -> type:
    """`cls`, or a class derived from it where every `*File` setting, at any depth, is a Secret reference.

    A secret is never written into the spec or the ConfigMap: the sidecar reads it from a
    file, and the spec says which Secret key that file is (`passwordSecretRef`,
    `accessKeyIdSecretRef`, `credentialsSecretRef`, ...). Classes without such settings
    are used as they are.
    """
    replace: dict[str, Sequence[FieldDef]] = {}
    for s in config.settings_of(cls):
        if s.name.endswith("_file"):
            replace[s.name] = [_secret_ref_field(s.field)]
            continue
        if not config.is_settings_class(s.type):
            continue
        derived = with_secret_refs(s.type)
        if derived is s.type:
            continue
        if s.optional:
            replace[s.name] = [(s.name, derived | None, field(default=None, metadata=s.meta))]
        else:
            replace[s.name] = [(s.name, derived, field(default_factory=derived, metadata=s.meta))]
    if not replace:
        return cls
    name = cls.__name__.removesuffix("Settings") + "Spec"
    return derive(cls, name, cls.__doc__ or "", replace=replace)


BackendSpec = with_secret_refs(BackendSettings)
SemanticSpec = with_secret_refs(SemanticSettings)


TransparentSpec = derive(
    TransparentSettings,
    "TransparentSpec",
    "Transparent mode (spec.mode: transparent): which hosts are intercepted, and for how long a leaf lives.",
    # The operator sets these: it issues the CA, mounts it, and runs the iptables variant.
    drop=["enabled", "ca_cert_file", "ca_key_file", "iptables_port"],
)
Mode = Literal["baseURL", "transparent"]
Interception = Literal["proxy", "iptables"]


def _check_spec(self: Any, path: str) -> None:
    if self.interception == "iptables" and self.mode != "transparent":
        raise ConfigError(f"{path}.interception", "iptables needs mode: transparent")
    if self.mode == "transparent":
        _check_intercepted_hosts(self.transparent.hosts, f"{path}.transparent.hosts")
    names: tuple[str, ...] = self.providers
    custom: Mapping[str, ProviderSettings] = self.custom_providers
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{path}.providers[{i}]", f"{name!r} is listed twice")
        seen.add(name)
        if name not in BUILTIN_PROVIDERS and name not in custom:
            raise ConfigError(
                f"{path}.providers[{i}]",
                f"{name!r} is not built in ({', '.join(BUILTIN_PROVIDERS)}); define it under customProviders.{name}",
            )
    for name, provider in custom.items():
        sub = f"{path}.customProviders.{name}"
        if name not in seen:
            raise ConfigError(sub, "not listed in providers")
        if name not in BUILTIN_PROVIDERS:  # a change to a built-in one is checked by the sidecar's settings
            config.resolve_provider(name, provider, sub)


def _check_intercepted_hosts(hosts: Mapping[str, str], path: str) -> None:
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


LLMCacheSpec = derive(
    Settings,
    "LLMCacheSpec",
    "Which pods get the llmcache sidecar, and how it caches their LLM calls.",
    # The tenant salt is the operator's: one Secret per cache that it creates, a file in the pod.
    drop=["listen", "admin", "tenant_salt_file"],
    first=[
        (
            "pod_selector",
            LabelSelector | None,
            setting(
                "podSelector",
                "Pods in this namespace whose labels match get the sidecar. Without it, only pods annotated"
                " llmcache.dev/inject: <name>. {} matches every pod.",
                default=None,
            ),
        )
    ],
    replace={
        "namespace": [
            (
                "namespace",
                str | None,
                setting(
                    "namespace",
                    "Prefix that isolates this cache's entries; defaults to the resource's Kubernetes namespace.",
                    default=None,
                ),
            )
        ],
        "backend": [
            (
                "backend",
                BackendSpec,
                setting("backend", "Cache storage.", factory=BackendSpec, schema={"default": {}}),
            )
        ],
        "semantic": [
            (
                "semantic",
                SemanticSpec,
                setting(
                    "semantic",
                    "Semantic caching: near-duplicate prompts answered from the cache, verified.",
                    factory=SemanticSpec,
                ),
            )
        ],
        "providers": [
            (
                "providers",
                tuple[str, ...],
                setting(
                    "providers",
                    "Providers the sidecar serves at /<name>/...; built in: "
                    + ", ".join(BUILTIN_PROVIDERS)
                    + ". Others are defined under customProviders.",
                    default=tuple(BUILTIN_PROVIDERS),
                ),
            ),
            (
                "custom_providers",
                dict[str, ProviderSettings],
                setting(
                    "customProviders",
                    "Upstreams by provider name: OpenAI-compatible servers, Azure OpenAI resources, or changes to"
                    " a built-in provider. Each must also be listed in providers.",
                    factory=dict,
                ),
            ),
        ],
        "transparent": [
            (
                "mode",
                Mode,
                setting(
                    "mode",
                    "baseURL: app containers get OPENAI_BASE_URL and the like pointing at the sidecar."
                    " transparent: also HTTPS_PROXY and a trust bundle with a CA the operator issues for this"
                    " cache, so that apps calling https://api.openai.com directly are cached too"
                    " (docs/transparent.md).",
                    default="baseURL",
                ),
            ),
            (
                "interception",
                Interception,
                setting(
                    "interception",
                    "How transparent mode reaches the sidecar. proxy: through HTTPS_PROXY. iptables: an init"
                    " container (NET_ADMIN, NET_RAW, root) also redirects the app's outbound port 443 to the"
                    " sidecar, for apps that ignore proxy variables; refused where Pod Security forbids it.",
                    default="proxy",
                ),
            ),
            (
                "transparent",
                TransparentSpec,
                setting(
                    "transparent", "Settings of transparent mode.", factory=TransparentSpec, schema={"default": {}}
                ),
            ),
        ],
    },
    last=[
        (
            "sidecar",
            SidecarSpec,
            setting("sidecar", "The injected sidecar container.", factory=SidecarSpec),
        )
    ],
    check=_check_spec,
)


# --- Status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str = setting("type", "Ready, BackendReachable, InterceptionCA or InterceptionAllowed.", default="")
    status: Literal["True", "False", "Unknown"] = setting("status", "True, False or Unknown.", default="Unknown")
    reason: str = setting("reason", "One CamelCase word for machines.", default="")
    message: str = setting("message", "What happened, for people.", default="")
    last_transition_time: str = setting(
        "lastTransitionTime", "When status last changed.", default="", schema={"format": "date-time"}
    )
    observed_generation: int | None = setting(
        "observedGeneration", "The generation this condition is about.", default=None
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LastFlush:
    value: str = setting("value", "The spec.flush value that was rendered.", default="")
    time: str = setting("time", "When the operator rendered it.", default="", schema={"format": "date-time"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    conditions: tuple[Condition, ...] = setting(
        "conditions",
        "Ready and BackendReachable; InterceptionCA (and InterceptionAllowed) in transparent mode.",
        default=(),
    )
    observed_generation: int | None = setting(
        "observedGeneration", "The generation the operator last acted on.", default=None
    )
    config_hash: str | None = setting("configHash", "Hash of the sidecar configuration in the ConfigMap.", default=None)
    config_map: str | None = setting("configMap", "The ConfigMap the sidecars mount.", default=None)
    injected_pods: int | None = setting("injectedPods", "Running pods that carry this cache's sidecar.", default=None)
    last_flush: LastFlush | None = setting("lastFlush", "The last spec.flush value rendered, and when.", default=None)


# --- Parsing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretMount:
    """A referenced Secret key, as a file the sidecar reads."""

    ref: SecretKeyRef
    volume: str
    directory: str
    file: str

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.file}"


@dataclass(frozen=True, slots=True)
class Cache:
    """One LLMCache, understood: what reconcile renders and what injection adds to pods."""

    name: str
    namespace: str
    settings: Settings
    """Exactly what the sidecar reads: secret references already turned into mounted file paths."""
    pod_selector: LabelSelector | None
    sidecar: SidecarSpec
    secrets: tuple[SecretMount, ...]
    mode: Mode = "baseURL"
    interception: Interception = "proxy"
    reconciled: bool = True
    """Its status has a configHash: the operator has written its ConfigMap. Pods are injected only then."""

    @property
    def config_map(self) -> str:
        return config_map_name(self.name)

    @property
    def transparent(self) -> bool:
        return self.mode == "transparent"

    @property
    def ca_secret(self) -> str:
        """The Secret holding this cache's interception CA (transparent mode)."""
        return f"llmcache-{self.name}-ca"

    @property
    def salt_secret(self) -> str:
        """The Secret holding this cache's tenant salt, made once by the operator (see reconcile.salt_secret)."""
        return f"llmcache-{self.name}-salt"


def config_map_name(cache_name: str) -> str:
    return f"llmcache-{cache_name}"


def parse(raw: Mapping[str, Any] | None, *, name: str, namespace: str, secret_root: str = SECRET_ROOT) -> Cache:
    """Check a raw spec and build the `Cache` it describes; `ConfigError` names the field.

    `secret_root` is where referenced Secrets are found as files: the pod's mount
    directory by default, a scratch directory when the operator itself probes the backend.
    """
    spec: Any = config.parse(LLMCacheSpec, _quantities_as_strings(raw), "spec")
    sidecar: SidecarSpec = spec.sidecar
    data = config.to_mapping(spec)
    for k8s_only in ("podSelector", "sidecar", "customProviders", "mode", "interception"):
        del data[k8s_only]
    if spec.mode == "transparent":
        data["transparent"] |= {"enabled": True, "caCertFile": f"{CA_DIR}/tls.crt", "caKeyFile": f"{CA_DIR}/tls.key"}
        if spec.interception == "iptables":
            data["transparent"]["iptablesPort"] = IPTABLES_PORT
    data["listen"] = f"{SIDECAR_HOST}:{sidecar.port}"
    data["admin"] = f"{SIDECAR_HOST}:{sidecar.admin_port}"
    data["namespace"] = spec.namespace if spec.namespace is not None else namespace
    data["providers"] = {
        provider: config.to_mapping(spec.custom_providers.get(provider, ProviderSettings()))
        for provider in spec.providers
    }
    secrets = _mount_secret_refs(data["backend"], [], secret_root)
    secrets += _mount_secret_refs(data["semantic"], ["semantic"], secret_root)
    try:
        settings = config.parse(Settings, data, "spec")
    except ConfigError as exc:
        # Settings' own checks speak of the sidecar's file: name what the user wrote instead.
        path = exc.path if exc.path.startswith("spec") else f"spec.{exc.path}".rstrip(".")
        raise ConfigError(_spec_words(path), _spec_words(exc.message)) from exc
    return Cache(
        name=name,
        namespace=namespace,
        settings=settings,
        pod_selector=spec.pod_selector,
        sidecar=sidecar,
        secrets=tuple(secrets),
        mode=spec.mode,
        interception=spec.interception,
    )


def _mount_secret_refs(node: dict[str, Any], path: list[str], root: str) -> list[SecretMount]:
    """Replace each `xSecretRef` under `node` by the `xFile` path where its Secret is mounted."""
    mounts: list[SecretMount] = []
    for key in list(node):
        value = node[key]
        if key.endswith("SecretRef"):
            del node[key]
            if value is None:
                continue
            stem = key.removesuffix("SecretRef")
            slug = "-".join(_kebab(part) for part in [*path, stem])
            ref = SecretKeyRef(name=value["name"], key=value["key"])
            mount = SecretMount(ref, f"llmcache-{slug}", f"{root}/{slug}", _kebab(stem))
            mounts.append(mount)
            node[f"{stem}File"] = mount.path
        elif isinstance(value, dict):
            mounts += _mount_secret_refs(value, [*path, key], root)
    return mounts


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def _spec_words(text: str) -> str:
    return re.sub(r"\b\w+File\b", lambda m: SECRET_REF_KEYS.get(m.group(0), m.group(0)), text)


def _quantities_as_strings(raw: Mapping[str, Any] | None) -> Any:
    """`cpu: 1` is a valid quantity in YAML; the model keeps quantities as strings."""
    if not isinstance(raw, Mapping):
        return raw
    sidecar = raw.get("sidecar")
    resources = sidecar.get("resources") if isinstance(sidecar, Mapping) else None
    if not isinstance(sidecar, Mapping) or not isinstance(resources, Mapping):
        return raw
    fixed = {
        part: (
            {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in values.items()}
            if isinstance(values, Mapping)
            else values
        )
        for part, values in resources.items()
    }
    return {**raw, "sidecar": {**sidecar, "resources": fixed}}

"""One LLMCache understood: its spec checked and turned into the exact `Settings` its sidecars read.

`parse` reads the raw spec through the Kubernetes view (secrets as references, mounted
as files), then writes the sidecar's settings: the shared ones as they are, and the
parts the operator decides (ports on 127.0.0.1, the namespace, the providers' upstreams,
transparent mode's CA). Errors are `ConfigError`s whose path starts at `spec.`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmcache_operator.spec.resource import Interception, LabelSelector, LLMCacheSpec, Mode, SidecarSpec
from llmcache_operator.spec.view import SECRET_ROOT, KubernetesView, SecretMount, in_spec_words, is_secret_file
from llmcache_sidecar import config
from llmcache_sidecar.config import CacheSettings, ConfigError, ProviderSettings, Settings

SIDECAR_HOST = "127.0.0.1"
MAX_NAME = 63
"""An LLMCache's name is the `llmcache.dev/cache` label of its ConfigMap and Secrets: a label value."""
CONFIG_DIR = "/etc/llmcache"
"""Where the sidecar's ConfigMap is mounted (and, for transparent mode, the apps' trust bundle below it)."""
CA_DIR = f"{SECRET_ROOT}/ca"
"""Where a transparent cache's CA (tls.crt, tls.key) is mounted in the sidecar, and only there."""
SALT_DIR = f"{SECRET_ROOT}/tenant-salt"
SALT_KEY = "salt"
"""Where the cache's tenant salt (its Secret's key `salt`) is mounted in the sidecar, and only there."""
IPTABLES_PORT = 15001
"""The sidecar's port for connections the iptables variant redirects."""


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
    uid: str = ""
    """metadata.uid of the LLMCache (known to the operator's index; events name it)."""
    refused: str | None = None
    """Why pods must not get this cache although it parses: its status says it is not allowed, or
    the operator has not yet checked the Secrets this generation references (`secret_refs`)."""

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
    if len(name) > MAX_NAME:
        raise ConfigError(
            "metadata.name", f"at most {MAX_NAME} characters: it is a label value on the objects made for it"
        )
    view = KubernetesView(secret_root)
    spec = config.parse(LLMCacheSpec, _quantities_as_strings(raw), "spec", view)
    shared = {s.key for s in config.settings_of(CacheSettings)}
    data = {key: value for key, value in config.to_mapping(spec).items() if key in shared}
    data["transparent"] = config.to_mapping(spec.transparent)
    if spec.mode == "transparent":
        data["transparent"] |= {"enabled": True, "caCertFile": f"{CA_DIR}/tls.crt", "caKeyFile": f"{CA_DIR}/tls.key"}
        if spec.interception == "iptables":
            data["transparent"]["iptablesPort"] = IPTABLES_PORT
    data["listen"] = f"{SIDECAR_HOST}:{spec.sidecar.port}"
    data["admin"] = f"{SIDECAR_HOST}:{spec.sidecar.admin_port}"
    data["namespace"] = spec.namespace if spec.namespace is not None else namespace
    data["providers"] = {
        provider: config.to_mapping(spec.custom_providers.get(provider, ProviderSettings()))
        for provider in spec.providers
    }
    try:
        settings = config.parse(Settings, data, "spec")
    except ConfigError as exc:
        # Settings' own checks speak of the sidecar's file: name what the user wrote instead.
        path = exc.path if exc.path.startswith("spec") else f"spec.{exc.path}".rstrip(".")
        raise ConfigError(in_spec_words(path), in_spec_words(exc.message)) from exc
    _check_disk_path(settings)
    return Cache(
        name=name,
        namespace=namespace,
        settings=settings,
        pod_selector=spec.pod_selector,
        sidecar=spec.sidecar,
        secrets=tuple(view.mounts[path] for path in _secret_files(spec) if path in view.mounts),
        mode=spec.mode,
        interception=spec.interception,
    )


def _check_disk_path(settings: Settings) -> None:
    """The disk backend's directory becomes a volume mount of the sidecar: it must be one the pod accepts.

    A relative path, or one that is, contains or lies inside a directory the operator mounts
    (the config, the Secrets), would make the API server refuse the injected pod (mount paths
    must be unique) or the kubelet fail its container: the pod, not just its cache, would not run.
    """
    backend = settings.backend
    if (backend.dual.l2 if backend.type == "dual" else backend.type) != "disk":
        return
    path, where = backend.disk.path, "spec.backend.disk.path"
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
        raise ConfigError(where, f"expected an absolute, normalized directory other than /, got {path!r}")
    for reserved in (CONFIG_DIR, SECRET_ROOT):
        if path == reserved or path.startswith(reserved + "/") or reserved.startswith(path + "/"):
            raise ConfigError(where, f"{path!r} overlaps {reserved}, where the operator mounts the sidecar's files")


def _secret_files(settings: object) -> Iterator[str]:
    """Every secret file set under `settings`, in declaration order: the mounts' order in the pod."""
    for s in config.settings_of(type(settings)):
        value = getattr(settings, s.name)
        if is_secret_file(s) and isinstance(value, str):
            yield value
        elif config.is_settings_class(type(value)):
            yield from _secret_files(value)


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

"""How the sidecar's settings appear in an LLMCache: secrets referenced, never copied.

The spec shares the sidecar's settings classes; this view is what differs, decided by
each field's own declaration rather than by lists of names:

- a setting the operator sets in every pod (`operator_owned`: the interception CA's
  files, transparent mode's switch and redirect port) is not offered;
- a secret file (`xFile`: a file holding a credential) is a reference to a Secret key
  (`xSecretRef`), wherever it sits. Parsing mounts it: the Secret becomes a volume in
  the pod and the setting holds the path the sidecar reads, so the parsed spec is
  exactly what the sidecar will read (`backend.redis.passwordSecretRef` ->
  `passwordFile: /var/run/secrets/llmcache/redis-password/password`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from llmcache_operator.spec.resource import SecretKeyRef
from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError, Setting, setting

SECRET_ROOT = "/var/run/secrets/llmcache"
"""Where referenced Secrets are mounted in the sidecar, one directory per reference."""


@dataclass(frozen=True, slots=True)
class SecretMount:
    """A referenced Secret key, as a file the sidecar reads."""

    ref: SecretKeyRef
    volume: str
    directory: str
    file: str
    field: str = ""
    """Where the spec references it, e.g. `spec.backend.redis.passwordSecretRef`."""

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.file}"


def is_secret_file(s: Setting) -> bool:
    return s.key.endswith("File") and not s.operator_owned


def secret_ref_key(file_key: str) -> str:
    """`passwordFile` -> `passwordSecretRef`."""
    return file_key.removesuffix("File") + "SecretRef"


class KubernetesView:
    """The sidecar's settings as the LLMCache spec shows them (a `config.View`).

    One per parse: `mounts` collects the Secret references it read, by file path.
    """

    def __init__(self, secret_root: str = SECRET_ROOT) -> None:
        self.secret_root = secret_root
        self.mounts: dict[str, SecretMount] = {}

    def settings(self, cls: type) -> tuple[Setting, ...]:
        return tuple(
            self._reference(s) if is_secret_file(s) else s for s in config.settings_of(cls) if not s.operator_owned
        )

    def check_error(self, error: ConfigError) -> ConfigError:
        return ConfigError(in_spec_words(error.path), in_spec_words(error.message))

    def _reference(self, s: Setting) -> Setting:
        key = secret_ref_key(s.key)
        doc = f"Secret key mounted into the sidecar and read as its {s.key}. {s.meta['doc']}"
        # setting() is typed as its default for declarations; here it is the Field it returns.
        ref = cast("dataclasses.Field[Any]", setting(key, doc, default=None))
        return dataclasses.replace(s, key=key, type=SecretKeyRef, optional=True, field=ref, read=self._mount)

    def _mount(self, ref: SecretKeyRef, path: str) -> str:
        """Where the sidecar finds the Secret key `ref`, given at key path `path` (`spec.x.ySecretRef`)."""
        parts = path.split(".")[1:]
        if parts[0] == "backend":  # backends' secrets are named after the backend alone: llmcache-redis-password
            parts = parts[1:]
        stem = parts[-1].removesuffix("SecretRef")
        slug = "-".join(_kebab(part) for part in [*parts[:-1], stem])
        mount = SecretMount(ref, f"llmcache-{slug}", f"{self.secret_root}/{slug}", _kebab(stem), path)
        self.mounts[mount.path] = mount
        return mount.path


def in_spec_words(text: str) -> str:
    """A message of the sidecar's settings with each secret file named as the spec's reference."""
    return re.sub(r"\b\w+File\b", lambda m: secret_ref_key(m[0]) if m[0] in _secret_file_keys() else m[0], text)


@cache
def _secret_file_keys() -> frozenset[str]:
    keys: set[str] = set()
    classes: list[type] = [config.Settings]
    while classes:
        for s in config.settings_of(classes.pop()):
            if is_secret_file(s):
                keys.add(s.key)
            inner = [s.type, *getattr(s.type, "__args__", ())]
            classes += [tp for tp in inner if config.is_settings_class(tp)]
    return frozenset(keys)


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()

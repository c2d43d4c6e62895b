"""What the cluster admin lets LLMCaches use: sidecar images, intercepted hosts, cache namespaces.

Whoever writes an LLMCache chooses the image that runs in the pods it selects, the
hosts whose TLS those pods' apps are told to trust a CA for, and the key prefix its
entries share in a backend with other namespaces' caches. Those are the cluster
admin's to allow, in the operator's settings (the chart's values); a spec that goes
beyond them is refused before anything is written (`Refusal`): no ConfigMap, no CA,
no injection, and a status condition that names the field and the setting.

Patterns, one syntax per list:

- images: an exact reference, or a prefix ending in `*` (`registry.corp/llmcache-sidecar:*`);
  the operator's own sidecar image is always allowed, and so is a spec that names none.
- hosts: a DNS name, or `*.` and a domain with the sidecar's meaning (one more label):
  `*.openai.azure.com` allows that wildcard and every `<name>.openai.azure.com`.
- cache namespaces: `{namespace}` stands for the LLMCache's Kubernetes namespace; a
  trailing `*` makes a prefix. The default, `{namespace}` and `{namespace}.*`, is the
  namespace itself and its sub-namespaces (`team-a.batch`): a Kubernetes namespace name
  has no dot, so no other namespace's default falls under it.

`*` alone allows anything, as an explicit choice. Pure: no kopf, no client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from llmcache_operator.spec import Cache
from llmcache_sidecar.config import DEFAULT_INTERCEPTED_HOSTS

ANY = "*"
NAMESPACE = "{namespace}"
DEFAULT_CACHE_NAMESPACES = (NAMESPACE, f"{NAMESPACE}.*")
DEFAULT_HOSTS = tuple(DEFAULT_INTERCEPTED_HOSTS)
"""The built-in providers' hosts: what transparent mode intercepts when a spec lists none."""
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")
_CACHE_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9._-]*\*?$")


class AllowlistError(ValueError):
    """A pattern the operator cannot use (a setting of the operator, not of an LLMCache)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an LLMCache may not be used as it is written."""

    reason: str
    """One CamelCase word, for the Allowed condition."""
    message: str
    """Names the field and what to change."""
    retry: bool = False
    """It may resolve without an edit of the LLMCache (a Secret labelled later): check again."""


@dataclass(frozen=True, slots=True)
class Allowlist:
    images: tuple[str, ...] = ()
    """Allowed besides the operator's own sidecar image."""
    hosts: tuple[str, ...] = DEFAULT_HOSTS
    cache_namespaces: tuple[str, ...] = DEFAULT_CACHE_NAMESPACES

    @classmethod
    def parse(
        cls, *, images: Iterable[str], hosts: Iterable[str] | None, cache_namespaces: Iterable[str] | None
    ) -> Allowlist:
        """Checked patterns; None keeps a default. Raises AllowlistError naming the bad one."""
        found_images = tuple(_checked(images, _image_ok, "an image reference, optionally ending in '*'"))
        found_hosts = DEFAULT_HOSTS if hosts is None else tuple(_checked(hosts, _host_ok, "a DNS name or '*.' domain"))
        found_namespaces = (
            DEFAULT_CACHE_NAMESPACES
            if cache_namespaces is None
            else tuple(_checked(cache_namespaces, _cache_namespace_ok, "letters, digits, '.', '_', '-' or {namespace}"))
        )
        return cls(images=found_images, hosts=found_hosts, cache_namespaces=found_namespaces)


def refusal(cache: Cache, allowed: Allowlist, own_image: str) -> Refusal | None:
    """The first thing in `cache` that `allowed` does not allow, or None."""
    image = cache.sidecar.image
    if image is not None and image != own_image and not image_allowed(image, allowed.images):
        return Refusal(
            "ImageNotAllowed",
            f"spec.sidecar.image: {image!r} is not an allowed sidecar image (the operator's own is {own_image!r});"
            " a cluster admin allows more in the chart's sidecar.allowedImages",
        )
    if cache.transparent:
        for pattern in cache.settings.transparent.hosts:
            if not host_allowed(pattern, allowed.hosts):
                return Refusal(
                    "HostNotAllowed",
                    f"spec.transparent.hosts.{pattern}: not an allowed host to intercept ({', '.join(allowed.hosts)});"
                    " a cluster admin allows more in the chart's transparent.allowedHosts",
                )
    wanted = cache.settings.namespace
    if not cache_namespace_allowed(wanted, cache.namespace, allowed.cache_namespaces):
        shown = ", ".join(p.replace(NAMESPACE, cache.namespace) for p in allowed.cache_namespaces)
        return Refusal(
            "CacheNamespaceNotAllowed",
            f"spec.namespace: {wanted!r} is not a cache namespace LLMCaches in {cache.namespace} may use ({shown});"
            " a cluster admin allows more in the chart's operator.allowedCacheNamespaces",
        )
    return None


def image_allowed(image: str, patterns: Sequence[str]) -> bool:
    return any(_prefix_match(image, p) for p in patterns)


def host_allowed(pattern: str, allowed: Sequence[str]) -> bool:
    """Whether every name `pattern` (a spec's host pattern) matches is allowed by one entry."""
    for entry in allowed:
        if entry in (ANY, pattern):
            return True
        if entry.startswith("*.") and not pattern.startswith("*."):
            label, _, rest = pattern.partition(".")
            if label and rest == entry[2:]:  # one label, as the sidecar matches '*.'
                return True
    return False


def cache_namespace_allowed(wanted: str, namespace: str, patterns: Sequence[str]) -> bool:
    return any(_prefix_match(wanted, p.replace(NAMESPACE, namespace)) for p in patterns)


def _prefix_match(value: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _checked(values: Iterable[str], ok: Callable[[str], bool], what: str) -> list[str]:
    found = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if not ok(value):
            raise AllowlistError(f"{value!r}: expected {what}")
        found.append(value)
    return found


def _image_ok(value: str) -> bool:
    return "*" not in value[:-1] and not any(c.isspace() for c in value)


def _host_ok(value: str) -> bool:
    return value == ANY or bool(_HOST_RE.match(value))


def _cache_namespace_ok(value: str) -> bool:
    return bool(_CACHE_NAMESPACE_RE.match(value.replace(NAMESPACE, "x")))

"""The operator's own settings, from its environment (the Helm chart sets them).

| Variable | Default | Meaning |
|---|---|---|
| LLMCACHE_OPERATOR_SIDECAR_IMAGE | ghcr.io/llmcache/llmcache-sidecar:<version> | image when an LLMCache names none |
| LLMCACHE_OPERATOR_REDIRECT_IMAGE | ghcr.io/llmcache/llmcache-redirect:<version> | iptables init container |
| LLMCACHE_OPERATOR_NATIVE_SIDECARS | auto | auto (by server version), true, false |
| LLMCACHE_OPERATOR_EXCLUDED_NAMESPACES | kube-system,kube-public,kube-node-lease | never injected |
| LLMCACHE_OPERATOR_WEBHOOK | on | off: serve no admission webhook |
| LLMCACHE_OPERATOR_WEBHOOK_ADDR / _PORT | 0.0.0.0 / 9443 | where the webhook listens (HTTPS) |
| LLMCACHE_OPERATOR_WEBHOOK_CERT / _KEY | /tls/tls.crt / /tls/tls.key | its certificate, reloaded when it changes |
| LLMCACHE_OPERATOR_BACKEND_TIMEOUT | 5 | seconds a backend probe may take |
| LLMCACHE_OPERATOR_RETRY_DELAY | 30 | seconds between probes of an unreachable backend |
| LLMCACHE_OPERATOR_CLUSTER_CIDRS | (none) | pod and service CIDRs, comma-separated: not proxied in transparent mode |
| LLMCACHE_OPERATOR_CA_CHECK_INTERVAL | 600 | seconds between checks of each transparent cache's CA (rotation) |
| LLMCACHE_OPERATOR_ALLOWED_SIDECAR_IMAGES | (none) | images an LLMCache may name besides SIDECAR_IMAGE |
| LLMCACHE_OPERATOR_ALLOWED_HOSTS | the built-in providers' hosts | hosts transparent mode may intercept |
| LLMCACHE_OPERATOR_ALLOWED_CACHE_NAMESPACES | {namespace},{namespace}.* | cache namespaces (spec.namespace) allowed |
| LLMCACHE_OPERATOR_WATCH_NAMESPACES | (none: all) | the only namespaces whose LLMCaches the operator serves |
| LLMCACHE_OPERATOR_SIDECAR_UID | 65531 | UID and GID the injected sidecar runs as |
| LLMCACHE_OPERATOR_SAVINGS_INTERVAL | 60 | seconds between readings of what each cache saved (status.savings) |

The lists are comma-separated; `allowlist` explains their patterns.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from llmcache_operator import injection
from llmcache_operator.allowlist import Allowlist, AllowlistError

PREFIX = "LLMCACHE_OPERATOR_"
NativeSetting = Literal["auto", "true", "false"]
N = TypeVar("N", int, float)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class OptionsError(ValueError):
    """An operator environment variable has a value it cannot use."""


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    addr: str = "0.0.0.0"
    port: int = 9443
    certfile: str = "/tls/tls.crt"
    keyfile: str = "/tls/tls.key"


@dataclass(frozen=True, slots=True)
class Options:
    sidecar_image: str = injection.DEFAULT_IMAGE
    redirect_image: str = injection.DEFAULT_REDIRECT_IMAGE
    native_sidecars: NativeSetting = "auto"
    excluded_namespaces: frozenset[str] = injection.SYSTEM_NAMESPACES
    webhook: WebhookOptions | None = WebhookOptions()
    backend_timeout: float = 5.0
    retry_delay: float = 30.0
    cluster_cidrs: tuple[str, ...] = ()
    ca_check_interval: float = 600.0
    allowlist: Allowlist = field(default_factory=Allowlist)
    watch_namespaces: tuple[str, ...] = ()
    """Empty: every namespace (cluster-wide RBAC); else only these (namespaced Roles)."""
    sidecar_uid: int = injection.SIDECAR_UID
    savings_interval: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Options:
        def get(name: str, default: str) -> str:
            return env.get(PREFIX + name, default).strip()

        native = get("NATIVE_SIDECARS", "auto").lower()
        if native not in ("auto", "true", "false"):
            raise OptionsError(f"{PREFIX}NATIVE_SIDECARS: expected auto, true or false, got {native!r}")
        excluded = get("EXCLUDED_NAMESPACES", ",".join(sorted(injection.SYSTEM_NAMESPACES)))
        webhook: WebhookOptions | None = None
        if get("WEBHOOK", "on").lower() not in ("off", "false", "0"):
            webhook = WebhookOptions(
                addr=get("WEBHOOK_ADDR", "0.0.0.0"),
                port=_number(PREFIX + "WEBHOOK_PORT", get("WEBHOOK_PORT", "9443"), int),
                certfile=get("WEBHOOK_CERT", "/tls/tls.crt"),
                keyfile=get("WEBHOOK_KEY", "/tls/tls.key"),
            )
        try:
            allowlist = Allowlist.parse(
                images=_list(get("ALLOWED_SIDECAR_IMAGES", "")),
                hosts=_list(get("ALLOWED_HOSTS", "")) or None,  # empty: the default
                cache_namespaces=_list(get("ALLOWED_CACHE_NAMESPACES", "")) or None,
            )
        except AllowlistError as exc:
            raise OptionsError(f"{PREFIX}ALLOWED_*: {exc}") from None
        watched = tuple(_list(get("WATCH_NAMESPACES", "")))
        for name in watched:
            if not _DNS_LABEL.match(name):
                raise OptionsError(f"{PREFIX}WATCH_NAMESPACES: not a namespace name: {name!r}")
        return cls(
            sidecar_image=get("SIDECAR_IMAGE", injection.DEFAULT_IMAGE),
            redirect_image=get("REDIRECT_IMAGE", injection.DEFAULT_REDIRECT_IMAGE),
            native_sidecars=native,  # type: ignore[arg-type]  # checked above
            excluded_namespaces=frozenset(n.strip() for n in excluded.split(",") if n.strip()),
            webhook=webhook,
            backend_timeout=_number(PREFIX + "BACKEND_TIMEOUT", get("BACKEND_TIMEOUT", "5"), float),
            retry_delay=_number(PREFIX + "RETRY_DELAY", get("RETRY_DELAY", "30"), float),
            cluster_cidrs=_cidrs(PREFIX + "CLUSTER_CIDRS", get("CLUSTER_CIDRS", "")),
            ca_check_interval=_number(PREFIX + "CA_CHECK_INTERVAL", get("CA_CHECK_INTERVAL", "600"), float),
            allowlist=allowlist,
            watch_namespaces=watched,
            sidecar_uid=_number(PREFIX + "SIDECAR_UID", get("SIDECAR_UID", str(injection.SIDECAR_UID)), int),
            savings_interval=_number(PREFIX + "SAVINGS_INTERVAL", get("SAVINGS_INTERVAL", "60"), float),
        )

    def policy(self, server_version: tuple[int, int] | None) -> injection.Policy:
        native, possible = {
            "true": (True, True),
            "false": (False, False),
            "auto": (
                injection.native_sidecars_supported(server_version),
                injection.native_sidecars_possible(server_version),
            ),
        }[self.native_sidecars]
        return injection.Policy(
            image=self.sidecar_image,
            redirect_image=self.redirect_image,
            native_sidecars=native,
            native_sidecars_possible=possible,
            excluded_namespaces=self.excluded_namespaces,
            cluster_cidrs=self.cluster_cidrs,
            allowlist=self.allowlist,
            sidecar_uid=self.sidecar_uid,
        )


def _number(name: str, raw: str, kind: type[N]) -> N:
    try:
        value = kind(raw)
    except ValueError:
        raise OptionsError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise OptionsError(f"{name}: must be positive, got {raw!r}")
    return value


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _cidrs(name: str, raw: str) -> tuple[str, ...]:
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise OptionsError(f"{name}: not a CIDR: {part!r}") from None
    return tuple(found)

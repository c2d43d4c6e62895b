"""Settings of transparent mode: `transparent:` (see docs/transparent.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from llmcache_sidecar.config.fields import ConfigError, setting

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_PATTERN_RE = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")

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
    In a pod the operator sets those four (`operator_owned`): it issues and mounts the CA.
    """

    enabled: bool = setting(
        "enabled",
        "Also serve as a forward proxy (HTTPS_PROXY) on the data port: TLS to the listed hosts is intercepted "
        "and cached, every other host is tunnelled untouched.",
        default=False,
        operator_owned=True,
    )
    ca_cert_file: str | None = setting(
        "caCertFile",
        "PEM certificate of the CA that signs the interception certificates.",
        default=None,
        operator_owned=True,
    )
    ca_key_file: str | None = setting(
        "caKeyFile",
        "PEM private key of that CA (a mounted Secret; it never leaves the sidecar).",
        default=None,
        operator_owned=True,
    )
    hosts: dict[str, str] = setting(
        "hosts",
        "Hosts whose TLS is intercepted, each to a provider name or kind; '*.' matches one DNS label. "
        "Replaces the default list.",
        factory=_default_intercepted_hosts,
    )
    leaf_validity: float = setting(
        "leafValidity",
        "Lifetime of each interception certificate; renewed with a quarter left.",
        default=24 * 3600.0,
        duration=True,
    )
    iptables_port: int | None = setting(
        "iptablesPort",
        "Also accept connections redirected by iptables (outbound 443 of the app) on this port of the listen "
        "host; the TLS server name chooses between interception and a tunnel to the original destination.",
        default=None,
        minimum=1,
        operator_owned=True,
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

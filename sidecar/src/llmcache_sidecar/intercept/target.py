"""Where a proxied connection is going, read from a CONNECT line or a redirected socket.

Pure values and rules, no I/O: the listeners (`front`, `redirect`), the tunnels and the
service all speak of a `Target`, and `provider_for` is the one reading of
`transparent.hosts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

_HOST_RE: Final = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_IPV6_RE: Final = re.compile(r"^\[([0-9a-f:.]+)\]$")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a client wants to go: a host name (lower case) or an IP address, and a port."""

    host: str
    port: int

    def authority(self, default_port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default_port else f"{host}:{self.port}"


def parse_authority(value: str) -> Target | None:
    """`host:port` of a CONNECT request line; None when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if m := _IPV6_RE.match(host.lower()):
        name: str | None = m.group(1)
    else:
        name = host_name(host)
    return Target(name, int(port)) if name is not None else None


def host_name(value: str) -> str | None:
    """`value` as a DNS name (lower case, no final dot), or None when it is not one.

    The one check of a name that `provider_for` may match, from a CONNECT line or from the
    SNI of a redirected connection alike: `a/b.openai.azure.com` is not a name, so it can
    never match `*.openai.azure.com`.
    """
    name = value.lower().rstrip(".")
    return name if _HOST_RE.match(name) else None


def provider_for(hosts: Mapping[str, str], host: str) -> str | None:
    """The provider that `transparent.hosts` gives `host`; `*.` stands for exactly one label."""
    name = hosts.get(host)
    if name is None and "." in host:
        name = hosts.get("*." + host.split(".", 1)[1])
    return name

"""`python -m llmcache_operator`: the operator, cluster-wide or in named namespaces, with a liveness endpoint.

Equivalent to `kopf run -m llmcache_operator.handlers --all-namespaces`, or to
`--namespace=a --namespace=b` when LLMCACHE_OPERATOR_WATCH_NAMESPACES names them (the
chart then grants Roles in those namespaces only). LLMCACHE_OPERATOR_LIVENESS (default
http://0.0.0.0:8080/healthz) is where the kubelet probes it; LLMCACHE_OPERATOR_PEERING=on
makes replicas coordinate through kopf's peering resource instead of running standalone.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping, MutableMapping

import kopf

from llmcache_operator import handlers  # noqa: F401  - registers the handlers
from llmcache_operator.options import Options

IDENTITY_ENV = "POD_ID"
"""kopf takes its peering identity from here when set (and otherwise asks getpass)."""


def identity(env: Mapping[str, str]) -> str:
    """The operator's kopf identity, found without a passwd entry for its UID.

    kopf's own default calls `getpass.getuser()`, which raises for a UID that has no
    passwd entry: the image's 65532 has none, so the operator crash-looped on start.
    """
    if env.get(IDENTITY_ENV):
        return env[IDENTITY_ENV]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def main(env: MutableMapping[str, str] = os.environ) -> None:
    kopf.configure(verbose=env.get("LLMCACHE_OPERATOR_VERBOSE", "").lower() in ("1", "true", "on"))
    env[IDENTITY_ENV] = identity(env)  # kopf.run reads it: its identity parameter's type is private to kopf
    watched = list(Options.from_env(env).watch_namespaces)
    kopf.run(
        clusterwide=not watched,
        namespaces=watched,
        standalone=env.get("LLMCACHE_OPERATOR_PEERING", "off").lower() not in ("on", "true", "1"),
        liveness_endpoint=env.get("LLMCACHE_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        registry=kopf.get_default_registry(),
    )


if __name__ == "__main__":
    main()

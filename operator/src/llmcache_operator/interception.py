"""What transparent mode adds to an injected pod (the contract in docs/transparent.md).

- The sidecar mounts the cache's CA Secret (`tls.crt`, `tls.key`) at `spec.CA_DIR`; no
  other container ever mounts the key.
- An init container from the sidecar image (`llmcache-trust-bundle`) writes the trust
  bundle into an `emptyDir` from the Secret's `trust.crt` alone: `ca-bundle.crt` is the
  image's system roots followed by the CA(s), `ca.crt` the CA(s) alone.
- App containers mount the bundle read-only and get the proxy and trust variables.
- `interception: iptables` adds an init container (root, NET_ADMIN, NET_RAW) that
  redirects the pod's outbound TCP 443 to the sidecar, except the sidecar's own UID.

Pure and kopf-free, like `injection`.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence, Set
from typing import Any

from llmcache_operator import spec
from llmcache_operator.spec import Cache

CA_VOLUME = "llmcache-ca"
TRUST_SOURCE_VOLUME = "llmcache-ca-trust"
TRUST_SOURCE_DIR = f"{spec.SECRET_ROOT}/ca-trust"
TRUST_VOLUME = "llmcache-trust"
TRUST_DIR = "/etc/llmcache/trust"
BUNDLE_FILE = f"{TRUST_DIR}/ca-bundle.crt"
CA_FILE = f"{TRUST_DIR}/ca.crt"
TRUST_INIT_NAME = "llmcache-trust"
REDIRECT_INIT_NAME = "llmcache-redirect"
NAT_CHAIN = "LLMCACHE_OUTPUT"
TRUST_ENV_ANNOTATION = "llmcache.dev/trust-env"
"""`"false"` on a pod: no SSL_CERT_FILE and the like (they replace a client's store; see the README)."""


NO_PROXY_BASE = (
    "localhost",
    "127.0.0.1",
    "::1",
    ".svc",
    ".svc.cluster.local",
    ".cluster.local",
    "169.254.169.254",  # cloud metadata services
    "metadata.google.internal",
    "$(KUBERNETES_SERVICE_HOST)",  # expanded by the kubelet
)
PROXY_VARIABLES = frozenset({"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"})
TRUST_VARIABLES = frozenset({"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"})


def proxy_env(cache: Cache, cluster_cidrs: Sequence[str]) -> list[tuple[str, str]]:
    """Send HTTP(S) to the sidecar, except cluster-internal traffic; both spellings, as clients differ."""
    proxy = f"http://{spec.SIDECAR_HOST}:{cache.sidecar.port}"
    no_proxy = ",".join([*NO_PROXY_BASE, *cluster_cidrs])
    return [
        ("HTTPS_PROXY", proxy),
        ("https_proxy", proxy),
        ("HTTP_PROXY", proxy),
        ("http_proxy", proxy),
        ("NO_PROXY", no_proxy),
        ("no_proxy", no_proxy),
        ("NODE_USE_ENV_PROXY", "1"),  # newer Node's fetch then honours the proxy; older Node ignores it
    ]


def trust_env() -> list[tuple[str, str]]:
    return [
        ("SSL_CERT_FILE", BUNDLE_FILE),
        ("REQUESTS_CA_BUNDLE", BUNDLE_FILE),
        ("CURL_CA_BUNDLE", BUNDLE_FILE),
        ("NODE_EXTRA_CA_CERTS", CA_FILE),  # adds to Node's built-in roots, so the CA alone
    ]


def app_env(cache: Cache, pod: Mapping[str, Any], own: Set[str], cluster_cidrs: Sequence[str]) -> list[tuple[str, str]]:
    """The proxy and trust variables for a container that sets the variables `own` (upper case).

    Each group is all or nothing: a container that configures any proxy variable itself
    keeps its own proxy setup and gets neither group (half of ours would split its
    traffic); one that sets any trust variable keeps its own trust store.
    """
    if own & PROXY_VARIABLES:
        return []
    env = proxy_env(cache, cluster_cidrs)
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(TRUST_ENV_ANNOTATION, "").lower() != "false" and not own & TRUST_VARIABLES:
        env += trust_env()
    return env


def app_mount() -> dict[str, Any]:
    return {"name": TRUST_VOLUME, "mountPath": TRUST_DIR, "readOnly": True}


def sidecar_mount() -> dict[str, Any]:
    return {"name": CA_VOLUME, "mountPath": spec.CA_DIR, "readOnly": True}


def volumes(cache: Cache) -> list[dict[str, Any]]:
    # Not optional: the sidecar cannot intercept without its CA, so the kubelet waits for the
    # Secret (the operator writes it when it reconciles the LLMCache). 0444: the files are
    # mounted into the sidecar container only, whose UID must read them without an fsGroup.
    def secret(name: str, keys: Sequence[str]) -> dict[str, Any]:
        items = [{"key": k, "path": k} for k in keys]
        return {"name": name, "secret": {"secretName": cache.ca_secret, "items": items, "defaultMode": 0o444}}

    return [
        secret(CA_VOLUME, ("tls.crt", "tls.key")),
        secret(TRUST_SOURCE_VOLUME, ("trust.crt",)),
        {"name": TRUST_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
    ]


def trust_init_container(image: str, security_context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": TRUST_INIT_NAME,
        "image": image,
        "command": ["llmcache-trust-bundle", "--trust", f"{TRUST_SOURCE_DIR}/trust.crt", "--out", TRUST_DIR],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {"name": TRUST_SOURCE_VOLUME, "mountPath": TRUST_SOURCE_DIR, "readOnly": True},
            {"name": TRUST_VOLUME, "mountPath": TRUST_DIR},
        ],
        "securityContext": dict(security_context),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def iptables_script(*, port: int, sidecar_uid: int, cluster_cidrs: Sequence[str]) -> str:
    """Redirect outbound TCP 443 to `port`, except the sidecar's own, loopback and cluster traffic.

    The API server (`$KUBERNETES_SERVICE_HOST`, when it is IPv4) is left alone too. The
    jump goes first in nat OUTPUT. Idempotent: an init container that runs again (a pod
    restart keeps its network namespace) rebuilds the chain instead of stacking rules.
    IPv4 only (see docs).
    """
    nat = "iptables -t nat"
    lines = [
        "set -e",
        f"{nat} -N {NAT_CHAIN} 2>/dev/null || {nat} -F {NAT_CHAIN}",
        f"{nat} -A {NAT_CHAIN} -m owner --uid-owner {sidecar_uid} -j RETURN",
        f"{nat} -A {NAT_CHAIN} -d 127.0.0.0/8 -j RETURN",
        'case "${KUBERNETES_SERVICE_HOST:-}" in',
        f'  *.*.*.*) {nat} -A {NAT_CHAIN} -d "$KUBERNETES_SERVICE_HOST" -j RETURN ;;',
        "esac",
    ]
    for cidr in cluster_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.version == 4:
            lines.append(f"{nat} -A {NAT_CHAIN} -d {shlex.quote(str(network))} -j RETURN")
    lines += [
        f"{nat} -A {NAT_CHAIN} -p tcp -j REDIRECT --to-ports {port}",
        f"{nat} -C OUTPUT -p tcp --dport 443 -j {NAT_CHAIN} 2>/dev/null"
        f" || {nat} -I OUTPUT 1 -p tcp --dport 443 -j {NAT_CHAIN}",
    ]
    return "\n".join(lines) + "\n"


def redirect_init_container(image: str, *, sidecar_uid: int, cluster_cidrs: Sequence[str]) -> dict[str, Any]:
    script = iptables_script(port=spec.IPTABLES_PORT, sidecar_uid=sidecar_uid, cluster_cidrs=cluster_cidrs)
    return {
        "name": REDIRECT_INIT_NAME,
        "image": image,
        "command": ["sh", "-c", script],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def pod_security_allows_iptables(namespace_labels: Mapping[str, str]) -> tuple[bool, str]:
    """NET_ADMIN and NET_RAW are forbidden by Pod Security baseline and restricted."""
    level = namespace_labels.get("pod-security.kubernetes.io/enforce", "privileged")
    if level in ("baseline", "restricted"):
        return False, f"the namespace enforces Pod Security {level!r}, which forbids NET_ADMIN and NET_RAW"
    return True, f"the namespace's Pod Security level {level!r} allows the iptables init container"

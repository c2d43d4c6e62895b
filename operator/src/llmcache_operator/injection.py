"""Whether a pod gets the sidecar, and what the pod looks like with it.

Pure and kopf-free: pods are plain mappings as they arrive in an AdmissionReview, and
caches are `spec.Cache`. As in Istio's injector, `inject_required` decides (and says
why, for the log) and `desired_pod` builds the whole pod as it should be; `patching`
turns the difference into the JSON Patch.

Opt-in is per LLMCache: the pod's labels match its `podSelector`, or the pod carries
`llmcache.dev/inject: <name>` (or `"true"`: the first LLMCache of the namespace by
name). `llmcache.dev/inject: "false"` opts out. Never touched: pods already injected,
pods in system namespaces, `hostNetwork` pods (their 127.0.0.1 is the node's), and
llmcache's own pods (`app.kubernetes.io/part-of: llmcache`). When injection would not
work (a port is taken, or the LLMCache has not been reconciled so its ConfigMap may not
exist), or is not allowed (the cluster's allowlists, checked here again, or the status
the operator wrote: `Cache.refused`), the pod is left alone: a pod without a cache still runs.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmcache_operator import __version__, allowlist, interception, patching, reconcile, spec
from llmcache_operator.allowlist import Allowlist
from llmcache_operator.spec import Cache, LabelSelector
from llmcache_sidecar import config

INJECT_ANNOTATION = "llmcache.dev/inject"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
OWN_LABEL = ("app.kubernetes.io/part-of", "llmcache")
SIDECAR_NAME = "llmcache-sidecar"
CONFIG_VOLUME = "llmcache-config"
CONFIG_DIR = spec.CONFIG_DIR
DISK_VOLUME = "llmcache-disk"
SIDECAR_UID = 65531
"""The sidecar's UID and GID (the image's USER), in both variants; the iptables rule exempts it.

Not one an app container is likely to share: not 65532 (distroless and Chainguard
`nonroot`), 65534 (`nobody`), 0, 1000 or 1001, nor a mesh proxy's (Istio 1337, Linkerd
2102). An app under the sidecar's UID could read the CA key through /proc/<pid>/root when
the pod shares its process namespace, and the iptables variant would never redirect it.
`LLMCACHE_OPERATOR_SIDECAR_UID` changes it for a cluster whose apps use this one."""
SALT_VOLUME = "llmcache-tenant-salt"
SALT_ENV = config.variable_for("tenantSaltFile")
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
NATIVE_SIDECARS_SINCE = (1, 29)
NATIVE_SIDECARS_POSSIBLE_SINCE = (1, 28)  # alpha, behind the SidecarContainers feature gate
DEFAULT_IMAGE = f"ghcr.io/llmcache/llmcache-sidecar:{__version__}"
DEFAULT_REDIRECT_IMAGE = f"ghcr.io/llmcache/llmcache-redirect:{__version__}"

# Environment variables the official SDKs read for a base URL, by provider kind, and
# the path under the sidecar's /<name>/ prefix that each SDK expects.
BASE_URL_ENV: Mapping[str, tuple[str, str]] = {
    "openai": ("OPENAI_BASE_URL", "/v1"),
    "anthropic": ("ANTHROPIC_BASE_URL", ""),
    "gemini": ("GOOGLE_GEMINI_BASE_URL", ""),  # google-genai reads it for the Gemini API
    "azure": ("AZURE_OPENAI_ENDPOINT", ""),
}
SIDECAR_URL_ENV = "LLMCACHE_URL"
ADDED_ENV_ANNOTATION = "llmcache.dev/added-env"
"""Which variables injection added, per container (it never overrides one the container sets)."""
SECURITY_CONTEXT: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True, slots=True)
class Policy:
    """What the webhook knows beyond the pod and the caches."""

    image: str = DEFAULT_IMAGE
    """The sidecar image when an LLMCache does not name one."""
    redirect_image: str = DEFAULT_REDIRECT_IMAGE
    """The image with iptables for transparent mode's redirect init container."""
    native_sidecars: bool = False
    """The API server runs native sidecars (init containers with restartPolicy Always) by default."""
    native_sidecars_possible: bool = False
    """The API server may run them (a feature gate, or a version nobody told us): `always` is honoured.

    An older server refuses probes on init containers, so a pod forced into a native
    sidecar there would not be created at all; it gets a regular container instead.
    """
    excluded_namespaces: frozenset[str] = SYSTEM_NAMESPACES
    cluster_cidrs: tuple[str, ...] = ()
    """Pod and service CIDRs: never proxied nor redirected in transparent mode."""
    allowlist: Allowlist = field(default_factory=Allowlist)
    """What LLMCaches may use besides `image`: a cache beyond it is never injected."""
    sidecar_uid: int = SIDECAR_UID


def native_sidecars_supported(server_version: tuple[int, int] | None) -> bool:
    """Native sidecars are on by default from Kubernetes 1.29; unknown means no."""
    return server_version is not None and server_version >= NATIVE_SIDECARS_SINCE


def native_sidecars_possible(server_version: tuple[int, int] | None) -> bool:
    """1.28 has them behind a feature gate; an unknown version might have them."""
    return server_version is None or server_version >= NATIVE_SIDECARS_POSSIBLE_SINCE


@dataclass(frozen=True, slots=True)
class Decision:
    cache: Cache | None
    """The cache whose sidecar the pod gets; None: leave the pod alone."""
    reason: str
    notable: bool = False
    """The pod asked for a cache and does not get it: worth a log line and an admission warning."""
    wanted: Cache | None = None
    """The cache a notable pod asked for (which then gets an event)."""


def inject_required(pod: Mapping[str, Any], namespace: str, caches: Iterable[Cache], policy: Policy) -> Decision:
    """Which LLMCache's sidecar `pod` (being created in `namespace`) gets, if any."""
    metadata = pod.get("metadata") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    pod_spec = pod.get("spec") or {}
    if patching.injected_by(pod) is not None or any(c.get("name") == SIDECAR_NAME for c in _all_containers(pod_spec)):
        return Decision(None, "already injected")
    if namespace in policy.excluded_namespaces:
        return Decision(None, f"namespace {namespace} is excluded")
    if pod_spec.get("hostNetwork"):
        return Decision(None, "hostNetwork pods share the node's loopback")
    if labels.get(OWN_LABEL[0]) == OWN_LABEL[1]:
        return Decision(None, "llmcache's own pod")
    wanted = annotations.get(INJECT_ANNOTATION)
    if wanted is not None and wanted.lower() == "false":
        return Decision(None, f"opted out by {INJECT_ANNOTATION}")
    candidates = sorted((c for c in caches if c.namespace == namespace), key=lambda c: c.name)
    if not candidates:
        return Decision(None, f"no LLMCache in namespace {namespace}")
    chosen: Cache | None
    if wanted is not None and wanted.lower() == "true":
        chosen, reason = candidates[0], f"{INJECT_ANNOTATION}=true"
    elif wanted is not None:
        chosen = next((c for c in candidates if c.name == wanted), None)
        if chosen is None:
            return Decision(None, f"{INJECT_ANNOTATION} names {wanted!r}, which is not an LLMCache here")
        reason = f"{INJECT_ANNOTATION}={wanted}"
    else:
        chosen = next((c for c in candidates if selector_matches(c.pod_selector, labels)), None)
        if chosen is None:
            return Decision(None, "no podSelector matches")
        reason = f"labels match the podSelector of {chosen.name}"
    refused = allowlist.refusal(chosen, policy.allowlist, policy.image)
    if refused is not None:
        why = f"LLMCache {chosen.name} is not allowed: {refused.message}"
        return Decision(None, why, notable=True, wanted=chosen)
    if chosen.refused is not None:
        return Decision(None, f"LLMCache {chosen.name}: {chosen.refused}", notable=True, wanted=chosen)
    if not chosen.reconciled:
        # Its ConfigMap may not exist yet: such a pod starts uncached, by construction.
        why = f"LLMCache {chosen.name} is not reconciled yet (no status.configHash), so its config may not exist"
        return Decision(None, why, notable=True, wanted=chosen)
    clash = _port_clash(pod_spec, chosen)
    if clash:
        return Decision(None, clash, notable=True, wanted=chosen)
    return Decision(chosen, reason)


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; None selects nothing, an empty selector everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        ok = {
            "In": present and labels.get(req.key) in req.values,
            "NotIn": not present or labels.get(req.key) not in req.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[req.operator]
        if not ok:
            return False
    return True


def desired_pod(pod: Mapping[str, Any], cache: Cache, policy: Policy) -> dict[str, Any]:
    """`pod` with `cache`'s sidecar, volumes and variables (a new object); transparent mode adds its parts."""
    result: dict[str, Any] = copy.deepcopy(dict(pod))
    pod_spec = result.setdefault("spec", {})
    native = use_native_sidecar(cache, policy)
    app_containers = pod_spec.setdefault("containers", [])
    base_env = base_url_env(cache)
    added_env: dict[str, list[str]] = {}
    for container in app_containers:
        # Case-blind: a container that sets https_proxy keeps it, and gets no HTTPS_PROXY of ours.
        own = {str(e.get("name")).upper() for e in container.get("env") or []}
        env = base_env
        if cache.transparent:
            env = base_env + interception.app_env(cache, pod, own, policy.cluster_cidrs)
        added = [{"name": name, "value": value} for name, value in env if name.upper() not in own]
        if added:
            container["env"] = [*(container.get("env") or []), *added]
            added_env[container["name"]] = [e["name"] for e in added]
        if cache.transparent:
            container["volumeMounts"] = [*(container.get("volumeMounts") or []), interception.app_mount()]
    metadata = result.setdefault("metadata", {})
    if added_env:
        metadata["annotations"] = {
            **(metadata.get("annotations") or {}),
            ADDED_ENV_ANNOTATION: json.dumps(added_env, separators=(",", ":")),
        }
    if not native and app_containers and DEFAULT_CONTAINER_ANNOTATION not in (metadata.get("annotations") or {}):
        # The sidecar goes first; `kubectl logs/exec` should still default to the app.
        metadata["annotations"] = {
            **(metadata.get("annotations") or {}),
            DEFAULT_CONTAINER_ANNOTATION: app_containers[0]["name"],
        }
    sidecar = sidecar_container(cache, policy, native=native)
    ours = init_containers(cache, policy)
    if native:
        ours.append(sidecar)
    else:
        pod_spec["containers"] = [sidecar, *app_containers]
    if ours:
        pod_spec["initContainers"] = [*ours, *(pod_spec.get("initContainers") or [])]
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *volumes(cache)]
    patching.mark(result, cache.name)
    return result


def init_containers(cache: Cache, policy: Policy) -> list[dict[str, Any]]:
    """Transparent mode's init containers, which run before the sidecar and the app."""
    if not cache.transparent:
        return []
    image = cache.sidecar.image or policy.image
    found = [interception.trust_init_container(image, security_context(policy))]
    if cache.interception == "iptables":
        found.append(
            interception.redirect_init_container(
                policy.redirect_image, sidecar_uid=policy.sidecar_uid, cluster_cidrs=policy.cluster_cidrs
            )
        )
    if cache.sidecar.image_pull_policy:
        found[0]["imagePullPolicy"] = cache.sidecar.image_pull_policy  # the sidecar's image
    return found


def security_context(policy: Policy) -> dict[str, Any]:
    """Restricted, as the sidecar's UID: the sidecar's and the trust bundle's init container."""
    return {
        "runAsNonRoot": True,
        "runAsUser": policy.sidecar_uid,
        "runAsGroup": policy.sidecar_uid,
        **copy.deepcopy(dict(SECURITY_CONTEXT)),
    }


def use_native_sidecar(cache: Cache, policy: Policy) -> bool:
    mode = cache.sidecar.native_sidecar
    if mode == "always":
        return policy.native_sidecars or policy.native_sidecars_possible
    return mode == "auto" and policy.native_sidecars


def base_url_env(cache: Cache) -> list[tuple[str, str]]:
    """The variables that point the official SDKs at the sidecar, one per provider kind.

    For each kind the provider named like the kind wins (`openai` over a `vllm` of kind
    openai), else the first listed. Other providers are reached through LLMCACHE_URL.
    """
    root = f"http://127.0.0.1:{cache.sidecar.port}"
    chosen: dict[str, str] = {}
    for name, provider in cache.settings.providers.items():
        kind = provider.kind or name
        if kind in BASE_URL_ENV and (kind not in chosen or name == kind):
            chosen[kind] = name
    env = [(SIDECAR_URL_ENV, root)]
    for kind, (var, suffix) in BASE_URL_ENV.items():
        if kind in chosen:
            env.append((var, f"{root}/{chosen[kind]}{suffix}"))
    return env


def sidecar_container(cache: Cache, policy: Policy, *, native: bool) -> dict[str, Any]:
    side = cache.sidecar
    mounts: list[dict[str, Any]] = [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}]
    mounts += [{"name": m.volume, "mountPath": m.directory, "readOnly": True} for m in cache.secrets]
    disk = disk_path(cache)
    if disk is not None:
        mounts.append({"name": DISK_VOLUME, "mountPath": disk})
    if cache.transparent:
        mounts.append(interception.sidecar_mount())
    if salted(cache):
        mounts.append({"name": SALT_VOLUME, "mountPath": spec.SALT_DIR, "readOnly": True})
    resources = {
        part: dict(values)
        for part, values in (("requests", side.resources.requests), ("limits", side.resources.limits))
        if values
    }
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": side.image or policy.image,
        "command": ["llmcache-sidecar"],
        "args": sidecar_args(cache),
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": security_context(policy),
        "livenessProbe": {**_probe(side.admin_port, "/healthz"), "periodSeconds": 10, "failureThreshold": 3},
        # Ready means "serving", not "the backend answers": the cache fails open, so a Redis
        # outage must not take the app's pods out of their Services (/readyz reports it instead).
        "readinessProbe": {**_probe(side.admin_port, "/healthz"), "periodSeconds": 5, "failureThreshold": 2},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if salted(cache):
        container["env"] = [{"name": SALT_ENV, "value": f"{spec.SALT_DIR}/{spec.SALT_KEY}"}]
    if side.image_pull_policy:
        container["imagePullPolicy"] = side.image_pull_policy
    if native:
        # Started before, and stopped after, the app containers; the kubelet waits for startupProbe.
        container["restartPolicy"] = "Always"
        container["startupProbe"] = {**_probe(side.admin_port, "/healthz"), "periodSeconds": 1, "failureThreshold": 30}
    else:
        # A regular container placed first: the kubelet starts the next container only
        # after this hook returns, so the app starts with the sidecar listening (Istio's trick).
        container["lifecycle"] = {"postStart": {"exec": {"command": _wait_until_healthy(side.admin_port)}}}
    return container


def salted(cache: Cache) -> bool:
    """The sidecar gets the cache's tenant salt: only the operator's own image, which knows the
    setting (an older image pinned by `spec.sidecar.image` would refuse an unknown variable).

    An environment variable, not a key in the ConfigMap: running pods of an older sidecar
    hot-reload the ConfigMap, and the salt comes with this pod's own volume.
    """
    return cache.sidecar.image is None


def sidecar_args(cache: Cache) -> list[str]:
    """The sidecar's arguments; `--fallback-config` only for the operator's own sidecar image.

    An LLMCache that pins an image (`spec.sidecar.image`) may run an older sidecar, which
    refuses an option it does not know: a crash loop instead of an uncached pod.
    """
    args = ["--config", f"{CONFIG_DIR}/{reconcile.CONFIG_FILE}"]
    if cache.sidecar.image is None:
        args += ["--fallback-config", fallback_config(cache)]
    return args


def fallback_config(cache: Cache) -> str:
    """What the sidecar serves with, uncached, while its ConfigMap is missing (compact JSON).

    The ConfigMap exists before any pod is injected (the webhook waits for the first
    reconcile), but it goes with its LLMCache, and a sidecar restarted after that must
    still route the app's calls: its ports and the providers' upstreams, nothing else.
    """
    settings = cache.settings
    data = {
        "listen": settings.listen,
        "admin": settings.admin,
        "providers": {name: config.to_mapping(p, omit_defaults=True) for name, p in settings.providers.items()},
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def volumes(cache: Cache) -> list[dict[str, Any]]:
    # optional: a pod must start after its ConfigMap or a Secret is gone; the sidecar then
    # passes requests through uncached (--fallback-config; a secret file it cannot read).
    config = {"name": CONFIG_VOLUME, "configMap": {"name": cache.config_map, "optional": True}}
    secrets = [
        {
            "name": m.volume,
            "secret": {"secretName": m.ref.name, "items": [{"key": m.ref.key, "path": m.file}], "optional": True},
        }
        for m in cache.secrets
    ]
    volumes = [config, *secrets]
    if salted(cache):
        # optional, like the others: until the Secret is there the sidecar does not cache.
        salt = {"secretName": cache.salt_secret, "items": [{"key": spec.SALT_KEY, "path": spec.SALT_KEY}]}
        volumes.append({"name": SALT_VOLUME, "secret": {**salt, "optional": True}})
    if cache.transparent:
        volumes += interception.volumes(cache)
    if disk_path(cache) is not None:
        # The disk backend keeps entries per pod; the limit leaves room above disk.maxBytes.
        size_mib = math.ceil(cache.settings.backend.disk.max_bytes * 1.25 / 2**20)
        volumes.append({"name": DISK_VOLUME, "emptyDir": {"sizeLimit": f"{size_mib}Mi"}})
    return volumes


def disk_path(cache: Cache) -> str | None:
    """Where the disk backend writes, when this cache uses it (alone or as dual's second tier)."""
    backend = cache.settings.backend
    used = backend.dual.l2 if backend.type == "dual" else backend.type
    return backend.disk.path if used == "disk" else None


def _probe(port: int, path: str) -> dict[str, Any]:
    # The admin port listens on 127.0.0.1 only, which the kubelet's httpGet cannot reach
    # (it dials the pod IP); an exec probe runs inside the pod's network namespace.
    url = f"http://127.0.0.1:{port}{path}"
    command = ["python", "-c", f"import urllib.request as u; u.urlopen({url!r}, timeout=2)"]
    return {"exec": {"command": command}, "timeoutSeconds": 3}


def _wait_until_healthy(port: int) -> list[str]:
    # Bounded (about 20 s) and always successful: a failed postStart hook would kill the container.
    script = (
        "import time, urllib.request as u\n"
        "for _ in range(100):\n"
        "    try:\n"
        f"        u.urlopen('http://127.0.0.1:{port}/healthz', timeout=1)\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.2)\n"
    )
    return ["python", "-c", script]


def _all_containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def _port_clash(pod_spec: Mapping[str, Any], cache: Cache) -> str | None:
    ours = {cache.sidecar.port, cache.sidecar.admin_port}
    for container in _all_containers(pod_spec):
        for port in container.get("ports") or []:
            if port.get("containerPort") in ours:
                return f"port {port['containerPort']} of container {container.get('name')} is the sidecar's"
    return None

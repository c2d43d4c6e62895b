"""Running the real operator (kopf's loop, our handlers) against kmock's Kubernetes emulator.

kmock is an in-memory fake of the Kubernetes API: no schema validation, defaulting,
admission or garbage collection (ownerReferences are stored, never acted upon).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import kmock as kmock_lib
import kopf

from llmcache_operator import handlers, k8s
from llmcache_operator.options import Options
from llmcache_operator.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION
from tests.operator.conftest import KOPF_SERVER

assert handlers  # registers the operator's handlers in kopf's default registry

LLMCACHES = f"{GROUP}/{VERSION}/{PLURAL}"
RESOURCES: dict[str, dict[str, Any]] = {
    # kopf's namespace and CRD observers wait forever unless these exist (K8S-TESTING.md).
    "v1/namespaces": {"kind": "Namespace", "namespaced": False, "verbs": ["list", "watch", "get"]},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "namespaced": False,
        "verbs": ["list", "watch", "get"],
    },
    "v1/pods": {"kind": "Pod", "namespaced": True, "verbs": ["list", "watch", "get", "patch", "create", "delete"]},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True, "verbs": ["get", "create", "patch", "list"]},
    "v1/secrets": {"kind": "Secret", "namespaced": True, "verbs": ["get", "create", "patch"]},
    "v1/events": {"kind": "Event", "namespaced": True, "verbs": ["create"]},
    LLMCACHES: {
        "kind": KIND,
        "namespaced": True,
        "singular": "llmcache",
        "verbs": ["list", "watch", "patch", "get", "create", "delete"],
    },
}


def version_info(minor: int) -> dict[str, str]:
    return {
        "major": "1",
        "minor": str(minor),
        "gitVersion": f"v1.{minor}.0",
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


@contextlib.asynccontextmanager
async def running_operator(
    kmock: kmock_lib.KubernetesEmulator, options: Options, *, server_minor: int | None = None
) -> AsyncIterator[None]:
    """The operator's kopf loop against `kmock`; stopped inside the test (kopf cancels later tasks).

    `server_minor` makes GET /version/ answer Kubernetes 1.<minor>; without it the
    operator cannot tell the version and assumes no native sidecars.
    """
    for resource, info in RESOURCES.items():
        kmock.resources[resource] = info
    if server_minor is not None:
        kmock["get /version/"] << version_info(server_minor)
    url = str(kmock.url).rstrip("/")
    KOPF_SERVER.append(url)
    memo = kopf.Memo(api=k8s.Api.for_server(url), options=options)
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            clusterwide=True, standalone=True, stop_flag=stop, memo=memo, registry=kopf.get_default_registry()
        )
    )
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        finally:
            KOPF_SERVER.remove(url)


def llmcache(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }


def secret(name: str, namespace: str, data: dict[str, str], *, usable: bool = True) -> dict[str, Any]:
    """A Secret (values in clear, as stringData would be); `usable` adds the opt-in label."""
    labels = {"llmcache.dev/usable": "true"} if usable else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


async def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (bounded); return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, IndexError, TypeError) as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what or check}; last: {last!r}")


def path_of(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


async def create(kmock: kmock_lib.KubernetesEmulator, url: str, body: dict[str, Any]) -> None:
    async with kmock.post(url, json=body) as response:
        assert response.status in (200, 201), await response.text()


async def merge_patch(kmock: kmock_lib.KubernetesEmulator, url: str, body: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with kmock.patch(url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()


async def delete(kmock: kmock_lib.KubernetesEmulator, url: str) -> None:
    async with kmock.delete(url) as response:
        assert response.status == 200, await response.text()

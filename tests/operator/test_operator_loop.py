"""The operator's real kopf loop against kmock's Kubernetes emulator.

Faked here: the Kubernetes API (kmock: no validation, defaulting, generation bumps or
garbage collection, so the tests bump metadata.generation themselves). Real: kopf,
our handlers, and redis-server.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import kmock as kmock_lib
import yaml

from llmcache_operator.allowlist import Allowlist
from llmcache_operator.options import Options
from llmcache_sidecar import config
from llmcache_sidecar.backends import build_backend
from tests.operator.kopf_loop import (
    LLMCACHES,
    create,
    delete,
    eventually,
    llmcache,
    merge_patch,
    path_of,
    running_operator,
)
from tests.realparts import RedisServer, free_port, redis

OPTIONS = Options(webhook=None, retry_delay=0.3, backend_timeout=2.0)
NS = "team-a"


def resource(kmock: kmock_lib.KubernetesEmulator, name: str) -> Any:
    return kmock.objects[LLMCACHES, NS, name]


def condition(kmock: kmock_lib.KubernetesEmulator, name: str, kind: str) -> tuple[str, str, str] | None:
    for found in resource(kmock, name).get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found["status"], found["reason"], found["message"]
    return None


def config_file(kmock: kmock_lib.KubernetesEmulator, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(kmock.objects["v1/configmaps", NS, f"llmcache-{name}"]["data"]["config.yaml"])
    return data


def warning_events(kmock: kmock_lib.KubernetesEmulator, reason: str) -> list[Any]:
    return [
        obj
        for (res, _, _), obj in kmock.objects.items()
        if res.plural == "events" and obj.get("type") == "Warning" and obj.get("reason") == reason
    ]


async def test_a_new_llmcache_gets_its_config_map_and_a_ready_status(
    kmock: kmock_lib.KubernetesEmulator, redis_server: RedisServer
) -> None:
    spec = {"ttl": "1h", "backend": {"type": "redis", "redis": {"url": redis_server.url}}, "providers": ["openai"]}
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("shared", NS, spec))
        await eventually(lambda: condition(kmock, "shared", "Ready"), what="a Ready condition")
        status = resource(kmock, "shared")["status"]
        config_map = kmock.objects["v1/configmaps", NS, "llmcache-shared"]

    assert condition(kmock, "shared", "Ready")[:2] == ("True", "Reconciled")
    assert condition(kmock, "shared", "BackendReachable")[:2] == ("True", "Answered")
    assert status["observedGeneration"] == 1
    assert status["configMap"] == "llmcache-shared"
    assert status["injectedPods"] == 0
    assert config_map["metadata"]["annotations"]["llmcache.dev/config-hash"] == status["configHash"]
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "uid-shared"
    assert config_file(kmock, "shared") == {
        "backend": {"type": "redis", "redis": {"url": redis_server.url}},
        "namespace": NS,
        "providers": {"openai": {"kind": "openai", "upstream": "https://api.openai.com"}},
    }
    salt = kmock.objects["v1/secrets", NS, "llmcache-shared-salt"]  # the tenant salt, made once
    assert salt["metadata"]["ownerReferences"][0]["uid"] == "uid-shared"
    assert len(salt["stringData"]["salt"]) >= 32


async def test_an_edit_re_renders_the_config_map_and_a_flush_is_recorded(kmock: kmock_lib.KubernetesEmulator) -> None:
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("c", NS, {"ttl": "1h"}))
        first = await eventually(lambda: resource(kmock, "c")["status"]["configHash"], what="a config hash")

        await merge_patch(kmock, path_of(NS, "c"), {"metadata": {"generation": 2}, "spec": {"ttl": "5m"}})
        await eventually(lambda: config_file(kmock, "c").get("ttl") == 300, what="the new TTL rendered")
        await eventually(lambda: resource(kmock, "c")["status"]["observedGeneration"] == 2, what="generation 2")
        second = resource(kmock, "c")["status"]["configHash"]

        await merge_patch(kmock, path_of(NS, "c"), {"metadata": {"generation": 3}, "spec": {"flush": "2026-11-28"}})
        await eventually(lambda: config_file(kmock, "c").get("flush") == "2026-11-28", what="the flush rendered")
        last_flush = await eventually(lambda: resource(kmock, "c")["status"].get("lastFlush"), what="lastFlush")

    assert first != second
    assert last_flush["value"] == "2026-11-28"
    assert last_flush["time"].endswith("Z")


async def epoch_in(redis_url: str, namespace: str) -> int:
    """The namespace's flush epoch as a sidecar reads it from Redis."""
    backend = build_backend(config.parse(config.BackendSettings, {"type": "redis", "redis": {"url": redis_url}}))
    try:
        return await backend.get_epoch(namespace)
    finally:
        await backend.aclose()


async def test_a_flush_moves_the_epoch_in_a_shared_backend_at_once(
    kmock: kmock_lib.KubernetesEmulator, redis_server: RedisServer
) -> None:
    """Sidecars re-read the epoch each second; their ConfigMap reaches them only on the kubelet's sync period.

    At least once: a reconcile that runs twice for one change (kopf retries) moves it twice, which
    empties the namespace all the same.
    """
    cache_ns = f"{NS}.flush-{uuid.uuid4().hex[:8]}"  # a sub-namespace: allowed by default
    spec = {"namespace": cache_ns, "backend": {"type": "redis", "redis": {"url": redis_server.url}}}
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("f", NS, spec))
        await eventually(lambda: resource(kmock, "f")["status"].get("configHash"), what="a config hash")
        before = await epoch_in(redis_server.url, cache_ns)

        await merge_patch(kmock, path_of(NS, "f"), {"metadata": {"generation": 2}, "spec": {"flush": "one"}})
        await eventually(lambda: resource(kmock, "f")["status"].get("lastFlush"), what="lastFlush")
        after = await epoch_in(redis_server.url, cache_ns)

    assert after > before


async def test_a_flush_already_rendered_is_not_applied_again(
    kmock: kmock_lib.KubernetesEmulator, redis_server: RedisServer
) -> None:
    """As after an operator restart: status.lastFlush already holds the spec's value."""
    cache_ns = f"{NS}.flush-{uuid.uuid4().hex[:8]}"  # a sub-namespace: allowed by default
    spec = {"namespace": cache_ns, "flush": "one", "backend": {"type": "redis", "redis": {"url": redis_server.url}}}
    body = llmcache("g", NS, spec) | {"status": {"lastFlush": {"value": "one", "time": "2026-12-01T00:00:00Z"}}}
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), body)
        await eventually(lambda: resource(kmock, "g")["status"].get("configHash"), what="a config hash")
        epoch = await epoch_in(redis_server.url, cache_ns)

    assert epoch == 0


async def test_an_unreachable_backend_is_reported_and_probed_again_until_it_answers(
    kmock: kmock_lib.KubernetesEmulator, tmp_path: Path
) -> None:
    port = free_port()
    spec = {"backend": {"type": "redis", "redis": {"url": f"redis://127.0.0.1:{port}/0"}}}
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("late", NS, spec))
        down = await eventually(lambda: condition(kmock, "late", "BackendReachable"), what="BackendReachable")
        ready_while_down = condition(kmock, "late", "Ready")
        config_map_while_down = kmock.objects["v1/configmaps", NS, "llmcache-late"]

        with redis(tmp_path, port=port):
            await eventually(
                lambda: condition(kmock, "late", "BackendReachable")[0] == "True", timeout=15, what="recovery"
            )
            ready_after = condition(kmock, "late", "Ready")

    assert down[:2] == ("False", "Unreachable")
    assert "ECONNREFUSED" in down[2]
    assert ready_while_down[:2] == ("False", "BackendUnreachable")
    assert config_map_while_down  # sidecars get their config even while the backend is down
    assert ready_after[:2] == ("True", "Reconciled")


async def test_an_invalid_spec_sets_ready_false_naming_the_field_and_the_operator_carries_on(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("bad", NS, {"backend": {"type": "memcached"}}))
        await eventually(lambda: condition(kmock, "bad", "Ready"), what="a Ready condition")
        invalid = condition(kmock, "bad", "Ready")
        events = await eventually(lambda: warning_events(kmock, "InvalidSpec"), what="a Kubernetes Event")

        await merge_patch(
            kmock, path_of(NS, "bad"), {"metadata": {"generation": 2}, "spec": {"backend": {"type": "memory"}}}
        )
        await eventually(lambda: condition(kmock, "bad", "Ready")[0] == "True", what="Ready after the fix")

    assert invalid == (
        "False",
        "InvalidSpec",
        "spec.backend.type: must be one of memory, redis, dual, s3, gcs, azureBlob, disk, got 'memcached'",
    )
    assert events[0]["message"] == invalid[2]
    assert events[0]["involvedObject"]["name"] == "bad"


async def test_injected_pods_are_counted_in_the_status(kmock: kmock_lib.KubernetesEmulator) -> None:
    def injected_pod(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "annotations": {"llmcache.dev/injected": "c"}},
            "spec": {"containers": [{"name": "app", "image": "app"}]},
        }

    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("c", NS, {}))
        await eventually(lambda: condition(kmock, "c", "Ready"), what="a Ready condition")
        for name in ("p1", "p2"):
            await create(kmock, f"/api/v1/namespaces/{NS}/pods", injected_pod(name))
        await eventually(lambda: resource(kmock, "c")["status"]["injectedPods"] == 2, what="2 injected pods")
        await delete(kmock, f"/api/v1/namespaces/{NS}/pods/p1")
        await eventually(lambda: resource(kmock, "c")["status"]["injectedPods"] == 1, what="1 injected pod")


async def test_a_config_map_of_that_name_that_the_llmcache_does_not_own_is_never_written(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    """Issue 15, finding 6: the merge patch used to replace its ownerReferences with the LLMCache's,
    so the garbage collector would have deleted someone else's ConfigMap with the LLMCache."""
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "llmcache-c",
            "namespace": NS,
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "billing", "uid": "uid-billing"}
            ],
        },
        "data": {"settings.ini": "theirs"},
    }
    async with running_operator(kmock, OPTIONS):
        await create(kmock, f"/api/v1/namespaces/{NS}/configmaps", theirs)
        await create(kmock, path_of(NS), llmcache("c", NS, {"ttl": "1h"}))
        ready = await eventually(lambda: condition(kmock, "c", "Ready"), what="a Ready condition")
        stored = kmock.objects["v1/configmaps", NS, "llmcache-c"]

    assert ready[:2] == ("False", "ConfigMapConflict")
    assert ready[2].startswith(f"ConfigMap {NS}/llmcache-c exists and is not owned by this LLMCache")
    assert stored["metadata"]["ownerReferences"] == theirs["metadata"]["ownerReferences"]
    assert dict(stored["data"]) == {"settings.ini": "theirs"}
    assert "configHash" not in resource(kmock, "c")["status"]


async def test_its_own_config_map_is_updated_in_place_keeping_its_owner(kmock: kmock_lib.KubernetesEmulator) -> None:
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("c", NS, {"ttl": "1h"}))
        await eventually(lambda: resource(kmock, "c")["status"]["configHash"], what="a config hash")
        await merge_patch(kmock, path_of(NS, "c"), {"metadata": {"generation": 2}, "spec": {"ttl": "5m"}})
        await eventually(lambda: config_file(kmock, "c").get("ttl") == 300, what="the new TTL rendered")
        owners = kmock.objects["v1/configmaps", NS, "llmcache-c"]["metadata"]["ownerReferences"]

    assert [o["uid"] for o in owners] == ["uid-c"]


async def test_a_refused_llmcache_is_applied_once_the_admin_allows_it_without_an_edit(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    """The allowlists are the operator's settings: changing them restarts it, and it resumes every LLMCache."""
    spec = {"sidecar": {"image": "registry.corp/llmcache-sidecar:2"}}
    async with running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("c", NS, spec))
        refused = await eventually(lambda: condition(kmock, "c", "Allowed"), what="an Allowed condition")
    allowing = dataclasses.replace(OPTIONS, allowlist=Allowlist(images=("registry.corp/llmcache-sidecar:*",)))
    async with running_operator(kmock, allowing):
        await eventually(lambda: condition(kmock, "c", "Allowed")[0] == "True", what="allowed after the restart")
        await eventually(lambda: resource(kmock, "c")["status"].get("configHash"), what="applied")

    assert refused[:2] == ("False", "ImageNotAllowed")

"""The operator's real kopf loop against kmock's Kubernetes emulator.

Faked here: the Kubernetes API (kmock: no validation, defaulting, generation bumps or
garbage collection, so the tests bump metadata.generation themselves). Real: kopf,
our handlers, and redis-server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock as kmock_lib
import yaml

from llmcache_operator.options import Options
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
from tests.operator.realparts import RedisServer, free_port, start_redis

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

        proc, _ = start_redis(tmp_path, port=port)
        try:
            await eventually(
                lambda: condition(kmock, "late", "BackendReachable")[0] == "True", timeout=15, what="recovery"
            )
            ready_after = condition(kmock, "late", "Ready")
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    assert down[:2] == ("False", "Unreachable")
    assert f"127.0.0.1:{port}" in down[2]
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

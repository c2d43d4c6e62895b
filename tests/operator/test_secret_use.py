"""Secrets an LLMCache names are used only when labelled llmcache.dev/usable=true (issue 15, finding 2).

The operator's real kopf loop against kmock's Kubernetes emulator (faked: the Kubernetes
API, which here ignores the Accept header of a metadata-only read and answers the whole
object; what the operator asked for is read from kmock's request log). The backend is a
listener the LLMCache's author controls (tests/operator/listener.py): before this fix,
it received `HELLO 3 AUTH default <the Secret's value>` from the operator's probe, and its
reply was written into the status.
"""

from __future__ import annotations

import json
from typing import Any

import kmock as kmock_lib

from llmcache_operator import k8s
from llmcache_operator.options import Options
from tests.operator.kopf_loop import (
    LLMCACHES,
    create,
    eventually,
    llmcache,
    merge_patch,
    path_of,
    running_operator,
    secret,
    secrets_path,
)
from tests.operator.listener import MARKER, Listener, listening

OPTIONS = Options(webhook=None, retry_delay=0.3, backend_timeout=2.0)
NS = "team-a"
PASSWORD = "payments-db-password-do-not-leak"


def condition(kmock: kmock_lib.KubernetesEmulator, name: str, kind: str) -> tuple[str, str, str] | None:
    for found in kmock.objects[LLMCACHES, NS, name].get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found["status"], found["reason"], found["message"]
    return None


def value_reads(kmock: kmock_lib.KubernetesEmulator, name: str) -> list[Any]:
    """GETs of the Secret that asked for the whole object, values included (not metadata only)."""
    path = f"{secrets_path(NS)}/{name}"
    return [
        r for r in kmock
        if r.method.name == "GET" and r.url.path == path and r.headers.get("Accept") != k8s.PARTIAL_METADATA
    ]  # fmt: skip


def has_config_map(kmock: kmock_lib.KubernetesEmulator, name: str) -> bool:
    try:
        kmock.objects["v1/configmaps", NS, f"llmcache-{name}"]
    except KeyError:
        return False
    return True


def redis_spec(listener: Listener) -> dict[str, Any]:
    ref = {"name": "payments-db", "key": "password"}
    return {"backend": {"type": "redis", "redis": {"url": listener.redis_url, "passwordSecretRef": ref}}}


async def test_a_secret_without_the_usable_label_is_neither_read_nor_sent_and_the_llmcache_is_refused(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    async with listening() as listener, running_operator(kmock, OPTIONS):
        await create(kmock, secrets_path(NS), secret("payments-db", NS, {"password": PASSWORD}, usable=False))
        await create(kmock, path_of(NS), llmcache("c", NS, redis_spec(listener)))
        allowed = await eventually(lambda: condition(kmock, "c", "Allowed"), what="an Allowed condition")
        ready = condition(kmock, "c", "Ready")
        status = kmock.objects[LLMCACHES, NS, "c"]["status"]

    assert allowed[:2] == ("False", "SecretNotUsable")
    assert allowed[2].startswith("spec.backend.redis.passwordSecretRef: Secret 'payments-db' is not labelled")
    assert ready is not None and ready[:2] == ("False", "NotAllowed")
    assert (listener.connections, bytes(listener.received)) == (0, b"")  # nothing was sent anywhere
    assert value_reads(kmock, "payments-db") == []  # its labels were read, never its values
    assert not has_config_map(kmock, "c")
    assert "configHash" not in status
    assert PASSWORD not in json.dumps(status, default=str)


async def test_once_labelled_the_secret_goes_only_where_the_sidecar_sends_it_and_no_reply_is_echoed(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    async with listening() as listener, running_operator(kmock, OPTIONS):
        await create(kmock, secrets_path(NS), secret("payments-db", NS, {"password": PASSWORD}, usable=False))
        await create(kmock, path_of(NS), llmcache("c", NS, redis_spec(listener)))
        await eventually(lambda: condition(kmock, "c", "Allowed"), what="an Allowed condition")
        await merge_patch(
            kmock, f"{secrets_path(NS)}/payments-db", {"metadata": {"labels": {"llmcache.dev/usable": "true"}}}
        )
        reachable = await eventually(
            lambda: (
                condition(kmock, "c", "BackendReachable")[0] == "False" and condition(kmock, "c", "BackendReachable")
            ),
            what="the backend probed once the Secret is labelled (a retry, no edit)",
        )
        allowed = condition(kmock, "c", "Allowed")
        status = kmock.objects[LLMCACHES, NS, "c"]["status"]

    assert allowed is not None and allowed[:2] == ("True", "WithinPolicy")
    # The spec's backend is where every sidecar of this LLMCache sends the password too: the
    # label is its owner's consent to that; nowhere else gets it.
    assert PASSWORD.encode() in bytes(listener.received)
    assert reachable == ("False", "Unreachable", "the backend answered with an error (ResponseError)")
    assert MARKER not in json.dumps(status, default=str)
    assert has_config_map(kmock, "c")


async def test_s3_keys_in_an_unlabelled_secret_never_reach_the_endpoint_the_author_chose(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    async with listening() as listener, running_operator(kmock, OPTIONS):
        await create(kmock, secrets_path(NS), secret("aws", NS, {"id": "AKIA-LEAK", "key": PASSWORD}, usable=False))
        s3 = {
            "bucket": "b",
            "endpointUrl": listener.http_url,
            "accessKeyIdSecretRef": {"name": "aws", "key": "id"},
            "secretAccessKeySecretRef": {"name": "aws", "key": "key"},
        }
        await create(kmock, path_of(NS), llmcache("c", NS, {"backend": {"type": "s3", "s3": s3}}))
        allowed = await eventually(lambda: condition(kmock, "c", "Allowed"), what="an Allowed condition")

    assert allowed[:2] == ("False", "SecretNotUsable")
    assert listener.connections == 0
    assert value_reads(kmock, "aws") == []


async def test_a_missing_secret_is_refused_too_because_one_created_later_would_be_mounted_unchecked(
    kmock: kmock_lib.KubernetesEmulator,
) -> None:
    async with listening() as listener, running_operator(kmock, OPTIONS):
        await create(kmock, path_of(NS), llmcache("c", NS, redis_spec(listener)))
        missing = await eventually(lambda: condition(kmock, "c", "Allowed"), what="an Allowed condition")
        await create(kmock, secrets_path(NS), secret("payments-db", NS, {"password": PASSWORD}))
        await eventually(lambda: condition(kmock, "c", "Allowed")[0] == "True", what="allowed once it exists, labelled")

    assert missing[:2] == ("False", "SecretNotFound")
    assert "create it with the label llmcache.dev/usable=true" in missing[2]

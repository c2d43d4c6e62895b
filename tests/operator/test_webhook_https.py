"""The admission webhook over HTTPS: real AdmissionReview v1 JSON, the real operator.

kopf's webhook server (our AdmissionServer) runs inside the real operator loop with a
certificate from a test CA; the LLMCaches it injects come from kmock's emulated API
(faked: the Kubernetes API). The answers are read as the API server reads them:
base64 JSON Patch, applied with `jsonpatch`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonpatch
import kmock as kmock_lib
import kopf
import kubernetes_validate

from llmcache_operator import injection, patching, webhook
from llmcache_operator.injection import Policy
from llmcache_operator.memo import MEMO_KEY, Shared
from llmcache_operator.options import Options, WebhookOptions
from tests.operator.caches import SHARED, cache
from tests.operator.kopf_loop import (
    LLMCACHES,
    create,
    delete,
    eventually,
    llmcache,
    merge_patch,
    path_of,
    running_operator,
    secret,
    secrets_path,
)
from tests.realparts import TLS, free_port

NS = "team-a"


def review(pod: dict[str, Any], *, namespace: str = NS, operation: str = "CREATE") -> dict[str, Any]:
    """An AdmissionReview as the API server sends it for a pod (the object without its namespace)."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"].get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "uid": "1", "groups": ["system:masters"]},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def app_pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }


class Webhook:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def post(self, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with self.session.post(self.url, data=data, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, text

    async def admit(self, pod: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """POST a review of `pod`; the response payload and the decoded JSON Patch."""
        request = review(pod)
        status, answer = await self.post(request)
        assert status == 200, answer
        assert (answer["apiVersion"], answer["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
        payload = answer["response"]
        assert payload["uid"] == request["request"]["uid"]
        assert payload["allowed"] is True
        if "patch" not in payload:
            return payload, []
        assert payload["patchType"] == "JSONPatch"
        return payload, json.loads(base64.b64decode(payload["patch"]))


@contextlib.asynccontextmanager
async def operator_with_webhook(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS, *, server_minor: int | None = None
) -> AsyncIterator[Webhook]:
    port = free_port()
    options = Options(
        webhook=WebhookOptions(addr="127.0.0.1", port=port, certfile=str(tls.certfile), keyfile=str(tls.keyfile)),
        retry_delay=0.3,
    )
    context = ssl.create_default_context(cadata=tls.ca_pem.decode())
    async with (
        running_operator(kmock, options, server_minor=server_minor),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        hook = Webhook(session, f"https://127.0.0.1:{port}/{webhook.HANDLER_ID}")
        await create(kmock, secrets_path(NS), secret("redis", NS, {"password": "pw"}))  # SHARED's, labelled usable
        await create(kmock, path_of(NS), llmcache("shared", NS, SHARED))
        await eventually(lambda: kmock.objects[LLMCACHES, NS, "shared"]["status"]["configHash"], what="reconciled")
        await serving(hook)
        await injecting(hook)
        yield hook


async def injecting(hook: Webhook) -> None:
    """Wait (bounded) until the webhook has seen the reconciled status: a labelled pod gets the sidecar."""
    for _ in range(100):
        _, patch = await hook.admit(app_pod("probe", {"llmcache.dev/enabled": "true"}))
        if patch:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the webhook never injected a labelled pod")


async def serving(hook: Webhook) -> None:
    """Wait (bounded) until the webhook server, started by the operator, answers."""
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientError):
            status, _ = await hook.post(review(app_pod("probe")))
            if status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the webhook server did not answer")


async def test_a_labelled_pod_gets_the_sidecar_and_a_second_pass_changes_nothing(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS
) -> None:
    pod = app_pod("chat", {"llmcache.dev/enabled": "true"})
    async with operator_with_webhook(kmock, tls) as hook:
        await serving(hook)
        _, patch = await hook.admit(pod)
        patched = jsonpatch.apply_patch(pod, patch)
        again, second_patch = await hook.admit(patched)

    containers = [c["name"] for c in patched["spec"]["containers"]]
    assert containers == ["llmcache-sidecar", "app"]  # no native sidecars: kmock did not say 1.29
    assert patched["metadata"]["annotations"]["llmcache.dev/injected"] == "shared"
    env = {e["name"]: e["value"] for e in patched["spec"]["containers"][1]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/openai/v1"
    assert {v["name"] for v in patched["spec"]["volumes"]} == {
        "llmcache-config",
        "llmcache-redis-password",
        "llmcache-tenant-salt",
    }
    kubernetes_validate.validate(patched, "1.30.0", strict=True)
    assert second_patch == []
    assert "patchType" not in again


async def test_a_pod_on_a_1_29_server_gets_a_native_sidecar(kmock: kmock_lib.KubernetesEmulator, tls: TLS) -> None:
    pod = app_pod("chat", {"llmcache.dev/enabled": "true"})
    async with operator_with_webhook(kmock, tls, server_minor=29) as hook:
        await serving(hook)
        _, patch = await hook.admit(pod)
    patched = jsonpatch.apply_patch(pod, patch)
    (sidecar,) = patched["spec"]["initContainers"]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("llmcache-sidecar", "Always")
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app"]


async def test_an_unlabelled_pod_is_allowed_unchanged_and_so_is_every_pod_after_the_llmcache_is_deleted(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS
) -> None:
    async with operator_with_webhook(kmock, tls) as hook:
        await serving(hook)
        _, unlabelled = await hook.admit(app_pod("plain"))
        await delete(kmock, path_of(NS, "shared"))
        patches: list[list[dict[str, Any]]] = []

        async def no_patch_any_more() -> bool:
            _, found = await hook.admit(app_pod("chat", {"llmcache.dev/enabled": "true"}))
            patches.append(found)
            return not found

        for _ in range(100):
            if await no_patch_any_more():
                break
            await asyncio.sleep(0.1)
    assert unlabelled == []
    assert patches[-1] == []


async def test_a_pod_created_before_its_llmcache_was_ever_reconciled_is_left_alone_with_a_warning(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS
) -> None:
    """kmock refuses to store ConfigMaps in the namespace (faked), so the first reconcile never completes:
    the LLMCache is known to the webhook, but has no status.configHash and maybe no ConfigMap."""
    config_maps = kmock[f"post /api/v1/namespaces/{NS}/configmaps"]
    config_maps << 503
    port = free_port()
    options = Options(
        webhook=WebhookOptions(addr="127.0.0.1", port=port, certfile=str(tls.certfile), keyfile=str(tls.keyfile)),
    )
    context = ssl.create_default_context(cadata=tls.ca_pem.decode())
    async with (
        running_operator(kmock, options),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        hook = Webhook(session, f"https://127.0.0.1:{port}/{webhook.HANDLER_ID}")
        await serving(hook)
        await create(kmock, secrets_path(NS), secret("redis", NS, {"password": "pw"}))
        await create(kmock, path_of(NS), llmcache("shared", NS, SHARED))
        await eventually(lambda: len(config_maps), what="the first reconcile tried to write the ConfigMap")
        answer, patch = await hook.admit(app_pod("early", {"llmcache.dev/enabled": "true"}))
        status = kmock.objects[LLMCACHES, NS, "shared"].get("status") or {}
        uid = kmock.objects[LLMCACHES, NS, "shared"]["metadata"]["uid"]
        events = await eventually(lambda: not_injected_events(kmock), what="an event on the LLMCache")

    assert patch == []
    assert "configHash" not in status
    assert answer["warnings"] == [
        "llmcache: sidecar not injected: LLMCache shared is not reconciled yet (no status.configHash),"
        " so its config may not exist"
    ]
    # `kubectl describe llmc shared` lists it: the pod itself does not exist yet at admission time.
    (event,) = events
    assert event["type"] == "Warning"
    involved = {k: event["involvedObject"][k] for k in ("apiVersion", "kind", "name", "namespace", "uid")}
    assert involved == {"apiVersion": "llmcache.dev/v1alpha1", "kind": "LLMCache", "name": "shared",
                        "namespace": NS, "uid": uid}  # fmt: skip
    assert event["message"].startswith("Pod early was created without the sidecar: LLMCache shared is not reconciled")


def not_injected_events(kmock: kmock_lib.KubernetesEmulator) -> list[Any]:
    return [
        obj
        for (res, _, _), obj in kmock.objects.items()
        if res.plural == "events" and obj.get("reason") == webhook.NOT_INJECTED_REASON
    ]


MALFORMED: list[tuple[Any, str, str]] = [
    (
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "u0"}},
        "u0",
        "expected kind AdmissionReview, apiVersion admission.k8s.io/v1",
    ),
    ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}, "", "request: missing"),
    (
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": "u1"}},
        "u1",
        "request.resource: expected group, version and resource",
    ),
    (
        {**review(app_pod("x")), "request": {**review(app_pod("x"))["request"], "uid": "u2", "object": None}},
        "u2",
        "request.object: missing",
    ),
    ([1, 2, 3], "", "the body is not a JSON object"),
]


async def test_a_malformed_review_gets_a_well_formed_refusal(kmock: kmock_lib.KubernetesEmulator, tls: TLS) -> None:
    async with operator_with_webhook(kmock, tls) as hook:
        await serving(hook)
        answers = [await hook.post(body) for body, _, _ in MALFORMED]
        not_json = await hook.post(None, raw=b"{not json")
    for (_, uid, message), (status, answer) in zip(MALFORMED, answers, strict=True):
        assert status == 200
        assert answer == {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": False, "status": {"code": 400, "message": message}},
        }
    assert not_json[0] == 400  # kopf's own answer to a body that is not JSON


class BrokenIndex:
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("index exploded")


async def test_an_error_while_injecting_allows_the_pod_with_a_warning() -> None:
    """The handler called as a plain function, with an index that fails."""
    memo = kopf.Memo({MEMO_KEY: Shared(api=None, options=Options(), policy=Policy())})  # type: ignore[arg-type]
    patch, warnings = kopf.Patch(), []
    pod = {**app_pod("chat", {"llmcache.dev/enabled": "true"}), "metadata": {"name": "chat", "namespace": NS}}
    await webhook.inject_sidecar(
        body=kopf.Body(pod), patch=patch, memo=memo, warnings=warnings, llmcaches=BrokenIndex()
    )
    assert not patch
    assert warnings == ["llmcache: sidecar not injected (RuntimeError: index exploded)"]


def test_the_webhook_answer_is_the_desired_pod_and_nothing_else() -> None:
    """kopf answers with the diff after our patch function; applied, it gives exactly desired_pod()."""
    pod = app_pod("chat", {"llmcache.dev/enabled": "true"})
    pod["metadata"]["namespace"] = NS
    desired = injection.desired_pod(pod, cache(SHARED, "shared", NS), Policy())
    patch = kopf.Patch(body=kopf.Body(pod))
    patch.fns.append(patching.becoming(desired))
    assert jsonpatch.apply_patch(pod, patch.as_json_patch()) == desired


# --- What the cluster admin did not allow is refused and never injected (issue 15, findings 1, 2, 5) --------

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "image": ({"sidecar": {"image": "evil.example/x:1"}}, "ImageNotAllowed"),
    "hosts": (
        {
            "mode": "transparent",
            "transparent": {"hosts": {"login.microsoftonline.com": "openai", "sts.amazonaws.com": "openai"}},
        },
        "HostNotAllowed",
    ),
    "elsewhere": ({"namespace": "team-b"}, "CacheNamespaceNotAllowed"),
    "secret": (
        {
            "backend": {
                "type": "redis",
                "redis": {"url": "redis://r:6379", "passwordSecretRef": {"name": "payments", "key": "pw"}},
            }
        },
        "SecretNotUsable",
    ),
}


def has(kmock: kmock_lib.KubernetesEmulator, kind: str, name: str) -> bool:
    try:
        kmock.objects[kind, NS, name]
    except KeyError:
        return False
    return True


async def test_an_llmcache_beyond_what_the_admin_allows_is_refused_writes_nothing_and_is_never_injected(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS
) -> None:
    answers: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    async with operator_with_webhook(kmock, tls) as hook:
        await create(kmock, secrets_path(NS), secret("payments", NS, {"pw": "x"}, usable=False))
        for name, (spec, _) in REFUSED.items():
            await create(kmock, path_of(NS), llmcache(name, NS, {"podSelector": {}, **spec}))
        for name in REFUSED:
            await eventually(
                lambda name=name: any(  # type: ignore[misc]
                    c["type"] == "Allowed"
                    for c in kmock.objects[LLMCACHES, NS, name].get("status", {}).get("conditions", [])
                ),
                what=f"{name}: an Allowed condition",
            )
            answers[name] = await hook.admit(app_pod(f"pod-{name}", {"app": "payments"}) | {
                "metadata": {"name": f"pod-{name}", "annotations": {"llmcache.dev/inject": name}}})  # fmt: skip
        statuses = {name: dict(kmock.objects[LLMCACHES, NS, name]["status"]) for name in REFUSED}

    for name, (_, reason) in REFUSED.items():
        allowed = next(c for c in statuses[name]["conditions"] if c["type"] == "Allowed")
        ready = next(c for c in statuses[name]["conditions"] if c["type"] == "Ready")
        answer, patch = answers[name]
        assert (allowed["status"], allowed["reason"]) == ("False", reason), name
        assert (ready["status"], ready["reason"]) == ("False", "NotAllowed"), name
        assert patch == [], name
        assert answer["warnings"][0].startswith(f"llmcache: sidecar not injected: LLMCache {name}"), answer
        assert "configHash" not in statuses[name]
        assert not has(kmock, "v1/configmaps", f"llmcache-{name}"), name
    assert not has(kmock, "v1/secrets", "llmcache-hosts-ca")  # no CA was issued for those hosts


async def test_an_edit_beyond_the_allowlist_stops_new_injections_and_keeps_the_last_config(
    kmock: kmock_lib.KubernetesEmulator, tls: TLS
) -> None:
    async with operator_with_webhook(kmock, tls) as hook:
        before = dict(kmock.objects["v1/configmaps", NS, "llmcache-shared"]["data"])
        await merge_patch(
            kmock,
            path_of(NS, "shared"),
            {"metadata": {"generation": 2}, "spec": {"sidecar": {"image": "evil.example/x:1"}}},
        )
        patches: list[list[dict[str, Any]]] = []
        for _ in range(100):
            answer, found = await hook.admit(app_pod("chat", {"llmcache.dev/enabled": "true"}))
            patches.append(found)
            if not found:
                break
            await asyncio.sleep(0.1)
        after = dict(kmock.objects["v1/configmaps", NS, "llmcache-shared"]["data"])

    assert patches[-1] == []
    assert "spec.sidecar.image: 'evil.example/x:1' is not an allowed sidecar image" in answer["warnings"][0]
    assert after == before  # running sidecars keep the config they had

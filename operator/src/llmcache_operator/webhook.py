"""The mutating admission webhook: a Pod being created gets the sidecar, or nothing.

kopf serves it over HTTPS at `POST /inject-sidecar` (the handler id). The
MutatingWebhookConfiguration is not managed here: the Helm chart owns it (selectors,
`failurePolicy: Ignore`, a short timeout, `reinvocationPolicy`), and so does the
end-to-end test.

This webhook never denies a pod. Whatever goes wrong while injecting, the pod is
allowed unchanged with a warning: a pod without a cache still runs (Dapr's lesson,
in K8S-TESTING.md). A request that is not an AdmissionReview at all gets a
well-formed AdmissionReview answer with `allowed: false` and status 400, as
controller-runtime answers one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import kopf

from llmcache_operator import injection, k8s, patching
from llmcache_operator.memo import shared
from llmcache_operator.options import WebhookOptions
from llmcache_operator.spec import GROUP, KIND, VERSION, Cache

HANDLER_ID = "inject-sidecar"
NOT_INJECTED_REASON = "PodNotInjected"
REVIEW_VERSION = "admission.k8s.io/v1"
logger = logging.getLogger(__name__)


@kopf.on.mutate("v1", "pods", id=HANDLER_ID, operations={"CREATE"}, ignore_failures=True, side_effects=False)
async def inject_sidecar(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    warnings: list[str],
    **kwargs: Any,
) -> None:
    llmcaches: kopf.Index[str, Cache] = kwargs["llmcaches"]
    namespace = body.metadata.namespace or ""
    pod_name = body.metadata.name or body.metadata.get("generateName", "") + "*"
    try:
        policy = shared(memo).policy
        decision = injection.inject_required(body, namespace, llmcaches.get(namespace, []), policy)
        if decision.cache is None:
            if decision.notable:
                logger.info("pod %s/%s: not injected: %s", namespace, pod_name, decision.reason)
                warnings.append(f"llmcache: sidecar not injected: {decision.reason}")
                if decision.wanted is not None:  # the pod does not exist yet: the event goes on its LLMCache
                    message = f"Pod {pod_name} was created without the sidecar: {decision.reason}."
                    post = _post_warning(shared(memo).api, llmcache_reference(decision.wanted), message)
                    shared(memo).spawn(post, name=f"llmcache-event-{namespace}-{pod_name}")
            else:
                logger.debug("pod %s/%s: not injected: %s", namespace, pod_name, decision.reason)
            return
        desired = injection.desired_pod(body, decision.cache, policy)
    except Exception as exc:
        logger.exception("pod %s/%s: not injected because of an error", namespace, pod_name)
        warnings.append(f"llmcache: sidecar not injected ({type(exc).__name__}: {exc})")
        return
    logger.info("pod %s/%s: injecting %s (%s)", namespace, pod_name, decision.cache.name, decision.reason)
    patch.fns.append(patching.becoming(desired))


async def _post_warning(api: k8s.Api, involved: Mapping[str, Any], message: str) -> None:
    try:
        await api.post_event(involved, type_="Warning", reason=NOT_INJECTED_REASON, message=message)
    except Exception:  # an event is a courtesy: the admission answer has gone out already
        logger.warning("could not post the %s event", NOT_INJECTED_REASON, exc_info=True)


def llmcache_reference(cache: Cache) -> dict[str, Any]:
    """Enough of the LLMCache for kopf to post an event about it (`kubectl describe llmc` shows it)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": cache.name, "namespace": cache.namespace, "uid": cache.uid},
    }


class AdmissionServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, with the request checked before kopf reads it.

    - A body that is JSON but not an AdmissionReview v1 with a request (uid, resource,
      object, userInfo) gets an AdmissionReview answer: allowed false, status 400.
    - For CREATE the object may lack metadata.namespace (the API server sends it in
      request.namespace); it is filled in so that handlers see where the pod goes.
    """

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def checked(
            request: Any,
            *,
            webhook: str | None = None,
            headers: dict[str, str] | None = None,
            sslpeer: dict[str, Any] | None = None,
        ) -> Any:
            problem = review_problem(request)
            if problem is not None:
                logger.warning("malformed admission review: %s", problem)
                return errored(request, 400, problem)
            payload = request["request"]
            metadata = payload["object"].setdefault("metadata", {})
            if not metadata.get("namespace") and payload.get("namespace"):
                metadata["namespace"] = payload["namespace"]
            return await fn(request, webhook=webhook, headers=headers, sslpeer=sslpeer)

        async for client_config in super().__call__(cast(kopf.WebhookFn, checked)):
            yield client_config


class NoServer:
    """Serves nothing: for operators run with the webhook turned off (kopf insists on a server)."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        logger.info("the admission webhook is off: pods are not injected by this operator")
        await asyncio.Event().wait()
        yield kopf.WebhookClientConfig()  # pragma: no cover - never reached


def server(options: WebhookOptions | None) -> AdmissionServer | NoServer:
    if options is None:
        return NoServer()
    return AdmissionServer(addr=options.addr, port=options.port, certfile=options.certfile, pkeyfile=options.keyfile)


def review_problem(review: Any) -> str | None:
    """Why `review` is not an AdmissionReview request kopf can serve, or None."""
    if not isinstance(review, Mapping):
        return "the body is not a JSON object"
    if review.get("kind") != "AdmissionReview" or review.get("apiVersion") != REVIEW_VERSION:
        return f"expected kind AdmissionReview, apiVersion {REVIEW_VERSION}"
    payload = review.get("request")
    if not isinstance(payload, Mapping):
        return "request: missing"
    if not isinstance(payload.get("uid"), str) or not payload["uid"]:
        return "request.uid: missing"
    resource = payload.get("resource")
    if not isinstance(resource, Mapping) or not all(
        isinstance(resource.get(k), str) for k in ("group", "version", "resource")
    ):
        return "request.resource: expected group, version and resource"
    if not isinstance(payload.get("object"), Mapping):
        return "request.object: missing"
    if not isinstance(payload.get("userInfo"), Mapping):
        return "request.userInfo: missing"
    return None


def errored(review: Any, code: int, message: str) -> dict[str, Any]:
    """An AdmissionReview answer that refuses `review` with an HTTP-like status."""
    payload = review.get("request") if isinstance(review, Mapping) else None
    uid = payload.get("uid") if isinstance(payload, Mapping) else None
    return {
        "apiVersion": REVIEW_VERSION,
        "kind": "AdmissionReview",
        "response": {
            "uid": uid if isinstance(uid, str) else "",
            "allowed": False,
            "status": {"code": code, "message": message},
        },
    }

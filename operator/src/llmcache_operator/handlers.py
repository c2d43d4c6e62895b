"""The kopf handlers: thin. Each parses, calls a pure function, applies, writes status.

Run with `python -m llmcache_operator` or `kopf run -m llmcache_operator.handlers -A`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any, NoReturn

import kopf

from llmcache_operator import (
    allowlist,
    applying,
    ca_checks,
    k8s,
    loops,
    probe,
    reconcile,
    savings,
    secret_refs,
    webhook,
    webhook_tls,
)
from llmcache_operator import spec as model
from llmcache_operator.allowlist import Refusal
from llmcache_operator.memo import MEMO_KEY, Shared, shared
from llmcache_operator.options import Options
from llmcache_operator.patching import INJECTED_ANNOTATION
from llmcache_operator.spec import GROUP, PLURAL, VERSION, Cache
from llmcache_sidecar.config import ConfigError

__all__ = ["webhook"]  # imported for its @kopf.on.mutate handler
kopf_logger = logging.getLogger(__name__)
ANNOTATION_PREFIX = "llmcache.dev"
PodsIndex = kopf.Index[tuple[str, str], str]


@kopf.on.startup()
async def startup_fn(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Configure kopf, connect, and learn whether the server runs native sidecars.

    Tests (and embedders) may put `api` and `options` in the memo beforehand.
    """
    options: Options = memo.get("options") or Options.from_env(os.environ)
    api: k8s.Api = memo.get("api") or await k8s.Api.from_environment()
    # Progress and diff-base in annotations: the CRD's structural schema would prune status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.posting.level = logging.WARNING
    if options.watch_namespaces:
        # Serving named namespaces, kopf would still list and watch every namespace and CRD
        # of the cluster (to notice them come and go), which the chart's namespaced Roles do
        # not grant: it discovers the resources once instead, and takes the names as given.
        settings.scanning.disabled = True
    tls = webhook_tls.TLSOptions.from_env(os.environ)
    if tls is not None and options.webhook is not None:  # no cert-manager: the operator keeps its own CA
        await webhook_tls.ensure(api, tls, options.webhook.certfile, options.webhook.keyfile)
    settings.admission.server = webhook.server(options.webhook)
    version = await api.server_version()
    memo[MEMO_KEY] = rt = Shared(api=api, options=options, policy=options.policy(version))
    checks = loops.every(
        rt.options.ca_check_interval, lambda: ca_checks.check_transparent_caches(rt), "checking the interception CAs"
    )
    rt.ca_checks = asyncio.create_task(checks, name="llmcache-ca-checks")
    readings = loops.every(rt.options.savings_interval, lambda: read_savings(rt), "reading what the caches saved")
    rt.savings_reads = asyncio.create_task(readings, name="llmcache-savings")
    logger.info("API server %s; native sidecars: %s", version, memo[MEMO_KEY].policy.native_sidecars)


@kopf.on.cleanup()
async def cleanup_fn(memo: kopf.Memo, **_: Any) -> None:
    rt = shared(memo)
    for task in [rt.ca_checks, rt.savings_reads, *rt.tasks]:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await rt.api.aclose()


@kopf.index(GROUP, VERSION, PLURAL)
def llmcaches(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    uid: str | None,
    logger: kopf.Logger,
    **_: Any,
) -> dict[str, Cache] | None:
    """Namespace -> its valid caches, for the webhook. An invalid edit keeps the last good one.

    A cache without `status.configHash` has not been reconciled: its ConfigMap may not
    exist, so it is indexed as not reconciled and the webhook leaves pods alone. One the
    operator refused, or whose referenced Secrets it has not checked for this generation,
    is indexed as refused (`reconcile.refused_by_status`): pods get nothing from it.
    The iptables variant is injected only once reconcile has found the namespace's Pod
    Security level allows it; until then, and where it does not, pods get the proxy variant.
    """
    if namespace is None:
        return None
    try:
        cache = _parse(spec, name, namespace)
    except ConfigError as exc:
        logger.warning("not indexed for injection: %s", exc)
        return None
    if cache.interception == "iptables" and not reconcile.condition_true(status, reconcile.INTERCEPTION_ALLOWED):
        cache = dataclasses.replace(cache, interception="proxy")
    if reconcile.read_status(status).config_hash is None:
        cache = dataclasses.replace(cache, reconciled=False)
    generation = meta.get("generation", 0)
    refused = reconcile.refused_by_status(status, generation, uses_secrets=bool(cache.secrets))
    if refused is not None:
        cache = dataclasses.replace(cache, refused=refused)
    return {namespace: dataclasses.replace(cache, uid=uid or "")}


@kopf.index("v1", "pods", annotations={INJECTED_ANNOTATION: kopf.PRESENT})
def injected_pods(
    name: str, namespace: str | None, annotations: kopf.Annotations, **_: Any
) -> dict[tuple[str, str], str]:
    """(namespace, cache) -> names of the pods that carry its sidecar."""
    return {(namespace or "", annotations[INJECTED_ANNOTATION]): name}


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_fn(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Check what the spec uses, render the ConfigMap (and the CA), probe the backend, write status.

    Retries while the backend is down, a referenced Secret is not usable yet, or the
    ConfigMap's name is taken.
    """
    injected_pods: PodsIndex = kwargs["injected_pods"]
    rt, name, namespace, generation = shared(memo), meta["name"], meta["namespace"], meta.get("generation", 0)
    try:
        cache = _parse(spec, name, namespace)
    except ConfigError as exc:
        patch.status.update(reconcile.status_after_invalid(status, error=exc, generation=generation, now=_now()))
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    refusal = allowlist.refusal(cache, rt.options.allowlist, rt.options.sidecar_image)
    refusal = refusal or await secret_refs.check(rt.api, cache)
    if refusal is not None:
        _refuse(body, patch, status, refusal, generation, rt)
    # The tenant salt: made once (a Secret that exists already is kept, whoever made it).
    await rt.api.create_secret(reconcile.salt_secret(cache, uid=meta["uid"], value=secrets.token_urlsafe(32)))
    try:
        rendered, transparent = await applying.apply(rt, cache, meta["uid"])
    except k8s.NotOwned as exc:
        patch.status.update(
            reconcile.status_after_conflict(status, message=str(exc), generation=generation, now=_now())
        )
        kopf.warn(body, reason="ConfigMapConflict", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=rt.options.retry_delay) from exc
    backend = await probe.check_backend(
        spec,
        name=name,
        namespace=namespace,
        read_secret=_usable_secrets(rt, namespace),
        ping_timeout=rt.options.backend_timeout,
    )
    if backend.reachable and reconcile.flush_requested(status, cache):
        await _flush_shared(rt, body, spec, name, namespace)
    count = len(injected_pods.get((namespace, name), []))
    rt.injected_counts[namespace, name] = count
    patch.status.update(
        reconcile.status_after_reconcile(
            status,
            cache=cache,
            rendered=rendered,
            backend=backend,
            generation=generation,
            injected_pods=count,
            now=_now(),
            transparent=transparent,
        )
    )
    if backend.reachable is False:
        raise kopf.TemporaryError(f"backend unreachable: {backend.message}", delay=rt.options.retry_delay)


async def _flush_shared(rt: Shared, body: kopf.Body, raw: Mapping[str, Any], name: str, namespace: str) -> None:
    """A new spec.flush, applied in a shared backend at once (the ConfigMap follows within minutes)."""
    try:
        done = await probe.flush_shared(
            raw,
            name=name,
            namespace=namespace,
            read_secret=_usable_secrets(rt, namespace),
            flush_timeout=rt.options.backend_timeout,
        )
    except probe.FlushError as exc:
        message = f"The backend did not take the flush ({exc}); the sidecars flush when they reload their config."
        kopf_logger.warning("%s/%s: %s", namespace, name, message)
        kopf.warn(body, reason="FlushDelayed", message=message)
    else:
        kopf_logger.info("%s/%s: %s", namespace, name, done)


def _refuse(
    body: kopf.Body, patch: kopf.Patch, status: kopf.Status, refusal: Refusal, generation: int, rt: Shared
) -> NoReturn:
    """Report a spec the operator may not use, and stop: nothing is written for it."""
    patch.status.update(reconcile.status_after_refusal(status, refusal=refusal, generation=generation, now=_now()))
    kopf.warn(body, reason="NotAllowed", message=refusal.message)
    if refusal.retry:
        raise kopf.TemporaryError(f"not allowed: {refusal.message}", delay=rt.options.retry_delay)
    raise kopf.PermanentError(f"not allowed: {refusal.message}")


SAVINGS_AT_ONCE = 8
"""Caches whose backends are read at the same time (each read is bounded by the backend timeout)."""


async def read_savings(rt: Shared) -> None:
    """Every cache: what it saved over the last hour, read from its backend, into status.savings."""
    now = datetime.datetime.now(datetime.UTC)
    gate = asyncio.Semaphore(SAVINGS_AT_ONCE)

    async def one(obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name, namespace = meta["name"], meta["namespace"]
        if not reconcile.condition_true_for(obj.get("status"), reconcile.ALLOWED, meta.get("generation", 0)):
            return  # not allowed, or not checked yet for this generation (its Secrets): no backend is contacted
        try:
            cache = _parse(obj.get("spec") or {}, name, namespace)
        except ConfigError:
            return  # reconcile reports it
        if allowlist.refusal(cache, rt.options.allowlist, rt.options.sidecar_image) is not None:
            return  # the operator's settings changed since: reconcile reports it

        async with gate:
            try:
                found = await savings.compute(
                    obj.get("spec"),
                    name=name,
                    namespace=namespace,
                    read_secret=_usable_secrets(rt, namespace),
                    call_timeout=rt.options.backend_timeout,
                    now=now,
                )
            except ConfigError:
                return  # reconcile reports it
            await rt.api.patch_status(namespace, name, {"savings": found})

    caches = await rt.api.list_llmcaches(rt.options.watch_namespaces)  # only those: the namespaced Roles allow no more
    for obj, failed in zip(caches, await asyncio.gather(*map(one, caches), return_exceptions=True), strict=True):
        if isinstance(failed, Exception):
            meta = obj.get("metadata") or {}
            kopf_logger.warning("savings of %s/%s not written: %s", meta.get("namespace"), meta.get("name"), failed)


@kopf.on.event("v1", "pods", annotations={INJECTED_ANNOTATION: kopf.PRESENT})
async def count_injected_fn(
    namespace: str | None, annotations: kopf.Annotations, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Keep status.injectedPods of the pod's cache current; writes only when the count moves."""
    injected_pods: PodsIndex = kwargs["injected_pods"]
    rt, key = shared(memo), (namespace or "", annotations[INJECTED_ANNOTATION])
    async with rt.count_writes.setdefault(key, asyncio.Lock()):
        count = len(injected_pods.get(key, []))  # read under the lock: the index as it is now
        if rt.injected_counts.get(key) != count and await rt.api.patch_status(*key, {"injectedPods": count}):
            rt.injected_counts[key] = count


def _usable_secrets(rt: Shared, namespace: str) -> probe.SecretReader:
    """What the operator may read of `namespace`'s Secrets: the values of those labelled usable."""
    return lambda ref: rt.api.read_secret_key(namespace, ref, secret_refs.USABLE)


def _parse(raw: Mapping[str, Any], name: str, namespace: str) -> Cache:
    return model.parse(dict(raw), name=name, namespace=namespace)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

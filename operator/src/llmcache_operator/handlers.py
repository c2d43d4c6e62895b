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
from typing import Any

import kopf

from llmcache_operator import interception, interception_ca, k8s, probe, reconcile, webhook, webhook_tls
from llmcache_operator import spec as model
from llmcache_operator.options import Options
from llmcache_operator.patching import INJECTED_ANNOTATION
from llmcache_operator.runtime import MEMO_KEY, Runtime, runtime
from llmcache_operator.spec import GROUP, PLURAL, VERSION, Cache, Condition
from llmcache_sidecar import config
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
    tls = webhook_tls.TLSOptions.from_env(os.environ)
    if tls is not None and options.webhook is not None:  # no cert-manager: the operator keeps its own CA
        await webhook_tls.ensure(api, tls, options.webhook.certfile, options.webhook.keyfile)
    settings.admission.server = webhook.server(options.webhook)
    version = await api.server_version()
    memo[MEMO_KEY] = rt = Runtime(api=api, options=options, policy=options.policy(version))
    rt.ca_checks = asyncio.create_task(_check_forever(rt), name="llmcache-ca-checks")
    logger.info("API server %s; native sidecars: %s", version, memo[MEMO_KEY].policy.native_sidecars)


@kopf.on.cleanup()
async def cleanup_fn(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    if rt.ca_checks is not None:
        rt.ca_checks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rt.ca_checks
    await rt.api.aclose()


@kopf.index(GROUP, VERSION, PLURAL)
def llmcaches(
    spec: kopf.Spec, status: kopf.Status, name: str, namespace: str | None, logger: kopf.Logger, **_: Any
) -> dict[str, Cache] | None:
    """Namespace -> its valid caches, for the webhook. An invalid edit keeps the last good one.

    A cache without `status.configHash` has not been reconciled: its ConfigMap may not
    exist, so it is indexed as not reconciled and the webhook leaves pods alone.
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
    return {namespace: cache}


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
    """Render the ConfigMap (and the CA, in transparent mode), probe the backend, write status.

    Retries while the backend is down.
    """
    injected_pods: PodsIndex = kwargs["injected_pods"]
    rt, name, namespace, generation = runtime(memo), meta["name"], meta["namespace"], meta.get("generation", 0)
    try:
        cache = _parse(spec, name, namespace)
    except ConfigError as exc:
        patch.status.update(reconcile.status_after_invalid(status, error=exc, generation=generation, now=_now()))
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    # The tenant salt: made once (a Secret that exists already is kept, whoever made it).
    await rt.api.create_secret(reconcile.salt_secret(cache, uid=meta["uid"], value=secrets.token_urlsafe(32)))
    rendered, transparent = await _apply(rt, cache, meta["uid"])
    backend = await probe.check_backend(
        spec,
        name=name,
        namespace=namespace,
        read_secret=lambda ref: rt.api.read_secret_key(namespace, ref),
        ping_timeout=rt.options.backend_timeout,
    )
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


async def check_transparent_caches(rt: Runtime) -> None:
    """Every transparent cache: take its CA's next rotation step when it is due, and report it.

    A loop of the operator's own, not a kopf timer: kopf puts a finalizer on every resource
    that has a timer, and an LLMCache must stay deletable while the operator is down.
    """
    for obj in await rt.api.list_llmcaches():
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        if spec.get("mode") != "transparent":
            continue
        try:
            cache = _parse(spec, meta["name"], meta["namespace"])
        except ConfigError:
            continue  # reconcile reports it
        _, transparent = await _apply(rt, cache, meta["uid"])
        old = reconcile.read_status(obj.get("status"))
        generation = old.observed_generation or 0
        conditions = reconcile.with_transparent_conditions(
            old.conditions, transparent, now=_now(), generation=generation
        )
        if conditions != old.conditions:
            await rt.api.patch_status(
                cache.namespace, cache.name, {"conditions": [config.to_mapping(c) for c in conditions]}
            )


async def _check_forever(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.options.ca_check_interval)
        try:
            await check_transparent_caches(rt)
        except Exception:  # the next round tries again; kopf's own handlers are unaffected
            kopf_logger.exception("checking the interception CAs failed")


async def _apply(rt: Runtime, cache: Cache, uid: str) -> tuple[reconcile.Rendered, list[Condition]]:
    """Write the CA Secret (transparent mode) and the ConfigMap; the transparent conditions."""
    if not cache.transparent:
        rendered = reconcile.render(cache, uid=uid)
        await rt.api.apply_config_map(rendered.config_map)
        return rendered, []
    created = await rt.api.trusting_pods_created(cache.namespace, cache.ca_secret)
    intercepted: dict[str, str] = {}
    pending = error = None
    try:
        step = await interception_ca.ensure(rt.api, cache, uid, created, datetime.datetime.now(datetime.UTC))
    except interception_ca.CAError as exc:
        kopf_logger.warning("%s/%s: %s", cache.namespace, cache.name, exc)
        error = str(exc)
    else:
        intercepted, pending = step.intercepted, step.pending
        if step.changed:
            kopf_logger.info("%s/%s: %s", cache.namespace, cache.ca_secret, step.changed)
    iptables = None
    if cache.interception == "iptables":
        iptables = interception.pod_security_allows_iptables(await rt.api.read_namespace_labels(cache.namespace))
    rendered = reconcile.render(cache, uid=uid, intercepted=intercepted)
    await rt.api.apply_config_map(rendered.config_map)
    conditions = reconcile.transparent_conditions(ca_pending=pending, ca_error=error, iptables=iptables)
    return rendered, conditions


@kopf.on.event("v1", "pods", annotations={INJECTED_ANNOTATION: kopf.PRESENT})
async def count_injected_fn(
    namespace: str | None, annotations: kopf.Annotations, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Keep status.injectedPods of the pod's cache current; writes only when the count moves."""
    injected_pods: PodsIndex = kwargs["injected_pods"]
    rt, key = runtime(memo), (namespace or "", annotations[INJECTED_ANNOTATION])
    count = len(injected_pods.get(key, []))
    if rt.injected_counts.get(key) != count and await rt.api.patch_status(*key, {"injectedPods": count}):
        rt.injected_counts[key] = count


def _parse(raw: Mapping[str, Any], name: str, namespace: str) -> Cache:
    return model.parse(dict(raw), name=name, namespace=namespace)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The kopf handlers: thin. Each parses, calls a pure function, applies, writes status.

Run with `python -m llmcache_operator` or `kopf run -m llmcache_operator.handlers -A`.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import kopf

from llmcache_operator import k8s, probe, reconcile, webhook, webhook_tls
from llmcache_operator import spec as model
from llmcache_operator.options import Options
from llmcache_operator.patching import INJECTED_ANNOTATION
from llmcache_operator.runtime import MEMO_KEY, Runtime, runtime
from llmcache_operator.spec import GROUP, PLURAL, VERSION, Cache
from llmcache_sidecar.config import ConfigError

__all__ = ["webhook"]  # imported for its @kopf.on.mutate handler
ANNOTATION_PREFIX = "llmcache.dev"


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
    memo[MEMO_KEY] = Runtime(api=api, options=options, policy=options.policy(version))
    logger.info("API server %s; native sidecars: %s", version, memo[MEMO_KEY].policy.native_sidecars)


@kopf.on.cleanup()
async def cleanup_fn(memo: kopf.Memo, **_: Any) -> None:
    await runtime(memo).api.aclose()


@kopf.index(GROUP, VERSION, PLURAL)
def llmcaches(
    spec: kopf.Spec, name: str, namespace: str | None, logger: kopf.Logger, **_: Any
) -> dict[str, Cache] | None:
    """Namespace -> its valid caches, for the webhook. An invalid edit keeps the last good one."""
    if namespace is None:
        return None
    try:
        return {namespace: _parse(spec, name, namespace)}
    except ConfigError as exc:
        logger.warning("not indexed for injection: %s", exc)
        return None


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
    """Render the ConfigMap, probe the backend, write status; retry while the backend is down."""
    injected_pods: kopf.Index[tuple[str, str], str] = kwargs["injected_pods"]
    rt, name, namespace, generation = runtime(memo), meta["name"], meta["namespace"], meta.get("generation", 0)
    try:
        cache = _parse(spec, name, namespace)
    except ConfigError as exc:
        patch.status.update(reconcile.status_after_invalid(status, error=exc, generation=generation, now=_now()))
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    rendered = reconcile.render(cache, uid=meta["uid"])
    await rt.api.apply_config_map(rendered.config_map)
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
        )
    )
    if backend.reachable is False:
        raise kopf.TemporaryError(f"backend unreachable: {backend.message}", delay=rt.options.retry_delay)


@kopf.on.event("v1", "pods", annotations={INJECTED_ANNOTATION: kopf.PRESENT})
async def count_injected_fn(
    namespace: str | None, annotations: kopf.Annotations, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Keep status.injectedPods of the pod's cache current; writes only when the count moves."""
    injected_pods: kopf.Index[tuple[str, str], str] = kwargs["injected_pods"]
    rt, key = runtime(memo), (namespace or "", annotations[INJECTED_ANNOTATION])
    count = len(injected_pods.get(key, []))
    if rt.injected_counts.get(key) != count and await rt.api.patch_status(*key, {"injectedPods": count}):
        rt.injected_counts[key] = count


def _parse(raw: kopf.Spec, name: str, namespace: str) -> Cache:
    return model.parse(dict(raw), name=name, namespace=namespace)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

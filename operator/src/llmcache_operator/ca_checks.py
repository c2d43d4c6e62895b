"""The loop that takes each transparent cache's CA rotation step when it is due, and reports it.

A loop of the operator's own, not a kopf timer: kopf puts a finalizer on every resource
that has a timer, and an LLMCache must stay deletable while the operator is down.

It shares `status.conditions` with the reconcile handler, and a merge patch replaces
that list whole. So its write carries the resourceVersion the list was computed from:
when reconcile (or anyone) wrote the status meanwhile, the server refuses it (409), and
the conditions are computed again from a fresh read. Reconcile's own write computes every
condition type itself, so neither writer drops the other's conditions.

It acts only on what the operator has allowed: a cache whose status does not say
`Allowed` for its current generation, or that the allowlists refuse, is left alone.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmcache_operator import allowlist, applying, k8s, reconcile
from llmcache_operator import spec as model
from llmcache_operator.memo import Shared
from llmcache_operator.spec import Condition
from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError

logger = logging.getLogger(__name__)
ATTEMPTS = 3


class StatusStore(Protocol):
    """The calls `write_transparent_conditions` makes; `k8s.Api` implements them."""

    async def read_llmcache(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> bool:
        """Raises k8s.Conflict when the resource is not at `resource_version` any more."""
        ...


async def check_transparent_caches(rt: Shared) -> None:
    """Every allowed transparent cache: its CA's next step, its ConfigMap, its conditions."""
    for obj in await rt.api.list_llmcaches(rt.options.watch_namespaces):
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        if spec.get("mode") != "transparent":
            continue
        try:
            cache = model.parse(spec, name=meta["name"], namespace=meta["namespace"])
        except ConfigError:
            continue  # reconcile reports it
        generation = meta.get("generation", 0)
        if not reconcile.condition_true_for(obj.get("status"), reconcile.ALLOWED, generation):
            continue  # not checked (or refused) for this generation: reconcile decides first
        if allowlist.refusal(cache, rt.options.allowlist, rt.options.sidecar_image) is not None:
            continue  # the operator's settings changed since: reconcile reports it
        try:
            _, transparent = await applying.apply(rt, cache, meta["uid"])
        except k8s.NotOwned:
            continue  # reconcile reports it
        await write_transparent_conditions(rt.api, obj, transparent, now=_now())


async def write_transparent_conditions(
    store: StatusStore, obj: Mapping[str, Any], transparent: Sequence[Condition], *, now: str
) -> bool:
    """Set transparent mode's conditions in `obj`'s status, keeping all others as the server has them.

    False when the resource is gone or kept changing (the next round tries again).
    """
    meta = obj.get("metadata") or {}
    namespace, name = meta["namespace"], meta["name"]
    current: Mapping[str, Any] | None = obj
    for _ in range(ATTEMPTS):
        if current is None:
            return False
        old = reconcile.read_status(current.get("status"))
        conditions = reconcile.with_transparent_conditions(
            old.conditions, transparent, now=now, generation=old.observed_generation or 0
        )
        if conditions == old.conditions:
            return True
        version = (current.get("metadata") or {}).get("resourceVersion")
        try:
            return await store.patch_status(
                namespace,
                name,
                {"conditions": [config.to_mapping(c) for c in conditions]},
                resource_version=str(version) if version else None,
            )
        except k8s.Conflict:
            current = await store.read_llmcache(namespace, name)
    logger.info("%s/%s: the status kept changing; its CA conditions are written next round", namespace, name)
    return False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

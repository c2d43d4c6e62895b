"""What the operator writes for an allowed LLMCache: its CA Secret (transparent mode) and its ConfigMap.

Shared by the reconcile handler and the CA loop (`ca_checks`). Both objects are owned
by the LLMCache; one of that name that belongs to someone else is never written
(`interception_ca.CAError`, `k8s.NotOwned`).
"""

from __future__ import annotations

import datetime
import logging

from llmcache_operator import interception, interception_ca, reconcile
from llmcache_operator.memo import Shared
from llmcache_operator.spec import Cache, Condition

logger = logging.getLogger(__name__)


async def apply(rt: Shared, cache: Cache, uid: str) -> tuple[reconcile.Rendered, list[Condition]]:
    """Write the CA Secret (transparent mode) and the ConfigMap; the transparent conditions.

    Raises `k8s.NotOwned` when the ConfigMap's name is taken.
    """
    if not cache.transparent:
        rendered = reconcile.render(cache, uid=uid)
        await rt.api.apply_config_map(rendered.config_map, uid)
        return rendered, []
    created = await rt.api.trusting_pods_created(cache.namespace, cache.ca_secret)
    intercepted: dict[str, str] = {}
    pending = error = None
    try:
        step = await interception_ca.ensure(rt.api, cache, uid, created, datetime.datetime.now(datetime.UTC))
    except interception_ca.CAError as exc:
        logger.warning("%s/%s: %s", cache.namespace, cache.name, exc)
        error = str(exc)
    else:
        intercepted, pending = step.intercepted, step.pending
        if step.changed:
            logger.info("%s/%s: %s", cache.namespace, cache.ca_secret, step.changed)
    iptables = None
    if cache.interception == "iptables":
        iptables = interception.pod_security_allows_iptables(await rt.api.read_namespace_labels(cache.namespace))
    rendered = reconcile.render(cache, uid=uid, intercepted=intercepted)
    await rt.api.apply_config_map(rendered.config_map, uid)
    conditions = reconcile.transparent_conditions(ca_pending=pending, ca_error=error, iptables=iptables)
    return rendered, conditions

"""What each cache saved over the last hour, for its status and `kubectl get llmcaches`.

The sidecars add what they save to their shared backend every few seconds, a sum per
cache namespace and minute (`llmcache_sidecar.backends.Savings`); this module reads the
last 60 minutes of them through the same backend code and writes `status.savings`. It
keeps nothing itself: many pods add to the same minutes, a pod that dies leaves what it
reported, and a restarted operator reads the same numbers. A cache whose backend keeps
none (memory and disk live in each pod, object stores have no atomic increment) gets a
`message` saying so, and no numbers.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

from llmcache_operator import probe, spec
from llmcache_operator.probe import SecretReader
from llmcache_sidecar.backends import BackendError, Savings, ledger_of

WINDOW = "1h"
WINDOW_MINUTES = 60
"""The current minute and the 59 before it."""


def status(found: Savings | None, *, now: datetime.datetime, message: str | None = None) -> dict[str, Any]:
    """The `status.savings` patch: every field written (null when unknown) so that a merge patch replaces it."""
    numbers: dict[str, Any] = {
        "requests": None,
        "hits": None,
        "hitRatio": None,
        "tokensSaved": None,
        "costSavedUSD": None,
    }
    if found is not None:
        numbers = {
            "requests": found.requests,
            "hits": found.hits,
            "hitRatio": round(found.hits / found.requests, 4) if found.requests else None,
            "tokensSaved": found.tokens,
            "costSavedUSD": round(found.cost_usd, 4),
        }
    return {
        "window": WINDOW,
        "computedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **numbers,
        "message": message,
    }


async def compute(
    raw_spec: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    read_secret: SecretReader,
    call_timeout: float,
    now: datetime.datetime,
) -> dict[str, Any]:
    """`status.savings` of one cache, read from its backend; raises `ConfigError` for a spec that does not parse."""
    settings = spec.parse(raw_spec, name=name, namespace=namespace).settings
    backend_type = settings.backend.type
    async with probe.connected(raw_spec, name, namespace, read_secret, call_timeout) as (backend, problem, _):
        if backend is None:
            if problem.reachable is True:  # in each pod
                return status(None, now=now, message=_kept_nowhere(backend_type))
            return status(None, now=now, message=f"Not read: {problem.message}")
        ledger = ledger_of(backend)
        if ledger is None:
            return status(None, now=now, message=_kept_nowhere(backend_type))
        last = int(now.timestamp() // 60)
        minutes = range(last - WINDOW_MINUTES + 1, last + 1)
        try:
            async with asyncio.timeout(call_timeout):
                found = await ledger.read_savings(settings.namespace, minutes)
        except (BackendError, TimeoutError, OSError) as exc:
            # Our words only, as the probe's: the error's text quotes the backend (`probe.failure`).
            return status(None, now=now, message=f"Not read: {probe.failure(exc, call_timeout)}.")
        return status(found, now=now)


def _kept_nowhere(backend_type: str) -> str:
    return (
        f"The {backend_type} backend keeps no shared counts (each pod, or each object store write, stands alone):"
        " the hit ratio and savings are in the sidecars' metrics (/metrics, the Grafana dashboard). A Redis"
        " backend, or dual over Redis, shows them here."
    )

"""What a cache saved, kept per minute by the shared backends (for the operator's `kubectl get llmcaches`).

On every backend of the contract suite (real servers): the Redis family keeps the
numbers, every other backend says it has no ledger.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from llmcache_sidecar.backends import KEPT_SECONDS, CacheBackend, Savings, build_backend, ledger_of
from llmcache_sidecar.wire import keys
from tests.backends.conftest import Case, unwrap

SHARED = ["redis", "redis-cluster", "redis-sentinel", "dual-redis"]
shared_only = pytest.mark.parametrize("case", SHARED, indirect=True)


def a_namespace() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


async def test_only_backends_shared_by_every_pod_keep_savings(case: Case, backend: CacheBackend) -> None:
    assert (ledger_of(backend) is not None) == (case.name in SHARED)


@shared_only
async def test_what_many_pods_add_to_a_minute_adds_up(case: Case) -> None:
    pods = [build_backend(case.settings) for _ in range(3)]  # a client per pod, as in each sidecar
    namespace, minute = a_namespace(), 29_000_000
    try:
        ledgers = [ledger_of(pod) for pod in pods]
        assert all(ledgers)
        await asyncio.gather(
            *(
                ledger.add_savings(namespace, minute, Savings(requests=10, hits=7, tokens=700, cost_usd=0.25))
                for ledger in ledgers
                for _ in range(4)
                if ledger is not None
            )
        )
        reader = ledgers[0]
        assert reader is not None
        assert await reader.read_savings(namespace, [minute - 1, minute, minute + 1]) == Savings(
            requests=120, hits=84, tokens=8400, cost_usd=pytest.approx(3.0)
        )
        # Another namespace, or other minutes, count nothing of it.
        assert await reader.read_savings(a_namespace(), [minute]) == Savings()
        assert await reader.read_savings(namespace, [minute + 2, minute + 3]) == Savings()
    finally:
        for pod in pods:
            await pod.aclose()


@shared_only
async def test_a_minute_is_kept_two_hours_then_goes(case: Case, backend: CacheBackend) -> None:
    ledger = ledger_of(backend)
    assert ledger is not None
    namespace, minute = a_namespace(), 29_000_100
    await ledger.add_savings(namespace, minute, Savings(requests=1))
    client = unwrap(backend).client  # type: ignore[attr-defined]
    ttl = await client.ttl(keys.savings_key(namespace, minute))
    assert KEPT_SECONDS - 60 < ttl <= KEPT_SECONDS == 7200

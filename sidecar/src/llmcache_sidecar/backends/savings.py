"""What a cache saved, kept per minute in a shared backend: written by sidecars, read by the operator.

Each sidecar adds what it saved since its last report (`Savings`: cacheable requests,
hits, tokens and money) to the current minute of its cache namespace, every few seconds
(`server.savings`). The operator sums the last hour's minutes for the `LLMCache`'s
status (`kubectl get llmcaches`). Additions from many pods add up (atomic increments);
what a pod reported stays after it dies; the operator keeps nothing of its own, so a
restarted one reads the same numbers. A minute is kept for `KEPT_SECONDS`.

Only a backend shared by every pod of a cache, with atomic increments, can keep them:
Redis (standalone, Sentinel, Cluster), also as the lower tier of `dual`
(`backends.ledger_of` finds it behind the wrappers). Every other backend has none:
memory and disk live in each pod, and object stores have no atomic increment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

KEPT_SECONDS = 2 * 3600
"""How long a minute's numbers are kept: the operator's hour, and room for a late report."""


@dataclass(frozen=True, slots=True)
class Savings:
    requests: int = 0
    """Cacheable requests: every answer but a pass-through (as the dashboard's hit rate counts them)."""
    hits: int = 0
    """Answered from the cache: exact, coalesced and semantic hits."""
    tokens: int = 0
    """Input and output tokens not bought again."""
    cost_usd: float = 0.0
    """Their price, from the sidecar's price table."""

    def __add__(self, other: Savings) -> Savings:
        return Savings(
            self.requests + other.requests,
            self.hits + other.hits,
            self.tokens + other.tokens,
            self.cost_usd + other.cost_usd,
        )

    def __sub__(self, other: Savings) -> Savings:
        return Savings(
            self.requests - other.requests,
            self.hits - other.hits,
            self.tokens - other.tokens,
            self.cost_usd - other.cost_usd,
        )

    @property
    def empty(self) -> bool:
        return not (self.requests or self.hits or self.tokens or self.cost_usd)


@runtime_checkable
class SavingsLedger(Protocol):
    """A backend that keeps `Savings` per cache namespace and minute (unix time // 60)."""

    async def add_savings(self, namespace: str, minute: int, delta: Savings) -> None:
        """Add `delta` to the minute, in one round trip; raises `BackendError`."""
        ...

    async def read_savings(self, namespace: str, minutes: Sequence[int]) -> Savings:
        """The sum of those minutes (missing ones count nothing); raises `BackendError`."""
        ...

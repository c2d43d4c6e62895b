"""What this sidecar saved, added to its cache's shared backend every few seconds, for the LLMCache's status.

Off the data path: a task of the app reads the counts the sidecar keeps for its metrics
anyway (`telemetry.Aggregates`) every `telemetry.savingsInterval` (10 s), and adds the
difference since its last report to the backend in one pipelined write
(`backends.savings`); the operator sums the last hour of them (`kubectl get llmcaches`).
A report that fails is added to the next one. At shutdown one last report goes out, so
a pod that stops cleanly loses nothing, and one that is killed at most the last
interval. A backend without a shared ledger (memory, disk, object stores) gets nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llmcache_sidecar import backends, telemetry
from llmcache_sidecar.backends import BackendError, Savings
from llmcache_sidecar.proxy import State

logger = logging.getLogger(__name__)
TIMEOUT = 2.0
"""Longest time one report may take (it is off the data path, but must not pile up)."""
IDLE_POLL = 10.0
"""How often a sidecar whose reports are off looks at its settings again."""


class Reporter:
    """Reports the app's savings since the previous report; `run` every interval, `report` once more at the end."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._reported = Savings()

    async def report(self) -> None:
        state = self._state
        runtime = state.runtime
        now = Savings(*telemetry.savings_totals(state.aggregates))
        delta = now - self._reported
        if delta.empty:
            return
        ledger = backends.ledger_of(runtime.backend)
        if ledger is None or not runtime.caching or runtime.settings.telemetry.savings_interval <= 0:
            self._reported = now  # nowhere to keep them
            return
        try:
            async with asyncio.timeout(TIMEOUT):
                await ledger.add_savings(runtime.settings.namespace, int(time.time() // 60), delta)
        except (BackendError, TimeoutError, OSError) as exc:
            logger.debug("savings not reported (added to the next report): %s", exc)
            return
        self._reported = now

    async def run(self) -> None:
        while True:
            interval = self._state.runtime.settings.telemetry.savings_interval
            await asyncio.sleep(interval if interval > 0 else IDLE_POLL)
            await self.report()

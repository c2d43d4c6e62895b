"""The operator's own periodic work (CA rotation checks, savings readings).

Loops of its own, not kopf timers: kopf puts a finalizer on every resource that has a
timer, and an LLMCache must stay deletable while the operator is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(seconds: float, work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `work` every `seconds`, for ever; a round that fails is logged and the next one tries again."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except Exception:  # the next round tries again; kopf's own handlers are unaffected
            logger.exception("%s failed", what)

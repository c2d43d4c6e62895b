"""What the handlers share for the operator's life, kept in kopf's memo under one typed key."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmcache_operator import injection, k8s
from llmcache_operator.options import Options

MEMO_KEY = "llmcache"


@dataclass(slots=True)
class Shared:
    """The operator's own state for its whole run (`rt` in the handlers)."""

    api: k8s.Api
    options: Options
    policy: injection.Policy
    injected_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """The injectedPods value last written per (namespace, cache), to write only changes."""
    count_writes: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    """One injectedPods write at a time per cache: pods' events run in parallel workers, and
    a count read before another pod's write must not land after it."""
    ca_checks: asyncio.Task[None] | None = None
    """The loop that rotates the interception CAs (ca_checks.check_transparent_caches, run by loops.every)."""
    savings_reads: asyncio.Task[None] | None = None
    """The loop that writes what each cache saved (handlers.read_savings)."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    """Work that must not hold up an answer (events the webhook posts); cancelled at cleanup."""

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def shared(memo: Mapping[str, Any]) -> Shared:
    try:
        found = memo[MEMO_KEY]
    except KeyError:
        raise RuntimeError("the operator's startup handler has not run") from None
    if not isinstance(found, Shared):
        raise TypeError(f"memo[{MEMO_KEY!r}] is a {type(found).__name__}, not a Shared")
    return found

"""The CA loop's status write never drops a condition another writer added meanwhile.

The loop lists the LLMCaches, takes a CA step, then writes `status.conditions`, a list a
merge patch replaces whole. Reconcile (kopf) writes the same list. Here the store plays
the API server's optimistic concurrency (faked: an in-memory object with a
resourceVersion; a patch that names an older one is refused as the server refuses it,
409); tests/e2e_k8s/test_status_race_e2e.py runs the same race against a real API server.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from llmcache_operator import ca_checks, k8s, reconcile
from llmcache_operator.spec import Condition

T0 = "2026-11-28T10:00:00Z"
READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "m", "lastTransitionTime": T0,
         "observedGeneration": 1}  # fmt: skip
CA_CURRENT = [
    Condition(type="InterceptionCA", status="True", reason="Current", message="The interception CA is current.")
]


class Store:
    """One LLMCache with a resourceVersion; `meanwhile` runs once, just before the next patch lands."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.obj: dict[str, Any] = {"metadata": {"namespace": "apps", "name": "edge", "resourceVersion": "1"},
                                    "status": status}  # fmt: skip
        self.meanwhile: Callable[[], Awaitable[None]] | None = None
        self.refused = 0

    def listed(self) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    async def write(self, status: Mapping[str, Any]) -> None:
        self.obj["status"] = {**self.obj["status"], **copy.deepcopy(dict(status))}
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)

    async def read_llmcache(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.listed()

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> bool:
        if self.meanwhile is not None:
            hook, self.meanwhile = self.meanwhile, None
            await hook()
        if resource_version is not None and resource_version != self.obj["metadata"]["resourceVersion"]:
            self.refused += 1
            raise k8s.Conflict("changed")
        await self.write(status)
        return True


def types(store: Store) -> dict[str, str]:
    return {c["type"]: c["status"] for c in store.obj["status"].get("conditions", [])}


async def test_a_ready_condition_written_between_the_list_and_the_write_is_kept() -> None:
    store = Store({})
    listed = store.listed()  # the loop lists before the first reconcile has written anything

    async def reconcile_writes_ready() -> None:
        await store.write({"conditions": [READY], "observedGeneration": 1})

    store.meanwhile = reconcile_writes_ready
    written = await ca_checks.write_transparent_conditions(store, listed, CA_CURRENT, now=T0)

    assert written is True
    assert store.refused == 1  # the stale write was refused, then computed again from a fresh read
    assert types(store) == {"Ready": "True", "InterceptionCA": "True"}


async def test_nothing_is_written_when_the_conditions_are_already_so() -> None:
    settled = {**READY, "type": "InterceptionCA", "reason": "Current", "message": "The interception CA is current."}
    status = {"conditions": [READY, settled], "observedGeneration": 1}
    store = Store(status)
    before = store.listed()
    assert await ca_checks.write_transparent_conditions(store, store.listed(), CA_CURRENT, now=T0) is True
    assert store.obj == before


async def test_a_status_that_keeps_changing_is_left_for_the_next_round() -> None:
    store = Store({"conditions": [READY]})

    async def always_meanwhile() -> None:
        await store.write({"observedGeneration": 1})
        store.meanwhile = always_meanwhile

    store.meanwhile = always_meanwhile
    assert await ca_checks.write_transparent_conditions(store, store.listed(), CA_CURRENT, now=T0) is False
    assert store.refused == ca_checks.ATTEMPTS
    assert types(store) == {"Ready": "True"}  # nothing dropped, nothing half-written


def test_reconcile_writes_every_condition_type_itself_so_it_drops_none_of_the_loops() -> None:
    """The other direction: reconcile's patch carries InterceptionCA (computed in the same handler)."""
    from tests.operator.caches import EDGE, cache

    edge = cache(EDGE, "edge", "apps")
    result = reconcile.status_after_reconcile(
        {"conditions": [{**READY, "type": "InterceptionCA", "reason": "Current"}]},
        cache=edge, rendered=reconcile.render(edge, uid="u"), backend=reconcile.BackendCheck(True, "ok"),
        generation=1, injected_pods=0, now=T0, transparent=CA_CURRENT,
    )  # fmt: skip
    assert {c["type"] for c in result["conditions"]} == {"Ready", "Allowed", "BackendReachable", "InterceptionCA"}

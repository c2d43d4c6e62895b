"""A near-duplicate is never served across models, parameters, tenants or conversations,
and the verifier turns away near-misses that retrieval proposes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Upstream
from tests.semantic.conftest import SemanticSidecarFactory
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"


async def test_the_paraphrase_hits_when_nothing_else_differs(semantic_sidecar: SemanticSidecarFactory) -> None:
    """The control for the table below: the same request, only reworded, is a semantic hit."""
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION, system="You are a support agent.", history=[("hi", "Hello!")], temperature=0.2)
    answer = await ask(
        sidecar, PARAPHRASE, system="You are a support agent.", history=[("hi", "Hello!")], temperature=0.2
    )
    assert answer.status == SEMANTIC_HIT


DIFFERENCES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "another system prompt": ({"system": "You are a support agent."}, {"system": "You are a pirate."}),
    "another model": ({"model": "gpt-4o-mini"}, {"model": "gpt-4o"}),
    "another temperature": ({"temperature": 0.0}, {"temperature": 0.9}),
    "another max_tokens": ({"max_tokens": 50}, {"max_tokens": 500}),
    "an earlier turn": ({"history": [("I use the mobile app", "OK")]}, {"history": [("I use the website", "OK")]}),
    "a longer conversation": ({}, {"history": [("hi", "Hello!")]}),
    "another API key": ({"api_key": "sk-tenant-a"}, {"api_key": "sk-tenant-b"}),
}


@pytest.mark.parametrize("difference", list(DIFFERENCES))
async def test_a_paraphrase_never_hits_across(
    difference: str, semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    stored, asked = DIFFERENCES[difference]
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION, **stored)
    answer = await ask(sidecar, PARAPHRASE, **asked)

    assert answer.status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2
    assert (await stats(sidecar))["rejected"] == {}  # not even proposed: another bucket


async def test_a_paraphrase_never_hits_across_namespaces(semantic_sidecar: SemanticSidecarFactory) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION, headers={"x-llmcache-namespace": "team-a"})
    answer = await ask(sidecar, PARAPHRASE, headers={"x-llmcache-namespace": "team-b"})
    assert answer.status == "llmcache; fwd=miss; stored"


async def test_a_flush_empties_the_semantic_index_too(semantic_sidecar: SemanticSidecarFactory) -> None:
    import aiohttp

    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)
    async with aiohttp.ClientSession() as http, http.post(f"{sidecar.admin_url}/cache/flush") as resp:
        assert resp.status == 200
    answer = await ask(sidecar, PARAPHRASE)
    assert answer.status == "llmcache; fwd=miss; stored"


NEAR_MISSES = [
    (
        "negation",
        "Should I restart the pod after changing the ConfigMap?",
        "Should I not restart the pod after changing the ConfigMap?",
    ),
    ("direction", "How long is the flight from Sydney to Auckland?", "How long is the flight from Auckland to Sydney?"),
    ("number", "How do I scale my deployment to 3 replicas?", "How do I scale my deployment to 30 replicas?"),
    ("unit", "Set a memory limit of 512Mi on this container.", "Set a memory limit of 512Gi on this container."),
    (
        "datetime",
        "Write a cron schedule that runs every day at 2am.",
        "Write a cron schedule that runs every day at 2pm.",
    ),
    ("entity", "What are the common side effects of metformin?", "What are the common side effects of metoprolol?"),
    (
        "order",
        "Can a tenant sue a landlord for breaking the lease?",
        "Can a landlord sue a tenant for breaking the lease?",
    ),
    ("format", "List the planets of the solar system as JSON.", "List the planets of the solar system as a table."),
    (
        "language",
        "Translate 'Where is the nearest pharmacy?' into French.",
        "Translate 'Where is the nearest pharmacy?' into German.",
    ),
    ("code", "What does `git reset --hard HEAD~1` do?", "What does `git reset --soft HEAD~1` do?"),
]


@pytest.mark.parametrize(("reason", "stored", "asked"), NEAR_MISSES, ids=[n[0] for n in NEAR_MISSES])
async def test_a_near_miss_is_proposed_but_rejected_by_the_verifier(
    reason: str, stored: str, asked: str, semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar(threshold=0.5)
    await ask(sidecar, stored)
    answer = await ask(sidecar, asked)

    assert answer.status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2
    assert (await stats(sidecar))["rejected"] == {reason: 1}

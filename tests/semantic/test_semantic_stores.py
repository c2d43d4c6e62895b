"""A store's `maxPerBucket` reaches the store: seen through the sidecar, with the openai SDK.

The Qdrant store runs in qdrant-client's local mode (`url: ":memory:"`, no server can be
had here); `tests/semantic/test_index_contract.py` checks the bound on every store directly.
"""

from __future__ import annotations

import pytest

from tests.conftest import Upstream
from tests.semantic.conftest import SemanticSidecarFactory
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

STORES = {
    "memory": {"type": "memory", "maxPerBucket": 2},
    "qdrant": {"type": "qdrant", "maxPerBucket": 2, "qdrant": {"url": ":memory:", "timeoutMs": 5000}},
}


@pytest.mark.parametrize("store", sorted(STORES))
async def test_a_question_pushed_out_of_its_bucket_is_no_longer_matched(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream, store: str
) -> None:
    sidecar = await semantic_sidecar(store=STORES[store])
    await ask(sidecar, "How do I reset my password?")
    assert (await ask(sidecar, "how can I reset my password")).status == SEMANTIC_HIT
    await ask(sidecar, "What is the capital of France?")
    await ask(sidecar, "Which port does Redis listen on?")  # the bucket's third prompt: the first goes

    after = await ask(sidecar, "how could I reset my password")
    numbers = await stats(sidecar)
    assert after.status == "llmcache; fwd=miss; stored"
    assert numbers["store"] == store
    assert numbers["prompts"] == 2
    assert upstream.fake.count("/chat/completions") == 4

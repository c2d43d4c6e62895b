"""A policy rule with `semantic: false` keeps the semantic cache away from the requests it matches.

Real: the sidecar, the openai SDK, llmcache-embedder with its deterministic encoder
(see conftest), the fake provider.
"""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Upstream
from tests.semantic.conftest import Embedder, SemanticSidecarFactory
from tests.semantic.helpers import SEMANTIC_HIT, ask

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"


async def test_a_semantic_false_rule_means_no_near_duplicate_answers_and_nothing_embedded(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream, embedder: Embedder
) -> None:
    sidecar = await semantic_sidecar(sidecar={"rules": [{"when": 'model == "gpt-4o"', "semantic": False}]})

    exact = await ask(sidecar, QUESTION, model="gpt-4o")
    paraphrased = await ask(sidecar, PARAPHRASE, model="gpt-4o")
    repeated = await ask(sidecar, QUESTION, model="gpt-4o")
    embedded_for_gpt_4o = list(embedder.texts)
    await ask(sidecar, QUESTION, model="gpt-4o-mini")
    other_model = await ask(sidecar, PARAPHRASE, model="gpt-4o-mini")

    assert exact.status == paraphrased.status == "llmcache; fwd=miss; stored"
    assert paraphrased.text != exact.text
    assert repeated.status == "llmcache; hit"  # exact caching still applies
    assert embedded_for_gpt_4o == []  # neither indexed nor looked up
    assert other_model.status == SEMANTIC_HIT  # the rule matched gpt-4o only
    assert upstream.fake.count("/chat/completions") == 3


async def test_a_replay_asks_no_embedder_for_a_miss(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream, embedder: Embedder
) -> None:
    """The embedder may be a provider's embeddings API, and a replay sends nothing out of the pod."""
    sidecar = await semantic_sidecar(sidecar={"recording": "replay"})

    with pytest.raises(openai.APIStatusError) as raised:
        await ask(sidecar, PARAPHRASE)

    assert raised.value.status_code == 504
    assert embedder.texts == []
    assert upstream.fake.count() == 0

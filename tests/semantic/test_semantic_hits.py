"""A paraphrase of a stored question is answered from the cache, and says so."""

from __future__ import annotations

import anthropic
import pytest

from tests.conftest import Upstream
from tests.semantic.conftest import Embedder, SemanticSidecarFactory
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"


async def test_a_paraphrase_is_answered_from_the_cache_with_its_similarity(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar()
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)

    assert first.status == "llmcache; fwd=miss; stored"
    assert second.status == SEMANTIC_HIT
    assert second.text == first.text  # the stored answer, not a new one
    assert second.similarity is not None and 0.7 <= float(second.similarity) < 1.0
    assert second.key == first.key  # the entry that was served, for /cache/keys/...
    assert upstream.fake.count("/chat/completions") == 1


async def test_the_exact_question_is_still_an_exact_hit(semantic_sidecar: SemanticSidecarFactory) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)
    again = await ask(sidecar, QUESTION)

    assert again.status == "llmcache; hit"
    assert again.similarity is None


async def test_a_streamed_paraphrase_replays_the_stored_stream(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar()
    first = await ask(sidecar, QUESTION, stream=True)
    second = await ask(sidecar, PARAPHRASE, stream=True)

    assert second.status == SEMANTIC_HIT
    assert second.text == first.text and first.text
    assert upstream.fake.count("/chat/completions") == 1


async def test_a_stream_is_never_served_for_a_plain_request(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION, stream=True)
    plain = await ask(sidecar, PARAPHRASE)

    assert plain.status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2


async def test_anthropic_messages_get_semantic_hits_too(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar()

    async def claude(question: str) -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(
            base_url=f"{sidecar.url}/anthropic", api_key="ak-a", max_retries=0
        ) as client:
            raw = await client.messages.with_raw_response.create(
                model="claude-x", max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": question}]
            )
            block = (await raw.parse()).content[0]
            text = block.text if block.type == "text" else ""
        await sidecar.state.drain(5)
        return text, raw.headers["cache-status"]

    first, _ = await claude(QUESTION)
    second, status = await claude(PARAPHRASE)

    assert status == SEMANTIC_HIT
    assert second == first
    assert upstream.fake.count("/messages") == 1


async def test_a_request_can_opt_out_of_semantic_matching(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)
    opted_out = await ask(sidecar, PARAPHRASE, headers={"x-llmcache-semantic": "off"})

    assert opted_out.status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2
    assert (await stats(sidecar))["skipped"] == 1


@pytest.mark.parametrize(("threshold", "hit"), [("0.99", False), ("0.5", True), ("lots", False)])
async def test_a_request_can_set_its_own_threshold(
    semantic_sidecar: SemanticSidecarFactory, threshold: str, hit: bool
) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)
    answer = await ask(sidecar, PARAPHRASE, headers={"x-llmcache-semantic-threshold": threshold})

    assert (answer.status == SEMANTIC_HIT) is hit


async def test_no_cache_skips_the_semantic_lookup_too(semantic_sidecar: SemanticSidecarFactory) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)
    fresh = await ask(sidecar, PARAPHRASE, headers={"Cache-Control": "no-cache"})

    assert fresh.status.startswith("llmcache; fwd=request")


async def test_shadow_mode_counts_and_logs_would_be_hits_without_serving_them(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = await semantic_sidecar(mode="shadow")
    await ask(sidecar, QUESTION)
    with caplog.at_level("INFO", logger="llmcache_sidecar.semantic.matcher"):
        shadowed = await ask(sidecar, PARAPHRASE)

    assert shadowed.status == "llmcache; fwd=miss; stored"
    assert upstream.fake.count("/chat/completions") == 2
    numbers = await stats(sidecar)
    assert (numbers["shadowHits"], numbers["hits"], numbers["mode"]) == (1, 0, "shadow")
    line = next(r.getMessage() for r in caplog.records if "shadow hit" in r.getMessage())
    assert "similarity 0." in line
    assert "password" not in line  # prompt hashes, never prompts


async def test_identical_prompts_are_embedded_once(
    semantic_sidecar: SemanticSidecarFactory, embedder: Embedder
) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, QUESTION)  # embedded on the miss, indexed after the store without a second call
    await ask(sidecar, "How do I reset my password on the website?")
    await ask(sidecar, "How do I reset my password on the website?", headers={"Cache-Control": "no-cache"})
    await ask(sidecar, "How do I reset my password on the website?", temperature=0.5)

    assert embedder.texts == ["how do i reset my password?", "how do i reset my password on the website?"]
    numbers = await stats(sidecar)
    assert (numbers["embeddingCalls"], numbers["embeddingCacheHits"]) == (2, 1)


async def test_stats_show_the_semantic_section(semantic_sidecar: SemanticSidecarFactory) -> None:
    sidecar = await semantic_sidecar()
    await ask(sidecar, "Convert 100 USD to EUR.")
    await ask(sidecar, "Convert 100 EUR to USD.")
    await ask(sidecar, "convert 100 usd to eur please")

    numbers = await stats(sidecar)
    assert numbers["enabled"] is True
    assert numbers["store"] == "memory"
    assert numbers["prompts"] == 2
    assert (numbers["lookups"], numbers["hits"], numbers["indexed"]) == (3, 1, 2)
    assert numbers["rejected"] == {"unit": 1}  # 100 USD is not 100 EUR: the first rule that fails is counted


async def test_semantic_hits_and_rejections_reach_the_metrics(
    semantic_sidecar: SemanticSidecarFactory, upstream: Upstream
) -> None:
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    sidecar = await semantic_sidecar()
    model = "gpt-4o-mini-semantic-metrics"  # a label set of its own
    await ask(sidecar, QUESTION, model=model)
    await ask(sidecar, PARAPHRASE, model=model)
    await ask(sidecar, "How do I not reset my password?", model=model)  # a negation: refused
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sidecar.admin_url}/metrics") as resp:
            text = await resp.text()
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    semantic_requests = [
        v for (name, labels), v in samples.items()
        if name == "llmcache_requests_total" and ("llmcache_status", "semantic") in labels
        and ("gen_ai_request_model", model) in labels
    ]  # fmt: skip
    assert semantic_requests == [1]
    assert samples[("llmcache_semantic_lookups_total", (("llmcache_outcome", "hits"),))] >= 1
    assert any(name == "llmcache_semantic_rejections_total" for name, _ in samples)
    assert any(name == "llmcache_semantic_similarity_count" for name, _ in samples)

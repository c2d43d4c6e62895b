"""The LLM judge: a second gate after the rule verifier, with its verdicts cached and its cost counted.

The judge is the fake provider (tests/fakes) playing a model that answers SAME or
DIFFERENT per a rule each test sets (`fake.reply_rule`); everything else is real: the
sidecar on real sockets, the openai SDK as the app, our embeddings server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmcache_sidecar import config
from llmcache_sidecar.proxy.runtime import routes_for
from llmcache_sidecar.semantic import judge as judge_module
from llmcache_sidecar.semantic.judge import JudgeCounters
from llmcache_sidecar.telemetry import PriceBook
from tests.conftest import Sidecar, Upstream, sidecar_settings
from tests.fakes.provider import Behaviour, Received
from tests.semantic.conftest import Embedder, SemanticSidecarFactory, semantic_settings
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"
JUDGE_MODEL = "judge-mini"
JUDGE_KEY = "sk-judge-own-key"
MISS = "llmcache; fwd=miss; stored"


def judged_pair(body: Any) -> tuple[str, str] | None:
    """(stored prompt, new prompt) when `body` is a judge call in any provider's shape, else None."""
    if not isinstance(body, dict):
        return None
    try:
        last = body["contents"][-1]["parts"][0]["text"] if "contents" in body else body["messages"][-1]["content"]
        pair = json.loads(last)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if isinstance(pair, dict) and set(pair) == {"first", "second"}:
        return pair["first"], pair["second"]
    return None


@dataclass
class FakeJudge:
    upstream: Upstream
    says: Callable[[str, str], str] = lambda stored, query: "SAME"

    def __post_init__(self) -> None:
        self.upstream.fake.reply_rule = self._reply

    def _reply(self, body: dict[str, Any]) -> str | None:
        pair = judged_pair(body)
        return self.says(*pair) if pair is not None else None

    @property
    def calls(self) -> list[Received]:
        return [r for r in self.upstream.fake.received if judged_pair(r.json()) is not None]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [p for r in self.calls if (p := judged_pair(r.json())) is not None]

    def app_calls(self) -> int:
        return len(self.upstream.fake.received) - len(self.calls)


@pytest.fixture
def judge(upstream: Upstream) -> FakeJudge:
    return FakeJudge(upstream)


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "judge-key"
    path.write_text(JUDGE_KEY + "\n")
    return str(path)


def judge_block(key_file: str, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "provider": "openai", "model": JUDGE_MODEL, "apiKeyFile": key_file, **overrides}


async def test_the_judge_saying_different_turns_an_accepted_paraphrase_into_a_miss(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    judge.says = lambda stored, query: "DIFFERENT"
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)

    assert (first.status, second.status) == (MISS, MISS)
    assert second.text != first.text  # the app got its own upstream answer
    assert judge.pairs == [(QUESTION, PARAPHRASE)]
    assert judge.app_calls() == 2
    numbers = await stats(sidecar)
    assert numbers["rejected"] == {"judge": 1}
    assert numbers["judge"]["different"] == 1


async def test_the_judge_saying_same_serves_the_hit_and_it_was_asked_with_its_own_key(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    first = await ask(sidecar, QUESTION, api_key="sk-the-apps-key")
    second = await ask(sidecar, PARAPHRASE, api_key="sk-the-apps-key")

    assert second.status == SEMANTIC_HIT
    assert second.text == first.text
    (call,) = judge.calls
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {JUDGE_KEY}"  # never the app's key
    body = call.json()
    assert (body["model"], body["temperature"]) == (JUDGE_MODEL, 0)
    assert body["messages"][0] == {"role": "system", "content": judge_module.INSTRUCTIONS}
    assert judge.app_calls() == 1
    assert (await stats(sidecar))["judge"]["same"] == 1


async def test_a_candidate_the_verifier_refuses_never_reaches_the_judge(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    negated = await ask(sidecar, "How do I not reset my password?")

    assert negated.status == MISS
    assert judge.calls == []  # the judge can only veto a hit, never overrule a rule
    assert (await stats(sidecar))["rejected"] == {"negation": 1}


async def test_a_repeated_pair_asks_the_judge_once(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    hits = [await ask(sidecar, PARAPHRASE) for _ in range(3)]  # a semantic hit stores nothing: each is a lookup

    assert [h.status for h in hits] == [SEMANTIC_HIT] * 3
    assert len(judge.calls) == 1
    numbers = (await stats(sidecar))["judge"]
    assert (numbers["calls"], numbers["cachedVerdicts"]) == (1, 2)


async def test_a_different_verdict_is_remembered_too(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    judge.says = lambda stored, query: "DIFFERENT"
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    for _ in range(3):  # no-store: the paraphrase is never stored, so each ask looks the pair up again
        miss = await ask(sidecar, PARAPHRASE, headers={"Cache-Control": "no-store"})
        assert miss.status.startswith("llmcache; fwd=miss")
    assert len(judge.calls) == 1
    assert (await stats(sidecar))["rejected"] == {"judge": 3}


@pytest.mark.parametrize("failure", ["500", "timeout", "unreadable"])
async def test_a_failing_judge_means_a_miss_and_the_app_still_gets_its_upstream_answer(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, upstream: Upstream, key_file: str, failure: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file, timeoutMs=300))
    first = await ask(sidecar, QUESTION)
    if failure == "500":
        upstream.fake.plan(Behaviour(status=500))  # the next upstream call is the judge's
    elif failure == "timeout":
        upstream.fake.plan(Behaviour(delay_ms=3000))  # ten times the judge's timeoutMs
    else:
        judge.says = lambda stored, query: "Probably the same, yes."
    second = await ask(sidecar, PARAPHRASE)

    assert second.status == MISS
    assert second.text.startswith("Echo #") and second.text.endswith(PARAPHRASE)
    assert second.text != first.text
    assert len(judge.calls) == 1
    numbers = await stats(sidecar)
    assert (numbers["judgeErrors"], numbers["hits"], numbers["judge"]["errors"]) == (1, 0, 1)


async def test_a_judge_key_file_with_a_line_break_inside_leaves_the_app_its_upstream_answers(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, tmp_path: Path
) -> None:
    """Two keys pasted into one Secret: no header can carry it, so semantic lookups wait for a fix."""
    bad_key = tmp_path / "judge-key"
    bad_key.write_text("sk-judge-a\nsk-judge-b\n")
    sidecar = await semantic_sidecar(judge=judge_block(str(bad_key)))
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)
    exact = await ask(sidecar, QUESTION)

    assert (first.status, second.status, exact.status) == (MISS, MISS, "llmcache; hit")
    assert second.text.endswith(PARAPHRASE) and second.text != first.text
    assert judge.calls == []
    numbers = await stats(sidecar)
    assert numbers["enabled"] is False
    assert numbers["unavailable"].startswith(f"semantic.judge.apiKeyFile: the secret file {bad_key} has a control")
    assert "sk-judge" not in numbers["unavailable"].replace(str(bad_key), "")


async def test_a_judge_call_that_cannot_even_be_sent_is_a_judge_error(key_file: str, embedder: Embedder) -> None:
    """Whatever sending raises (here: the session is closed, as during a shutdown) is a failed call."""
    settings = sidecar_settings("http://127.0.0.1:1", semantic=semantic_settings(embedder, judge=judge_block(key_file)))
    judge = judge_module.Judge(settings.semantic.judge)
    judging = judge_module.Judging(routes_for(settings)["openai"], PriceBook({}))
    counters = JudgeCounters()
    session = aiohttp.ClientSession()
    await session.close()

    with pytest.raises(judge_module.JudgeError, match="RuntimeError"):
        await judge.ask(session, judging, QUESTION, PARAPHRASE, counters)
    assert counters.verdicts[("error", "judge")] == 1


async def test_a_bug_while_calling_the_judge_is_a_judge_error_logged_with_its_traceback(
    key_file: str, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sidecar_settings("http://127.0.0.1:1", semantic=semantic_settings(embedder, judge=judge_block(key_file)))
    judge = judge_module.Judge(settings.semantic.judge)
    judging = judge_module.Judging(routes_for(settings)["openai"], PriceBook({}))
    counters = JudgeCounters()

    async def on_request_start(*_: object) -> None:
        raise AttributeError("a bug on our side of the call")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        with pytest.raises(judge_module.JudgeError, match="judge call failed: AttributeError"):
            await judge.ask(session, judging, QUESTION, PARAPHRASE, counters)

    assert counters.verdicts[("error", "judge")] == 1
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is not None and record.exc_info[0] is AttributeError


async def test_a_judge_reply_longer_than_64_kib_is_a_failed_call_whatever_it_says(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    judge.says = lambda stored, query: "SAME" + " " * 64 * 1024  # SAME, once stripped
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)

    assert second.status == MISS
    assert second.text.endswith(PARAPHRASE) and second.text != first.text
    assert len(judge.calls) == 1
    numbers = await stats(sidecar)
    assert (numbers["judgeErrors"], numbers["hits"]) == (1, 0)


async def test_negative_token_counts_from_the_judges_provider_never_lower_the_counters(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, upstream: Upstream, key_file: str
) -> None:
    sidecar = await semantic_sidecar(
        judge=judge_block(key_file), sidecar={"telemetry": {"prices": {JUDGE_MODEL: {"input": 1.0, "output": 4.0}}}}
    )
    await ask(sidecar, QUESTION)
    upstream.fake.reported_tokens = (-1000, -7)
    hit = await ask(sidecar, PARAPHRASE)

    assert hit.status == SEMANTIC_HIT
    assert len(judge.calls) == 1
    numbers = (await stats(sidecar))["judge"]
    assert (numbers["inputTokens"], numbers["outputTokens"], numbers["costUsd"]) == (0, 0, 0)


async def test_the_judge_never_sees_another_buckets_prompts(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION, api_key="sk-tenant-a")
    await ask(sidecar, "How can I reset my password?", system="You are Acme's support bot.", api_key="sk-tenant-b")
    await ask(sidecar, "how could I reset my password", api_key="sk-tenant-b")  # another bucket: no system prompt
    answer = await ask(sidecar, "how could I reset my password", system="You are Acme's support bot.", api_key="sk-b")

    assert answer.status == MISS  # sk-b is a third tenant: its bucket is empty
    assert judge.calls == []
    hit = await ask(sidecar, PARAPHRASE, system="You are Acme's support bot.", api_key="sk-tenant-b")

    assert hit.status == SEMANTIC_HIT
    assert judge.pairs == [("How can I reset my password?", PARAPHRASE)]


async def test_the_judge_is_called_at_most_max_calls_per_lookup(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    judge.says = lambda stored, query: "DIFFERENT"
    sidecar = await semantic_sidecar(judge=judge_block(key_file, maxCallsPerLookup=1))
    await ask(sidecar, QUESTION)
    await ask(sidecar, PARAPHRASE)  # judged DIFFERENT, then stored: two candidates for the next one
    await ask(sidecar, "how could I reset my password")

    assert len(judge.calls) == 2  # one per lookup, although the last one had two candidates
    assert (await stats(sidecar))["rejected"] == {"judge": 2}


async def test_min_similarity_lets_the_judge_serve_below_the_threshold(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    # Cosine 0.63 under the test encoder: below the 0.7 threshold, above the 0.6 floor.
    rewording = "How should I go about resetting my password?"
    sidecar = await semantic_sidecar(judge=judge_block(key_file, minSimilarity=0.6))
    await ask(sidecar, QUESTION)
    own = await ask(sidecar, rewording, headers={"x-llmcache-semantic-threshold": "0.7", "Cache-Control": "no-store"})
    assert own.status.startswith("llmcache; fwd=miss")  # a request's own threshold is not lowered by the floor
    assert judge.calls == []

    hit = await ask(sidecar, rewording)
    assert hit.status == SEMANTIC_HIT
    assert hit.similarity is not None and 0.6 <= float(hit.similarity) < 0.7
    assert judge.pairs == [(QUESTION, rewording)]


async def test_decide_unsure_lets_the_judge_serve_what_the_rules_cannot_tell(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    # reset / change: not WordNet synonyms, so a word put in another's place ("substitution").
    reworded = "How do I change my password?"
    sidecar = await semantic_sidecar(judge=judge_block(key_file, decideUnsure=True))
    await ask(sidecar, QUESTION)
    hit = await ask(sidecar, reworded)
    negated = await ask(sidecar, "How do I not reset my password?")

    assert hit.status == SEMANTIC_HIT
    assert negated.status == MISS  # a changed fact is never the judge's to overrule
    assert judge.pairs == [(QUESTION, reworded)]


async def test_without_decide_unsure_the_rules_rejection_stands(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    answer = await ask(sidecar, "How do I change my password?")

    assert answer.status == MISS
    assert judge.calls == []
    assert (await stats(sidecar))["rejected"] == {"substitution": 1}


async def test_without_min_similarity_nothing_below_the_threshold_is_judged(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    answer = await ask(sidecar, "How should I go about resetting my password?")

    assert answer.status == MISS
    assert judge.calls == []


@pytest.mark.parametrize(
    ("provider", "path", "credential"),
    [
        ("anthropic", "/v1/messages", ("x-api-key", JUDGE_KEY)),
        ("gemini", f"/v1beta/models/{JUDGE_MODEL}:generateContent", ("x-goog-api-key", JUDGE_KEY)),
        ("azure", f"/openai/deployments/{JUDGE_MODEL}/chat/completions", ("api-key", JUDGE_KEY)),
    ],
)
async def test_the_judge_speaks_each_providers_wire_format(
    semantic_sidecar: SemanticSidecarFactory,
    judge: FakeJudge,
    key_file: str,
    provider: str,
    path: str,
    credential: tuple[str, str],
) -> None:
    sidecar = await semantic_sidecar(judge=judge_block(key_file, provider=provider))
    await ask(sidecar, QUESTION)
    hit = await ask(sidecar, PARAPHRASE)

    assert hit.status == SEMANTIC_HIT
    (call,) = judge.calls
    assert call.path == path
    assert call.headers[credential[0]] == credential[1]
    assert (await stats(sidecar))["judge"]["inputTokens"] > 0


async def test_the_judges_tokens_and_cost_reach_the_metrics(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    model = "judge-mini-metrics"  # a label set of its own
    sidecar = await semantic_sidecar(
        judge=judge_block(key_file, model=model),
        sidecar={"telemetry": {"prices": {model: {"input": 1.0, "output": 4.0}}}},
    )
    await ask(sidecar, QUESTION)
    await ask(sidecar, PARAPHRASE)
    # The fake counts a word as a token: every message's words in, one word ("SAME") out.
    (call,) = judge.calls
    words_in = sum(len(m["content"].split()) for m in call.json()["messages"])
    samples = await scrape(sidecar)

    assert samples[("llmcache_semantic_judge_tokens_total", (("gen_ai_request_model", model), ("gen_ai_token_type", "input")))] == words_in  # fmt: skip
    assert samples[("llmcache_semantic_judge_tokens_total", (("gen_ai_request_model", model), ("gen_ai_token_type", "output")))] == 1  # fmt: skip
    assert samples[("llmcache_semantic_judge_cost_usd_total", (("gen_ai_request_model", model),))] == pytest.approx(
        (words_in * 1.0 + 1 * 4.0) / 1e6
    )
    assert samples[("llmcache_semantic_judge_verdicts_total", (("llmcache_source", "judge"), ("llmcache_verdict", "same")))] >= 1  # fmt: skip
    numbers = (await stats(sidecar))["judge"]
    assert (numbers["inputTokens"], numbers["outputTokens"]) == (words_in, 1)
    assert numbers["costUsd"] == pytest.approx((words_in + 4) / 1e6)


async def test_judge_rejections_are_counted_with_their_own_reason_in_the_metrics(
    semantic_sidecar: SemanticSidecarFactory, judge: FakeJudge, key_file: str
) -> None:
    judge.says = lambda stored, query: "DIFFERENT"
    sidecar = await semantic_sidecar(judge=judge_block(key_file))
    await ask(sidecar, QUESTION)
    await ask(sidecar, PARAPHRASE)
    samples = await scrape(sidecar)

    assert samples[("llmcache_semantic_rejections_total", (("llmcache_reason", "judge"),))] >= 1


async def scrape(sidecar: Sidecar) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/metrics") as resp:
        text = await resp.text()
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_judge_naming_a_provider_that_is_not_configured_is_refused(embedder: Embedder, key_file: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        sidecar_settings("http://127.0.0.1:1", semantic=semantic_settings(embedder, judge={"enabled": True, "provider": "mistral"}))  # fmt: skip
    assert raised.value.path == "semantic.judge.provider"
    assert "'mistral' is not a configured provider" in str(raised.value)


def test_an_unreadable_judge_key_file_is_a_config_error(embedder: Embedder, tmp_path: Path) -> None:
    from llmcache_sidecar.semantic import build_semantic

    settings = sidecar_settings(
        "http://127.0.0.1:1", semantic=semantic_settings(embedder, judge=judge_block(str(tmp_path / "missing")))
    )
    with pytest.raises(config.ConfigError) as raised:
        build_semantic(settings.semantic)
    assert raised.value.path == "semantic.judge.apiKeyFile"
    assert JUDGE_KEY not in str(raised.value)

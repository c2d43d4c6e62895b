"""Traces and metrics as a user's collector and Prometheus see them."""

from __future__ import annotations

import json

import aiohttp
import pytest
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Otel, Sidecar, Upstream

PROMPT = "my secret prompt about the quarterly numbers"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def ask(sidecar: Sidecar, model: str, **headers: str) -> dict[str, str]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sidecar.url}/openai/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-t", **headers}
        ) as resp:
            await resp.read()
            result = dict(resp.headers)
    await sidecar.state.drain(5)
    return result


def spans_of_trace(otel: Otel, trace_id: int):
    return [s for s in otel.spans.get_finished_spans() if s.context.trace_id == trace_id]


async def test_a_miss_and_a_hit_give_a_server_span_each_with_lookup_upstream_and_store_children(
    sidecar: Sidecar, upstream: Upstream, otel: Otel
) -> None:
    otel.spans.clear()
    await ask(sidecar, "gpt-4o-mini", traceparent=TRACEPARENT)
    spans = spans_of_trace(otel, int("0af7651916cd43dd8448eb211c80319c", 16))
    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    by_name = {s.name: s for s in spans if s is not server}

    assert server.parent is not None and server.parent.span_id == int("b7ad6b7169203331", 16)  # the app's trace goes on
    assert server.attributes["llmcache.status"] == "miss"
    assert server.attributes["gen_ai.system"] == "openai"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert server.attributes["llmcache.key"].startswith("llmc:2:")
    assert {"llmcache.lookup", "POST", "llmcache.store"} <= set(by_name)
    client = by_name["POST"]
    assert client.kind == SpanKind.CLIENT
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in by_name.values())

    seen = upstream.fake.received[-1].headers["traceparent"]
    assert seen == f"00-0af7651916cd43dd8448eb211c80319c-{client.context.span_id:016x}-01"

    otel.spans.clear()
    await ask(sidecar, "gpt-4o-mini", traceparent=TRACEPARENT)
    spans = spans_of_trace(otel, int("0af7651916cd43dd8448eb211c80319c", 16))
    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    assert server.attributes["llmcache.status"] == "hit"
    assert server.attributes["gen_ai.usage.input_tokens"] > 0
    assert [s.name for s in spans if s is not server] == ["llmcache.lookup"]


async def test_no_prompt_or_answer_text_reaches_spans_or_metrics(make_sidecar, upstream: Upstream, otel: Otel) -> None:
    sidecar = await make_sidecar(telemetry={"traceSampleRatio": 1})
    otel.spans.clear()
    await ask(sidecar, "gpt-4o-mini")
    await ask(sidecar, "gpt-4o-mini")
    assert len(otel.spans.get_finished_spans()) >= 2
    exported = " ".join(s.to_json() for s in otel.spans.get_finished_spans())
    metrics_text = json.dumps(otel.metrics.get_metrics_data().to_json())
    for text in (exported, metrics_text):
        assert "quarterly" not in text
        assert "Echo" not in text  # the fake provider's answers start with "Echo #n"
        assert "sk-t" not in text


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope"))
            samples[(sample.name, labels)] = sample.value
    return samples


@pytest.mark.parametrize("hits", [1, 3])
async def test_prometheus_metrics_count_the_requests_made(sidecar: Sidecar, upstream: Upstream, hits: int) -> None:
    model = f"gpt-4o-mini-metrics-{hits}"  # its own label set: counts from other tests do not mix in
    for _ in range(1 + hits):
        await ask(sidecar, model)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sidecar.admin_url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            samples = scrape(await resp.text())

    def value(name: str, **labels: str) -> float:
        base = {"llmcache_provider": "openai", "gen_ai_request_model": model}
        return samples[(name, frozenset({**base, **labels}.items()))]

    assert value("llmcache_requests_total", llmcache_endpoint="chat/completions", llmcache_status="miss") == 1
    assert value("llmcache_requests_total", llmcache_endpoint="chat/completions", llmcache_status="hit") == hits
    assert (
        value("llmcache_request_duration_seconds_count", llmcache_endpoint="chat/completions", llmcache_status="hit")
        == hits
    )
    entry_tokens = value("llmcache_tokens_saved_total", gen_ai_token_type="output") / hits
    assert entry_tokens > 0 and entry_tokens == int(entry_tokens)
    # gpt-4o-mini-* is priced by prefix from the built-in table: 0.15 / 0.60 USD per million tokens
    input_tokens = value("llmcache_tokens_saved_total", gen_ai_token_type="input")
    expected = (input_tokens * 0.15 + entry_tokens * hits * 0.60) / 1e6
    assert value("llmcache_cost_saved_usd_total") == pytest.approx(expected)
    assert value("llmcache_latency_saved_seconds_total") >= 0


async def test_prices_from_the_config_are_used_for_money_saved(make_sidecar, upstream: Upstream) -> None:
    sidecar = await make_sidecar(telemetry={"prices": {"house-model": {"input": 1000000, "output": 0}}})
    await ask(sidecar, "house-model")
    await ask(sidecar, "house-model")
    saved = sidecar.state.aggregates.cost_saved[("openai", "house-model")]
    tokens = sidecar.state.aggregates.tokens_saved[("openai", "house-model", "input")]
    assert saved == tokens > 0  # one dollar per input token

"""Metric labels a request chooses are bounded (issue 15, finding 8).

The model label comes from the request body: 2,000 made-up model names made 2,001 series,
kept forever. Past `telemetry.labels.MAX_MODELS` distinct models a sidecar counts new ones
as `other`, in every metric a scrape of /metrics shows; spans keep the real name.
"""

from __future__ import annotations

import aiohttp

from llmcache_sidecar.telemetry.labels import MAX_MODELS, OTHER, LabelCap
from tests.conftest import Otel, SidecarFactory, Upstream
from tests.e2e.test_telemetry import scrape


async def test_made_up_model_names_beyond_the_cap_are_counted_as_other(
    make_sidecar: SidecarFactory, upstream: Upstream, otel: Otel
) -> None:
    sidecar = await make_sidecar(telemetry={"traceSampleRatio": 1})  # every request traced: spans are checked
    extra = 20
    async with aiohttp.ClientSession() as http:
        for i in range(MAX_MODELS + extra):
            body = {"model": f"made-up-model-{i}", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(
                f"{sidecar.url}/openai/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-a"}
            ) as r:
                assert r.status == 200
        async with http.get(f"{sidecar.admin_url}/metrics") as r:
            samples = scrape(await r.text())

    def models(metric: str) -> set[str]:
        return {
            dict(labels)["gen_ai_request_model"]
            for name, labels in samples
            if name == metric and dict(labels).get("llmcache_provider") == "openai"
        }

    for metric in ("llmcache_requests_total", "llmcache_request_duration_seconds_count"):
        made_up = {m for m in models(metric) if m.startswith("made-up-model-")}
        assert made_up == {f"made-up-model-{i}" for i in range(MAX_MODELS)}, metric
        assert OTHER in models(metric), metric
    counted = sum(
        v
        for (name, labels), v in samples.items()
        if name == "llmcache_requests_total" and dict(labels)["gen_ai_request_model"] == OTHER
    )
    assert counted >= extra
    spans = [s for s in otel.spans.get_finished_spans() if s.attributes and "gen_ai.request.model" in s.attributes]
    assert spans[-1].attributes["gen_ai.request.model"] == f"made-up-model-{MAX_MODELS + extra - 1}"


def test_a_label_cap_keeps_the_values_it_admitted_and_counts_the_rest_as_other() -> None:
    cap = LabelCap(2)
    assert [cap(v) for v in ("a", "b", "c", "a", "", "d", "b")] == ["a", "b", OTHER, "a", "", OTHER, "b"]

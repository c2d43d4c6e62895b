"""The shipped Grafana dashboard queries metrics the sidecar really exposes.

A quick check without Prometheus; tests/monitoring runs every panel's query and every
alert on a real Prometheus scraping real sidecars.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SidecarFactory, Upstream
from tests.realparts import free_port

FILES = Path(__file__).resolve().parents[2] / "charts" / "llmcache" / "files"
METRIC = re.compile(r"\bllmcache_[a-z_]+\b")
LABELS = {
    "llmcache_backend",
    "llmcache_operation",
    "llmcache_status",
    "llmcache_provider",
    "llmcache_endpoint",
    "llmcache_reason",
    "llmcache_outcome",
}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


async def exposed_metric_names(make_sidecar: SidecarFactory) -> set[str]:
    await make_sidecar()  # a memory backend: its entry and byte gauges are known at start
    # A Redis that is not there: the backend error counter exists only once an error happened.
    sidecar = await make_sidecar(
        backend={"type": "dual", "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeoutMs": 50}}
    )
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "dashboards"}]}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as http:
        for _ in range(2):
            async with http.post(f"{sidecar.url}/openai/v1/chat/completions", json=body) as resp:
                await resp.read()
            await sidecar.state.drain(5)
        async with http.get(f"{sidecar.admin_url}/metrics") as resp:
            text = await resp.text()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_every_metric_the_dashboard_queries_is_exposed(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    exposed = await exposed_metric_names(make_sidecar)
    queried = {name for expr in dashboard_queries() for name in METRIC.findall(expr)} - LABELS
    assert queried, "the dashboard queries nothing"
    assert queried <= exposed, f"not exposed: {sorted(queried - exposed)}"


def test_the_dashboard_shows_hit_rate_savings_and_backend_health() -> None:
    titles = {p["title"] for p in json.loads((FILES / "grafana-dashboard.json").read_text())["panels"]}
    for wanted in (
        "Hit rate",
        "Money saved (selected range)",
        "Tokens saved per second",
        "Provider time saved per second",
        "Backend errors (served as misses)",
        "Latency p50 / p99 by cache status",
        "Lookups answered without the backend (fail-open)",
        "Semantic lookups by outcome",
    ):
        assert wanted in titles

"""Every panel of the shipped Grafana dashboard, queried on a real Prometheus scraping real sidecars.

Real parts: Debian's Prometheus 2.42 scraping two `llmcache-sidecar` processes through
their `metricsListen` port (one on the memory backend, with semantic caching; one on a
real redis-server), with the chart's alert rules loaded. The stand-ins: the LLM provider
(tests/fakes/provider.py, also playing the semantic judge's model) and the embedder's
bag-of-words encoder (llmcache-embedder's HashEncoder, as tests/semantic uses it).

The traffic makes every kind of answer: misses, hits, streamed answers, coalesced ones,
bypasses, pass-throughs, semantic hits, and lookups while Redis is paused (backend
errors, fail-open). It is sent twice: once before Prometheus starts, so that every
series exists from Prometheus's first scrape on, then again, counted, while it scrapes.
Each query of each panel then runs through the HTTP API with the dashboard's template
variables filled: every one must return a series, and those with a known meaning must
say it (the hit ratio is the share of hits in the answers sent).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis
import yaml
from llmcache_embedder.app import create_app
from llmcache_embedder.model import HashEncoder
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Upstream
from tests.monitoring.conftest import DASHBOARD, RULES
from tests.monitoring.prometheus import Target, running_prometheus
from tests.realparts import free_port, until_healthy
from tests.realparts import redis as real_redis
from tests.semantic.test_judge import FakeJudge

COMMAND = str(Path(sys.executable).with_name("llmcache-sidecar"))
MEMORY, REDIS = "team-memory", "team-redis"
HITS = ("hit", "coalesced", "semantic")
# Paraphrase pairs the rule verifier accepts (one per round), as in tests/semantic.
PAIRS = [
    ("How do I reset my password?", "how can I reset my password"),
    ("How do I delete my account?", "how can I delete my account"),
]
POLLS = 150
"""Bounded waits of 0.1 s."""
STARTUP_POLLS = 600
"""A semantic sidecar builds its spelling index (and reads WordNet) before it serves: up to a minute here."""


def status_of(cache_status: str | None) -> str:
    """The `llmcache_status` label a response is counted under, from its Cache-Status header."""
    if cache_status is None:
        return "pass"
    if "detail=coalesced" in cache_status:
        return "coalesced"
    if "detail=semantic" in cache_status:
        return "semantic"
    if cache_status.startswith("llmcache; hit"):
        return "hit"
    if "fwd=bypass" in cache_status:
        return "bypass"
    assert "fwd=miss" in cache_status or "fwd=request" in cache_status, cache_status
    return "miss"


class Client:
    """Asks one sidecar and counts every answer by the status it is counted under."""

    def __init__(self, http: aiohttp.ClientSession, url: str, admin_url: str) -> None:
        self.http = http
        self.url = url
        self.admin_url = admin_url
        self.sent: Counter[str] = Counter()

    async def ask(self, prompt: str, *, stream: bool = False, semantic: bool = False, **headers: str) -> str:
        """One chat call; a miss returns once its answer is stored (and indexed, for a semantic one)."""
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "stream": stream}
        if not semantic:
            headers["x-llmcache-semantic"] = "off"  # only the semantic pairs may match one another
        before = await self.stats()
        async with self.http.post(f"{self.url}/openai/v1/chat/completions", json=body, headers=headers) as r:
            await r.read()
            assert r.status == 200, await r.text()
            status = self._count(r.headers.get("Cache-Status"))
        if status == "miss":  # the write happens after the answer: wait for it, so that the next ask hits

            async def written() -> bool:
                now = await self.stats()
                indexed = now["semantic"]["indexed"] > before["semantic"]["indexed"]
                return bool(now["stored"] > before["stored"] and (indexed or not semantic))

            await until(written, f"the answer to {prompt!r} stored")
        return status

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(f"{self.admin_url}/cache/stats") as r:
            found: dict[str, Any] = await r.json()
            return found

    async def bypass(self) -> None:
        async with self.http.post(
            f"{self.url}/openai/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as r:
            await r.read()
            assert self._count(r.headers.get("Cache-Status")) == "bypass"

    async def pass_through(self) -> None:
        async with self.http.get(f"{self.url}/openai/v1/models") as r:
            await r.read()
            assert self._count(r.headers.get("Cache-Status")) == "pass"

    def _count(self, cache_status: str | None) -> str:
        status = status_of(cache_status)
        self.sent[status] += 1
        return status


async def common_round(client: Client, round_: int) -> None:
    """Misses, hits, a streamed miss and hit, a coalesced burst, a bypass and a pass-through."""
    for i in range(3):
        assert await client.ask(f"fact {round_}-{i}") == "miss"
        for _ in range(2):
            assert await client.ask(f"fact {round_}-{i}") == "hit"
    assert await client.ask(f"stream {round_}", stream=True) == "miss"
    assert await client.ask(f"stream {round_}", stream=True) == "hit"
    # The provider takes a second: the three later ones join the first one's flight.
    burst = await asyncio.gather(*(client.ask(f"burst {round_}", **{"x-fake-delay-ms": "1000"}) for _ in range(4)))
    assert burst.count("miss") == 1 and "coalesced" in burst, burst
    await client.bypass()
    await client.pass_through()


async def memory_round(client: Client, round_: int) -> None:
    await common_round(client, round_)
    question, paraphrase = PAIRS[round_]
    assert await client.ask(question, semantic=True) == "miss"
    assert await client.ask(paraphrase, semantic=True) == "semantic"


async def redis_round(client: Client, round_: int, server: redis.Redis) -> None:
    await common_round(client, round_)
    server.client_pause(400, all=True)  # Redis answers nothing for 0.4 s: lookups time out (50 ms)
    for i in range(3):
        assert await client.ask(f"paused {round_}-{i}") == "miss"
    await asyncio.sleep(1.5)  # the pause and the fail-open circuit breaker's cooldown are over


@asynccontextmanager
async def sidecar(tmp_path: Path, name: str, settings: dict[str, Any]) -> AsyncIterator[tuple[str, str, str]]:
    """`llmcache-sidecar` with a metricsListen port: yields (data URL, admin URL, scrape address)."""
    port, admin, metrics = free_port(), free_port(), free_port()
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "admin": f"127.0.0.1:{admin}",
                "telemetry": {"metricsListen": f"127.0.0.1:{metrics}"},
                **settings,
            }
        )
    )
    with (tmp_path / f"{name}.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(COMMAND, "--config", str(config), stderr=log)
    try:
        if not await until_healthy(f"http://127.0.0.1:{admin}", STARTUP_POLLS, path="/readyz"):
            raise AssertionError(f"{name} never became ready: {(tmp_path / f'{name}.log').read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", f"127.0.0.1:{metrics}"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


async def requests_counted(http: aiohttp.ClientSession, address: str) -> float:
    """llmcache_requests_total summed, as the sidecar itself exposes it now."""
    async with http.get(f"http://{address}/metrics") as r:
        text = await r.text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llmcache_requests_total"
    )


async def until(check: Any, what: str) -> None:
    for _ in range(POLLS):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def fill(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"a template variable is left unfilled: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads: its names, less label matchers and by/without lists."""
    bare = re.sub(r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return set(re.findall(r"\b(?:llmcache_\w+|up)\b", bare))


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


async def test_every_panel_query_returns_series_and_the_hit_ratio_is_the_traffics(
    aiohttp_server, upstream: Upstream, prometheus_binary: Path, tmp_path: Path
) -> None:
    FakeJudge(upstream)  # the fake provider answers the judge's calls with SAME
    embedder = await aiohttp_server(create_app(lambda: HashEncoder(256), "hash-bow-256"), host="127.0.0.1")
    judge_key = tmp_path / "judge-key"
    judge_key.write_text("sk-judge\n")
    providers = {"openai": {"upstream": upstream.url}}
    semantic = {
        "enabled": True,
        "threshold": 0.7,
        "embedding": {"url": str(embedder.make_url("/v1")), "model": "hash-bow-256", "timeoutMs": 2000},
        "judge": {"enabled": True, "provider": "openai", "model": "judge-mini", "apiKeyFile": str(judge_key)},
    }
    async with AsyncExitStack() as stack:
        redis_server = stack.enter_context(real_redis(tmp_path))
        redis_client = stack.enter_context(redis.Redis(port=redis_server.port))
        memory_url, memory_admin, memory_metrics = await stack.enter_async_context(
            sidecar(tmp_path, "memory", {"providers": providers, "semantic": semantic})
        )
        redis_url, redis_admin, redis_metrics = await stack.enter_async_context(
            sidecar(
                tmp_path,
                "redis",
                {"providers": providers, "backend": {"type": "redis", "redis": {"url": redis_server.url}}},
            )
        )
        http = await stack.enter_async_context(aiohttp.ClientSession(headers={"Authorization": "Bearer sk-dash"}))

        # Round 0, before Prometheus: every series exists from its first scrape on.
        await memory_round(Client(http, memory_url, memory_admin), 0)
        await redis_round(Client(http, redis_url, redis_admin), 0, redis_client)
        prom = stack.enter_context(
            running_prometheus(
                prometheus_binary,
                tmp_path,
                [
                    Target(memory_metrics, {"namespace": MEMORY, "pod": "app-memory", "endpoint": "llmcache-metrics"}),
                    Target(redis_metrics, {"namespace": REDIS, "pod": "app-redis", "endpoint": "llmcache-metrics"}),
                ],
                rule_files=[RULES],
            )
        )

        async def scraped_three_times() -> bool:
            return len(prom.query("count_over_time(up[5m]) >= 3")) == 2

        await until(scraped_three_times, "three scrapes of both sidecars")

        # Round 1, counted, while Prometheus scrapes.
        memory, redis_side = Client(http, memory_url, memory_admin), Client(http, redis_url, redis_admin)
        await memory_round(memory, 1)
        await redis_round(redis_side, 1, redis_client)
        own = {MEMORY: await requests_counted(http, memory_metrics), REDIS: await requests_counted(http, redis_metrics)}

        async def prometheus_has_it_all() -> bool:
            totals = prom.query("sum by (namespace) (llmcache_requests_total)")
            return {r["metric"]["namespace"]: float(r["value"][1]) for r in totals} == own

        await until(prometheus_has_it_all, "Prometheus scraped the counts of the last requests")
        await asyncio.sleep(2.5)  # and evaluated the rules on them

        # The template variables, filled as Grafana fills them.
        dashboard = json.loads(DASHBOARD.read_text())
        (namespace_var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "namespace"]
        match = re.fullmatch(r"label_values\((\w+), (\w+)\)", namespace_var["query"]["query"])
        assert match is not None
        assert sorted(prom.label_values(match.group(2), match.group(1))) == [MEMORY, REDIS]
        time_range = dashboard["time"]["from"].removeprefix("now-")  # $__range of the default time range
        everything = {"namespace": namespace_var["allValue"], "__range": time_range}

        results: dict[str, list[dict[str, Any]]] = {}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                result = prom.query(fill(target["expr"], everything))
                assert result, f"panel {panel['title']!r} shows nothing: {target['expr']}"
                results.setdefault(panel["title"], []).extend(result)

        # What the numbers mean.
        hits = sum(memory.sent[s] + redis_side.sent[s] for s in HITS)
        cacheable = sum(n for c in (memory, redis_side) for s, n in c.sent.items() if s != "pass")
        (ratio,) = values(results["Hit rate"])
        assert 0 < ratio < 1
        # Both sidecars together: each target's rate is extrapolated by its own scrape times.
        assert math.isclose(ratio, hits / cacheable, rel_tol=0.02)
        (hit_rate_panel,) = [p for p in dashboard["panels"] if p["title"] == "Hit rate"]
        for namespace, client in ((MEMORY, memory), (REDIS, redis_side)):
            (one,) = values(
                prom.query(fill(hit_rate_panel["targets"][0]["expr"], {**everything, "namespace": namespace}))
            )
            sent_hits = sum(client.sent[s] for s in HITS)
            sent_cacheable = sum(n for s, n in client.sent.items() if s != "pass")
            assert math.isclose(one, sent_hits / sent_cacheable, rel_tol=1e-9), (namespace, client.sent)
        assert all(0 <= v <= 1 for v in values(results["Hit rate by model"]))
        for title in (
            "Money saved (selected range)",
            "Tokens saved (selected range)",
            "Provider time saved (selected range)",
            "Tokens saved per second",
            "Money saved per hour",
            "Provider time saved per second",
        ):
            assert sum(values(results[title])) > 0, title
        statuses = {r["metric"].get("llmcache_status") for r in results["Requests by cache status"]}
        assert statuses >= {"hit", "miss", "coalesced", "semantic", "bypass", "pass"}
        latencies = values(results["Latency p50 / p99 by cache status"])
        assert all(v > 0 and math.isfinite(v) for v in latencies)
        assert {r["metric"]["llmcache_backend"] for r in results["Backend errors (served as misses)"]} == {"redis"}
        assert sum(values(results["Backend errors (served as misses)"])) > 0
        assert sum(values(results["Lookups answered without the backend (fail-open)"])) > 0
        assert any(v > 0 and math.isfinite(v) for v in values(results["Backend operation p99"]))
        outcomes = {
            r["metric"]["llmcache_outcome"]: float(r["value"][1]) for r in results["Semantic lookups by outcome"]
        }
        assert outcomes["hits"] > 0

        # The alert rules run on the same data without an error; every metric they read exists.
        shipped = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
        rules = prom.rules()
        assert len(rules) == len(shipped)
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        read = {name for r in shipped for name in metric_names(r["expr"])}
        names = set(prom.label_values("__name__", '{__name__=~".+"}'))
        assert len(read) == 7
        assert read <= names, f"the alerts read metrics nobody exposes: {sorted(read - names)}"

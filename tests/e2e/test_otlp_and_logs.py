"""The real command, configured the standard way, sending OTLP/HTTP to a receiver of ours."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import Upstream
from tests.realparts import free_port, until_healthy

PROMPT = "please keep this prompt out of telemetry"


class Receiver:
    """A minimal OTLP/HTTP receiver: it decodes what the sidecar's exporters send."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.raw = b""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.on_traces)
        app.router.add_post("/v1/metrics", self.on_metrics)
        return app

    async def on_traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw += body
        self.traces.append(ExportTraceServiceRequest.FromString(body))
        return web.Response(content_type="application/x-protobuf")

    async def on_metrics(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw += body
        self.metrics.append(ExportMetricsServiceRequest.FromString(body))
        return web.Response(content_type="application/x-protobuf")

    def spans(self):
        return [s for req in self.traces for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def resource_attributes(self) -> dict[str, str]:
        return {
            a.key: a.value.string_value
            for req in self.traces
            for rs in req.resource_spans
            for a in rs.resource.attributes
        }

    def metric_names(self) -> set[str]:
        return {
            m.name for req in self.metrics for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }


async def test_the_sidecar_exports_spans_and_metrics_over_otlp_and_logs_json_with_trace_ids(
    aiohttp_server, upstream: Upstream, tmp_path: Path
) -> None:
    receiver = Receiver()
    collector = await aiohttp_server(receiver.app())
    port, admin, metrics_port = free_port(), free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "admin": f"127.0.0.1:{admin}",
                "providers": {"openai": {"upstream": upstream.url}},
                "telemetry": {"metricsListen": f"127.0.0.1:{metrics_port}", "traceSampleRatio": 1},
            }
        )
    )
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(collector.make_url("")).rstrip("/"),
        "OTEL_SERVICE_NAME": "checkout-llmcache",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=team-a",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmcache_sidecar.cli",
        "--config",
        str(config),
        "--log-level",
        "DEBUG",
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        await until_healthy(f"http://127.0.0.1:{admin}", tries=50)
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(2):
                async with http.post(
                    f"http://127.0.0.1:{port}/openai/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]},
                    headers={"Authorization": "Bearer sk-otlp"},
                ) as r:
                    await r.read()
                    statuses.append(r.headers["Cache-Status"])
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.8)  # at least two metric export intervals
            # The scrape-only port: metrics, and nothing that can flush or read entries.
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                scraped = await r.text()
            async with http.post(f"http://127.0.0.1:{metrics_port}/cache/flush") as r:
                flush_status = r.status
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; hit"]
    assert "llmcache_requests_total{" in scraped and 'llmcache_status="hit"' in scraped
    assert flush_status == 404

    servers = [s for s in receiver.spans() if s.kind == s.SPAN_KIND_SERVER]
    status_of = {a.value.string_value for s in servers for a in s.attributes if a.key == "llmcache.status"}
    assert status_of == {"miss", "hit"}
    assert receiver.resource_attributes()["service.name"] == "checkout-llmcache"
    assert receiver.resource_attributes()["k8s.namespace.name"] == "team-a"
    assert {"llmcache.requests", "llmcache.request.duration", "llmcache.tokens.saved"} <= receiver.metric_names()
    assert PROMPT.encode() not in receiver.raw

    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["message"] == "request"]
    assert [r["status"] for r in requests] == ["miss", "hit"]
    assert all(len(r["trace_id"]) == 32 for r in requests)
    assert {r["trace_id"] for r in requests} == {s.trace_id.hex() for s in servers}
    assert PROMPT not in stderr.decode()
    assert "sk-otlp" not in stderr.decode()

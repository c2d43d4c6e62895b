"""Shared fixtures: the fake provider, and a sidecar in front of it; the real servers
(redis-server and the rest) come from `tests.realparts.fixtures`, loaded here for every tier.

The fake provider (tests/fakes/provider.py) is a local aiohttp server that speaks the
providers' real wire formats; it stands in for OpenAI, Anthropic, Gemini and Azure,
which cannot be reached from here. Everything else is real: the sidecar's apps on
real sockets, the official SDKs as clients, a real redis-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from llmcache_sidecar import config
from llmcache_sidecar.proxy.runtime import STATE, State
from llmcache_sidecar.server.app import make_admin_app, make_app
from llmcache_sidecar.telemetry.export import OwnHistograms
from llmcache_sidecar.telemetry.otel import PrometheusReader
from tests.fakes.provider import FAKE, FakeProvider, make_fake_provider

pytest_plugins = ["tests.realparts.fixtures"]


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    registry: CollectorRegistry


class InMemoryReader(OwnHistograms, InMemoryMetricReader):
    """The SDK's in-memory reader, seeing the sidecar's own histograms as the CLI's readers do."""


@pytest.fixture(scope="session", autouse=True)
def otel() -> Iterator[Otel]:
    """The OpenTelemetry SDK as the CLI sets it up, with in-memory exporters instead of OTLP.

    OpenTelemetry's providers are process-wide and set once, so every test runs with
    tracing and metrics on, as a sidecar with a collector does.
    """
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    registry = CollectorRegistry()
    reader = InMemoryReader()
    meter_provider = MeterProvider(metric_readers=[reader, PrometheusReader(registry=registry)])
    metrics.set_meter_provider(meter_provider)
    yield Otel(spans, reader, registry)
    meter_provider.shutdown()
    tracer_provider.shutdown()


@dataclass
class Upstream:
    url: str
    fake: FakeProvider


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Upstream:
    server = await aiohttp_server(make_fake_provider())
    return Upstream(str(server.make_url("")).rstrip("/"), server.app[FAKE])


@dataclass
class Sidecar:
    url: str
    admin_url: str
    app: web.Application

    @property
    def state(self) -> State:
        return self.app[STATE]

    @property
    def settings(self) -> config.Settings:
        return self.state.runtime.settings


def sidecar_settings(upstream_url: str, **overrides: Any) -> config.Settings:
    """Settings whose providers all point at the fake provider."""
    data: dict[str, Any] = {
        "providers": {
            "openai": {"upstream": upstream_url},
            "anthropic": {"upstream": upstream_url},
            "gemini": {"upstream": upstream_url},
            "azure": {"kind": "azure", "upstream": upstream_url},
        },
    }
    data.update(overrides)
    return config.parse(config.Settings, data)


SidecarFactory = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def make_sidecar(
    aiohttp_server: Callable[..., Awaitable[TestServer]], upstream: Upstream, otel: Otel
) -> AsyncIterator[SidecarFactory]:
    async def start(**overrides: Any) -> Sidecar:
        app = make_app(sidecar_settings(upstream.url, **overrides))
        server = await aiohttp_server(app)
        admin = await aiohttp_server(make_admin_app(app[STATE], metrics=otel.registry))
        return Sidecar(str(server.make_url("")).rstrip("/"), str(admin.make_url("")).rstrip("/"), app)

    yield start


@pytest.fixture
async def sidecar(make_sidecar: SidecarFactory) -> Sidecar:
    """A sidecar with the default settings (memory backend) in front of the fake provider."""
    return await make_sidecar()

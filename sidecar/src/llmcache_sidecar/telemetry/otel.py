"""OpenTelemetry SDK setup, done once by the CLI (the rest of the code uses the API only).

Configured the standard way: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal variants), `OTEL_TRACES_SAMPLER` /
`OTEL_TRACES_SAMPLER_ARG`, plus the config's `telemetry:` block. Metrics always feed
the admin port's `/metrics` (Prometheus text format) and, when an OTLP endpoint is
set, an OTLP/HTTP exporter: both read the same instruments, so a scrape and a
collector see the same numbers. Spans are only recorded when they can go somewhere
(an OTLP endpoint), so a sidecar without a collector pays nothing for tracing.

Which requests are traced is decided by `tracing` before a span is started (parent-based,
`traceSampleRatio` of the roots); the SDK's sampler is then `ParentBased(ALWAYS_ON)`,
which keeps that decision. Only a sampler that `tracing` does not implement (set by
`OTEL_TRACES_SAMPLER`: always_on, traceidratio, a plugin...) is left to the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from prometheus_client import CollectorRegistry

from llmcache_sidecar import __version__
from llmcache_sidecar.config import TelemetrySettings
from llmcache_sidecar.telemetry import tracing
from llmcache_sidecar.telemetry.export import OwnHistograms


class PrometheusReader(OwnHistograms, PrometheusMetricReader):
    """What `/metrics` renders: the SDK's instruments and the sidecar's own histograms."""


class PeriodicReader(OwnHistograms, PeriodicExportingMetricReader):
    """The OTLP metric exporter's reader, with the same histograms."""


@dataclass
class OtelHandles:
    registry: CollectorRegistry | None
    """What /metrics renders; None when metrics are off."""
    shutdown: Callable[[], None]


def _endpoint(settings: TelemetrySettings, signal: str) -> str | None:
    """The OTLP endpoint for `traces` or `metrics`: config first, then the standard variables."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/") + f"/v1/{signal}"
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific:
        return specific
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + f"/v1/{signal}" if base else None


def setup(settings: TelemetrySettings) -> OtelHandles:
    attributes = {SERVICE_VERSION: __version__}
    if "OTEL_SERVICE_NAME" not in os.environ:
        attributes[SERVICE_NAME] = "llmcache-sidecar"
    resource = Resource.create(attributes)
    shutdowns: list[Callable[[], object]] = []

    registry: CollectorRegistry | None = None
    if settings.metrics:
        registry = CollectorRegistry()
        readers: list[MetricReader] = [PrometheusReader(registry=registry)]
        if (endpoint := _endpoint(settings, "metrics")) is not None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicReader(OTLPMetricExporter(endpoint=endpoint)))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
        shutdowns.append(meter_provider.shutdown)

    if settings.traces and (endpoint := _endpoint(settings, "traces")) is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # DEFAULT_ON is ParentBased(ALWAYS_ON); None: the SDK reads OTEL_TRACES_SAMPLER itself.
        sampler = DEFAULT_ON if tracing.root_ratio(settings) is not None else None
        tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(tracer_provider)
        shutdowns.append(tracer_provider.shutdown)
    tracing.refresh_tracing_flag()

    def shutdown() -> None:
        for close in shutdowns:
            close()

    return OtelHandles(registry, shutdown)

"""Settings of traces, metrics and logs: `telemetry:`, with the price table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.config.fields import ConfigError, setting

DEFAULT_TRACE_SAMPLE_RATIO = 0.01
"""Istio's default: a span costs more than a cache hit (docs/benchmarks.md), so 1% of roots."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSettings:
    input: float = setting("input", "US dollars per million input tokens.", default=0.0, minimum=0)
    output: float = setting("output", "US dollars per million output tokens.", default=0.0, minimum=0)


# List prices (USD per million tokens) of common models, late 2026; a config entry with the
# same name replaces one, and a name matches dated variants by prefix (gpt-4o-mini-2024-07-18).
DEFAULT_PRICES: Mapping[str, PriceSettings] = {
    "gpt-4o": PriceSettings(input=2.50, output=10.00),
    "gpt-4o-mini": PriceSettings(input=0.15, output=0.60),
    "gpt-4.1": PriceSettings(input=2.00, output=8.00),
    "gpt-4.1-mini": PriceSettings(input=0.40, output=1.60),
    "gpt-4.1-nano": PriceSettings(input=0.10, output=0.40),
    "text-embedding-3-small": PriceSettings(input=0.02),
    "text-embedding-3-large": PriceSettings(input=0.13),
    "claude-opus-4": PriceSettings(input=15.00, output=75.00),
    "claude-sonnet-4": PriceSettings(input=3.00, output=15.00),
    "claude-haiku-4": PriceSettings(input=1.00, output=5.00),
    "claude-3-5-haiku": PriceSettings(input=0.80, output=4.00),
    "gemini-2.5-pro": PriceSettings(input=1.25, output=10.00),
    "gemini-2.5-flash": PriceSettings(input=0.30, output=2.50),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    traces: bool = setting(
        "traces", "Record spans of sampled requests; exported over OTLP when an endpoint is set.", default=True
    )
    trace_sample_ratio: float = setting(
        "traceSampleRatio",
        "Share of requests without a sampled caller's trace that start a trace of their own (0.01: 1%)."
        " Parent-based: a request whose traceparent is sampled is always traced, one whose traceparent is"
        " not sampled never is. OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG replace it when set.",
        default=DEFAULT_TRACE_SAMPLE_RATIO,
        minimum=0,
        schema={"maximum": 1},
    )
    metrics: bool = setting("metrics", "Keep metrics for /metrics and OTLP.", default=True)
    otlp_endpoint: str | None = setting(
        "otlpEndpoint",
        "OTLP/HTTP endpoint, e.g. http://otel-collector:4318; OTEL_EXPORTER_OTLP_ENDPOINT works too.",
        default=None,
    )
    metrics_listen: str | None = setting(
        "metricsListen",
        "Also serve /metrics (and nothing else) on this address, e.g. 0.0.0.0:9464, for a Prometheus scrape"
        " from outside the pod; the admin port stays on 127.0.0.1.",
        default=None,
    )
    savings_interval: float = setting(
        "savingsInterval",
        "How often the sidecar adds what it saved (requests, hits, tokens, money) to a shared Redis backend,"
        " for the LLMCache's status and kubectl get llmcaches; 0 turns it off. Memory and other backends keep"
        " nothing.",
        default=10.0,
        duration=True,
    )
    log_format: Literal["json", "text"] = setting(
        "logFormat", "json: one JSON object per line, with the trace id; text: plain lines.", default="json"
    )
    prices: dict[str, PriceSettings] = setting(
        "prices",
        "Prices by model name, added to (or replacing) the built-in table, for the money-saved metric.",
        factory=dict,
    )

    def _check(self, path: str) -> None:
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            where = f"{path}.traceSampleRatio" if path else "traceSampleRatio"
            raise ConfigError(where, f"must be between 0 and 1, got {self.trace_sample_ratio}")

    @property
    def price_table(self) -> dict[str, PriceSettings]:
        return {**DEFAULT_PRICES, **self.prices}

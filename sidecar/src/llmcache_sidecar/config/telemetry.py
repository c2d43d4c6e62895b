"""Settings of traces, metrics and logs: `telemetry:`, with the price table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.config.fields import setting


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
        "traces", "Record a span per request; exported over OTLP when an endpoint is set.", default=True
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
    log_format: Literal["json", "text"] = setting(
        "logFormat", "json: one JSON object per line, with the trace id; text: plain lines.", default="json"
    )
    prices: dict[str, PriceSettings] = setting(
        "prices",
        "Prices by model name, added to (or replacing) the built-in table, for the money-saved metric.",
        factory=dict,
    )

    @property
    def price_table(self) -> dict[str, PriceSettings]:
        return {**DEFAULT_PRICES, **self.prices}

"""What the data path reports per request: one span when sampled, and the counts behind the metrics.

Only the OpenTelemetry *API* is used here; `otel.py` sets the SDK up once, in the CLI.
Without it every call below is a no-op.

Sampling is parent-based and decided here, before any span exists: a request whose
`traceparent` is sampled is traced, one whose `traceparent` is not sampled is not, and
a request without one (a root) is traced with probability `traceSampleRatio` (1% by
default). The SDK's own sampler is then `ParentBased(ALWAYS_ON)`: it keeps what was
decided here. An unsampled request does no span work at all: no attribute dict, no
span object, no context attached, no child spans, no clock read that only a span needs.
`OTEL_TRACES_SAMPLER` replaces the setting: the parent-based samplers are decided here
the same way; any other sampler (always_on, traceidratio, a plugin) is asked by the SDK
for each request.

The hit path is kept cheap on purpose: a request adds to the `Aggregates` sums (see
`metrics`) instead of an SDK `add` per counter, and child spans are created after the
fact with explicit start and end times, so no context is attached and detached per
lookup. Prompts, answers and credentials never enter a span, a metric or a log line;
keys and model names do.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from llmcache_sidecar.config import TelemetrySettings
from llmcache_sidecar.entry import Usage
from llmcache_sidecar.telemetry.metrics import REQUEST_DURATION, SCOPE_NAME, Aggregates
from llmcache_sidecar.telemetry.pricing import PriceBook

logger = logging.getLogger("llmcache_sidecar.requests")
tracer = trace.get_tracer(SCOPE_NAME)

GEN_AI_SYSTEM = {"openai": "openai", "azure": "az.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
GEN_AI_OPERATION = {
    "chat/completions": "chat",
    "messages": "chat",
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}
_NS = 1_000_000_000
SAMPLER_ENV = "OTEL_TRACES_SAMPLER"
SAMPLER_ARG_ENV = "OTEL_TRACES_SAMPLER_ARG"
_PARENT_BASED = {"parentbased_always_on": 1.0, "parentbased_always_off": 0.0, "parentbased_traceidratio": None}


def root_ratio(settings: TelemetrySettings, env: Mapping[str, str] = os.environ) -> float | None:
    """The share of root requests this sidecar traces; None when the SDK's sampler decides each one.

    `traceSampleRatio`, unless `OTEL_TRACES_SAMPLER` is set: its parent-based samplers
    mean the same rule with another ratio (`OTEL_TRACES_SAMPLER_ARG` for
    parentbased_traceidratio); any other sampler is the SDK's to run (None).
    """
    name = env.get(SAMPLER_ENV, "").strip().lower()
    if not name:
        return settings.trace_sample_ratio
    if name not in _PARENT_BASED:
        return None
    fixed = _PARENT_BASED[name]
    if fixed is not None:
        return fixed
    raw = env.get(SAMPLER_ARG_ENV, "").strip()
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        logger.warning(
            "%s=%r is not a ratio between 0 and 1: traceSampleRatio %s applies",
            SAMPLER_ARG_ENV,
            raw,
            settings.trace_sample_ratio,
        )
        return settings.trace_sample_ratio
    return ratio


class RequestTrace:
    """Telemetry of one proxied request: its server span, timings and final outcome."""

    __slots__ = (
        "_parent",
        "endpoint",
        "key",
        "model",
        "provider",
        "saved_seconds",
        "saved_usage",
        "span",
        "start",
        "status",
        "system",
    )

    def __init__(self, request: web.Request, provider: str, kind: str, endpoint: str, root_ratio: float | None) -> None:
        """`root_ratio`: the share of root requests traced, or None for the SDK's sampler (`root_ratio()`)."""
        self.start = time.perf_counter()
        self.provider = provider
        self.endpoint = endpoint
        self.system = GEN_AI_SYSTEM.get(kind, kind)
        self.model = ""
        self.status = "pass"
        """hit, miss, coalesced, bypass (cacheable but not cached), pass (not cacheable), semantic,
        stale (an entry past its ttl: the provider failed, or max-stale), error."""
        self.key: str | None = None
        self.saved_usage: Usage | None = None
        """On an answer from the cache: the stored usage, i.e. the tokens not bought again."""
        self.saved_seconds: float | None = None
        """On an answer from the cache: how long the original upstream answer took."""
        self.span: trace.Span | None = None
        """The server span; None when this request is not traced (most requests: see `root_ratio`)."""
        self._parent: Context | None = None
        if TRACING.enabled:
            self._start_span(request, provider, endpoint, root_ratio)

    def _start_span(self, request: web.Request, provider: str, endpoint: str, root_ratio: float | None) -> None:
        headers = request.headers
        # Extraction finds nothing unless one of the propagators' headers came along (map: no
        # generator frame on every request; the header lookups are case-insensitive).
        parent = propagate.extract(headers) if any(map(headers.__contains__, TRACING.fields)) else None
        if root_ratio is not None:  # decided here, parent-based (see the module's docstring)
            remote = trace.get_current_span(parent).get_span_context() if parent is not None else None
            if remote is not None and remote.is_valid:
                if not remote.trace_flags.sampled:
                    return
            elif root_ratio < 1.0 and not random.random() < root_ratio:
                return
        span = tracer.start_span(
            f"{request.method} /{provider}/{endpoint}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "url.path": request.path,
                "gen_ai.system": self.system,
                "gen_ai.operation.name": GEN_AI_OPERATION.get(endpoint, endpoint),
                "llmcache.provider": provider,
            },
        )
        if not span.is_recording():  # the SDK's sampler (OTEL_TRACES_SAMPLER) said no
            return
        self.span = span
        self._parent = trace.set_span_in_context(span, parent)

    @property
    def context(self) -> Context | None:
        """The context child spans (lookup, upstream call, store) hang under; None when not traced."""
        return self._parent

    def set_model(self, model: str | None) -> None:
        """The requested model; the span gets it in `finish` (one attribute call per span)."""
        self.model = model or ""

    @property
    def traced(self) -> bool:
        return self._parent is not None

    def child(self, name: str, started: float, ended: float, attributes: Mapping[str, Any]) -> None:
        """Record a finished internal step (perf_counter times) as a child span, if this request is traced."""
        if self._parent is None:
            return
        offset = time.time_ns() - int(time.perf_counter() * _NS)
        span = tracer.start_span(
            name, context=self._parent, start_time=offset + int(started * _NS), attributes=attributes
        )
        span.end(end_time=offset + int(ended * _NS))

    def finish(self, *, http_status: int, aggregates: Aggregates, prices: PriceBook) -> None:
        """Close the span and count the request (and what an answer from the cache saved)."""
        duration = time.perf_counter() - self.start
        status, usage = self.status, self.saved_usage
        model = aggregates.models(self.model)  # a bounded label (telemetry.labels); spans keep the real one
        aggregates.requests[(self.provider, model, self.endpoint, status)] += 1
        if usage is not None:
            aggregates.tokens_saved[(self.provider, model, "input")] += usage.input_tokens
            aggregates.tokens_saved[(self.provider, model, "output")] += usage.output_tokens
            price = prices.get(self.model) if self.model else None
            if price is not None:
                aggregates.cost_saved[(self.provider, model)] += (
                    usage.input_tokens * price.input + usage.output_tokens * price.output
                ) / 1_000_000
            if self.saved_seconds is not None:
                aggregates.latency_saved[(self.provider, model)] += max(0.0, self.saved_seconds - duration)
        REQUEST_DURATION.record(duration, (self.provider, model, self.endpoint, status))
        span = self.span
        if span is not None:
            # One call: each set_attribute takes the span's lock and validates on its own.
            outcome: dict[str, str | int] = {"llmcache.status": status, "http.response.status_code": http_status}
            if self.model:
                outcome["gen_ai.request.model"] = self.model
            if self.key is not None:
                outcome["llmcache.key"] = self.key
            if usage is not None:
                outcome["gen_ai.usage.input_tokens"] = usage.input_tokens
                outcome["gen_ai.usage.output_tokens"] = usage.output_tokens
            span.set_attributes(outcome)
            if http_status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            span.end()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "request",
                extra={
                    "provider": self.provider,
                    "model": self.model,
                    "endpoint": self.endpoint,
                    "status": status,
                    "http_status": http_status,
                    "duration_ms": round(duration * 1000, 3),
                    "key": self.key[-12:] if self.key else None,
                },
            )


@dataclass(slots=True)
class _Tracing:
    """Whether a real tracer provider is set; checked once per app so the no-op path costs nothing."""

    enabled: bool = False
    fields: frozenset[str] = frozenset()
    """The headers the configured propagators read (traceparent, tracestate, baggage...)."""


TRACING = _Tracing()


def refresh_tracing_flag() -> None:
    provider = trace.get_tracer_provider()
    TRACING.enabled = type(provider).__name__ not in {"ProxyTracerProvider", "NoOpTracerProvider"}
    TRACING.fields = frozenset(propagate.get_global_textmap().fields)

"""What the data path reports: one span per request, and the metrics behind the dashboards.

Only the OpenTelemetry *API* is used here; `otel.py` sets the SDK up once, in the CLI.
Without it every call below is a no-op.

The hit path is kept cheap on purpose. Counters (requests, tokens and money saved) are
plain integer and float sums per attribute tuple, read by observable instruments when
a reader collects, so a request pays a dict update instead of an SDK `add` per
counter. Child spans are created after the fact with explicit start and end times, so
no context is attached and detached per lookup. Prompts, answers and credentials
never enter a span, a metric or a log line; keys and model names do.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

from llmcache_sidecar import histograms
from llmcache_sidecar.config import PriceSettings
from llmcache_sidecar.entry import Usage

logger = logging.getLogger("llmcache_sidecar.requests")
SCOPE_NAME = "llmcache_sidecar"
tracer = trace.get_tracer(SCOPE_NAME)
meter = metrics.get_meter(SCOPE_NAME)

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


@dataclass(slots=True, weakref_slot=True, eq=False)
class Aggregates:
    """Sums since start for one sidecar app, read by the observable instruments."""

    requests: defaultdict[tuple[str, str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    tokens_saved: defaultdict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    cost_saved: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    latency_saved: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    entries: int | None = None
    bytes: int | None = None
    backend: str = ""
    semantic: Any = None
    """The semantic cache's counters (lookups by outcome, rejections by reason), when it runs."""


_LIVE: weakref.WeakSet[Aggregates] = weakref.WeakSet()


def register(aggregates: Aggregates) -> None:
    _LIVE.add(aggregates)


def unregister(aggregates: Aggregates) -> None:
    _LIVE.discard(aggregates)


def _observe_requests(options: CallbackOptions) -> Iterable[Observation]:
    totals: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
    for agg in list(_LIVE):
        for k, v in agg.requests.items():
            totals[k] += v
    for (provider, model, endpoint, status), value in totals.items():
        yield Observation(
            value,
            {
                "llmcache.provider": provider,
                "gen_ai.request.model": model,
                "llmcache.endpoint": endpoint,
                "llmcache.status": status,
            },
        )


def _observe_tokens(options: CallbackOptions) -> Iterable[Observation]:
    totals: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    for agg in list(_LIVE):
        for k, v in agg.tokens_saved.items():
            totals[k] += v
    for (provider, model, kind), value in totals.items():
        yield Observation(
            value, {"llmcache.provider": provider, "gen_ai.request.model": model, "gen_ai.token.type": kind}
        )


def _observe_money(options: CallbackOptions) -> Iterable[Observation]:
    yield from _sum_pairs(lambda agg: agg.cost_saved)


def _observe_latency(options: CallbackOptions) -> Iterable[Observation]:
    yield from _sum_pairs(lambda agg: agg.latency_saved)


def _sum_pairs(pick: Any) -> Iterable[Observation]:
    totals: defaultdict[tuple[str, str], float] = defaultdict(float)
    for agg in list(_LIVE):
        for k, v in pick(agg).items():
            totals[k] += v
    for (provider, model), value in totals.items():
        yield Observation(round(value, 9), {"llmcache.provider": provider, "gen_ai.request.model": model})


_SEMANTIC_OUTCOMES = ("hits", "shadow_hits", "misses", "skipped", "embed_errors", "index_errors", "judge_errors")


def _observe_semantic_lookups(options: CallbackOptions) -> Iterable[Observation]:
    for outcome in _SEMANTIC_OUTCOMES:
        total = sum(getattr(agg.semantic, outcome) for agg in list(_LIVE) if agg.semantic is not None)
        yield Observation(total, {"llmcache.outcome": outcome})


def _observe_semantic_rejections(options: CallbackOptions) -> Iterable[Observation]:
    totals: defaultdict[str, int] = defaultdict(int)
    for agg in list(_LIVE):
        if agg.semantic is not None:
            for reason, count in agg.semantic.rejected.items():
                totals[reason] += count
    for reason, value in totals.items():
        yield Observation(value, {"llmcache.reason": reason})


def _judge_totals(pick: Any) -> defaultdict[Any, float]:
    """One semantic judge counter (a mapping), summed over the live apps."""
    totals: defaultdict[Any, float] = defaultdict(float)
    for agg in list(_LIVE):
        if agg.semantic is not None:
            for k, v in pick(agg.semantic.judge).items():
                totals[k] += v
    return totals


def _observe_judge_verdicts(options: CallbackOptions) -> Iterable[Observation]:
    for (verdict, source), value in _judge_totals(lambda j: j.verdicts).items():
        yield Observation(int(value), {"llmcache.verdict": verdict, "llmcache.source": source})


def _observe_judge_tokens(options: CallbackOptions) -> Iterable[Observation]:
    for (model, kind), value in _judge_totals(lambda j: j.tokens).items():
        yield Observation(int(value), {"gen_ai.request.model": model, "gen_ai.token.type": kind})


def _observe_judge_cost(options: CallbackOptions) -> Iterable[Observation]:
    for model, value in _judge_totals(lambda j: j.cost_usd).items():
        yield Observation(round(value, 9), {"gen_ai.request.model": model})


def _observe_size(attribute: str) -> Any:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for agg in list(_LIVE):
            value = getattr(agg, attribute)
            if value is not None:
                yield Observation(value, {"llmcache.backend": agg.backend})

    return observe


REQUEST_DURATION = histograms.Histogram(
    "llmcache.request.duration",
    unit="s",
    description="Time from request to the end of the answer, by cache status.",
    boundaries=[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    attribute_names=["llmcache.provider", "gen_ai.request.model", "llmcache.endpoint", "llmcache.status"],
)
BACKEND_DURATION = histograms.Histogram(
    "llmcache.backend.operation.duration",
    unit="s",
    description="Duration of cache backend operations.",
    boundaries=[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    attribute_names=["llmcache.backend", "llmcache.operation"],
)
HISTOGRAMS = (REQUEST_DURATION, BACKEND_DURATION)
"""Aggregated here, not by the SDK (see `histograms`); otel.py hands them to every metric reader."""
BACKEND_ERRORS = meter.create_counter(
    "llmcache.backend.errors",
    unit="{error}",
    description="Backend operations that failed or timed out (served as misses).",
)
SEMANTIC_SIMILARITY = meter.create_histogram(
    "llmcache.semantic.similarity",
    unit="1",
    description="Similarity of semantic candidates that were served.",
    explicit_bucket_boundaries_advisory=[0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0],
)
meter.create_observable_counter(
    "llmcache.requests", [_observe_requests], unit="{request}", description="Proxied requests by cache status."
)
meter.create_observable_counter(
    "llmcache.tokens.saved",
    [_observe_tokens],
    unit="{token}",
    description="Tokens answered from the cache instead of the provider.",
)
meter.create_observable_counter(
    "llmcache.cost.saved.usd",
    [_observe_money],
    unit="{USD}",
    description="Estimated money not spent, from the configured price table.",
)
meter.create_observable_counter(
    "llmcache.latency.saved",
    [_observe_latency],
    unit="s",
    description="Upstream time the original answers took, less the time the hits took.",
)
meter.create_observable_counter(
    "llmcache.semantic.lookups",
    [_observe_semantic_lookups],
    unit="{lookup}",
    description="Semantic lookups after exact misses, by outcome.",
)
meter.create_observable_counter(
    "llmcache.semantic.rejections",
    [_observe_semantic_rejections],
    unit="{candidate}",
    description="Semantic candidates the verifier refused, by reason.",
)
meter.create_observable_counter(
    "llmcache.semantic.judge.verdicts",
    [_observe_judge_verdicts],
    unit="{verdict}",
    description="LLM judge verdicts (same, different, error) on accepted candidates, from the judge or its cache.",
)
meter.create_observable_counter(
    "llmcache.semantic.judge.tokens",
    [_observe_judge_tokens],
    unit="{token}",
    description="Tokens the LLM judge's calls used.",
)
meter.create_observable_counter(
    "llmcache.semantic.judge.cost.usd",
    [_observe_judge_cost],
    unit="{USD}",
    description="Estimated money spent on LLM judge calls, from the configured price table.",
)
meter.create_observable_gauge(
    "llmcache.entries", [_observe_size("entries")], unit="{entry}", description="Entries the backend holds."
)
meter.create_observable_gauge(
    "llmcache.bytes", [_observe_size("bytes")], unit="By", description="Bytes the backend holds."
)


# An in-process backend answers in about a microsecond: its timings would tell nothing
# about backend health, and the metric has never carried them.
UNTIMED_BACKENDS = frozenset({"memory"})


def backend_timing(backend: str, operation: str, seconds: float) -> None:
    if backend not in UNTIMED_BACKENDS:
        BACKEND_DURATION.record(seconds, (backend, operation))


def backend_error(backend: str, operation: str, error: str) -> None:
    BACKEND_ERRORS.add(1, {"llmcache.backend": backend, "llmcache.operation": operation, "error.type": error})


def price_of(prices: Mapping[str, PriceSettings], model: str) -> PriceSettings | None:
    """The price entry for `model`: exact, else the longest configured prefix (dated model names)."""
    found = prices.get(model)
    if found is not None:
        return found
    best = max((name for name in prices if model.startswith(name)), key=len, default=None)
    return prices[best] if best is not None else None


class PriceBook:
    """`price_of`, remembered per model name: a hit must not scan the price table."""

    __slots__ = ("_known", "_prices")

    def __init__(self, prices: Mapping[str, PriceSettings]) -> None:
        self._prices = prices
        self._known: dict[str, PriceSettings | None] = {}

    def get(self, model: str) -> PriceSettings | None:
        try:
            return self._known[model]
        except KeyError:
            if len(self._known) >= 1024:  # model names come from requests: keep it bounded
                self._known.clear()
            found = self._known[model] = price_of(self._prices, model)
            return found


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

    def __init__(self, request: web.Request, provider: str, kind: str, endpoint: str) -> None:
        self.start = time.perf_counter()
        self.provider = provider
        self.endpoint = endpoint
        self.system = GEN_AI_SYSTEM.get(kind, kind)
        self.model = ""
        self.status = "pass"
        """hit, miss, coalesced, bypass (cacheable but not cached), pass (not cacheable), semantic, error."""
        self.key: str | None = None
        self.saved_usage: Usage | None = None
        """On an answer from the cache: the stored usage, i.e. the tokens not bought again."""
        self.saved_seconds: float | None = None
        """On an answer from the cache: how long the original upstream answer took."""
        self.span: trace.Span | None = None
        self._parent: Context | None = None
        if TRACING.enabled:
            headers = request.headers
            # Extraction finds nothing unless one of the propagators' headers came along.
            parent = propagate.extract(headers) if any(f in headers for f in TRACING.fields) else None
            self.span = tracer.start_span(
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
            self._parent = trace.set_span_in_context(self.span, parent)

    @property
    def context(self) -> Context | None:
        """The context child spans (lookup, upstream call, store) hang under."""
        return self._parent

    def set_model(self, model: str | None) -> None:
        """The requested model; the span gets it in `finish` (one attribute call per span)."""
        self.model = model or ""

    def child(self, name: str, started: float, ended: float, attributes: Mapping[str, Any]) -> None:
        """Record a finished internal step (perf_counter times) as a child span."""
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
        model, status, usage = self.model, self.status, self.saved_usage
        aggregates.requests[(self.provider, model, self.endpoint, status)] += 1
        if usage is not None:
            aggregates.tokens_saved[(self.provider, model, "input")] += usage.input_tokens
            aggregates.tokens_saved[(self.provider, model, "output")] += usage.output_tokens
            price = prices.get(model) if model else None
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
            if model:
                outcome["gen_ai.request.model"] = model
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
                    "model": model,
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

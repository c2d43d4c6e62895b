"""The metrics behind the dashboards, summed cheaply on the hit path.

Only the OpenTelemetry *API* is used here; `otel.py` sets the SDK up once, in the CLI.
Without it every call below is a no-op.

Counters (requests, tokens and money saved) are plain integer and float sums per
attribute tuple in an `Aggregates`, read by observable instruments when a reader
collects, so a request pays a dict update instead of an SDK `add` per counter. The two
duration histograms are the sidecar's own (see `histograms`), handed to every reader by
`export`. Metric names are the dashboards' contract: never renamed here.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from llmcache_sidecar.telemetry import histograms
from llmcache_sidecar.telemetry.labels import MAX_HOSTS, MAX_MODELS, LabelCap

SCOPE_NAME = "llmcache_sidecar"
meter = metrics.get_meter(SCOPE_NAME)


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
    backend_timeout: float | None = None
    """The per-call deadline of the remote backend (seconds); None for an in-process one."""
    semantic: Any = None
    """The semantic cache's counters (lookups by outcome, rejections by reason), when it runs."""
    models: LabelCap = field(default_factory=lambda: LabelCap(MAX_MODELS))
    """The model label's bound (see `labels`): the request body names the model."""
    hosts: LabelCap = field(default_factory=lambda: LabelCap(MAX_HOSTS))
    """The provider label's bound for transparent pass-through, where the app names the host."""


HIT_STATUSES = frozenset({"hit", "coalesced", "semantic"})
"""The statuses of answers from the cache (the dashboard's hit rate counts these)."""


def savings_totals(aggregates: Aggregates) -> tuple[int, int, int, float]:
    """Since start: cacheable requests (all but pass-throughs), hits, tokens saved, money saved."""
    requests = hits = 0
    for (_, _, _, status), count in aggregates.requests.items():
        if status != "pass":
            requests += count
            if status in HIT_STATUSES:
                hits += count
    return requests, hits, sum(aggregates.tokens_saved.values()), sum(aggregates.cost_saved.values())


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
"""Aggregated here, not by the SDK (see `histograms`); `export` hands them to every metric reader."""
BACKEND_ERRORS = meter.create_counter(
    "llmcache.backend.errors",
    unit="{error}",
    description="Backend operations that failed or timed out (served as misses).",
)
STALE_SERVED = meter.create_counter(
    "llmcache.stale.served",
    unit="{response}",
    description="Answers given from an entry past its ttl: the provider failed (stale-if-error), or max-stale.",
)
BACKEND_FAILOPEN = meter.create_counter(
    "llmcache.backend.failopen",
    unit="{operation}",
    description="Backend operations answered without the backend (a lookup as a miss, a write dropped), by reason:"
    " error, timeout, skipped (the circuit breaker is open), unavailable (the backend could not be built).",
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
meter.create_observable_gauge(
    "llmcache.backend.timeout",
    [_observe_size("backend_timeout")],
    unit="s",
    description="Longest time one call to the remote backend may take before it is answered without it.",
)


# An in-process backend answers in about a microsecond: its timings would tell nothing
# about backend health, and the metric has never carried them.
UNTIMED_BACKENDS = frozenset({"memory"})


def is_timed(backend: str) -> bool:
    """Whether `backend_timing` records this backend's operations (remote backends only)."""
    return backend not in UNTIMED_BACKENDS


def backend_timing(backend: str, operation: str, seconds: float) -> None:
    if backend not in UNTIMED_BACKENDS:
        BACKEND_DURATION.record(seconds, (backend, operation))


SKIPPED = "skipped"
"""The reason `backend_failed` hears while the fail-open circuit breaker keeps calls from the backend."""
UNAVAILABLE = "unavailable"
"""The reason for a request passed through because the backend could not be built."""


def backend_failed(backend: str, operation: str, reason: str) -> None:
    """A backend call answered without the backend: `reason` is an exception's type name, SKIPPED or UNAVAILABLE."""
    if reason in (SKIPPED, UNAVAILABLE):
        kind = reason
    else:
        BACKEND_ERRORS.add(1, {"llmcache.backend": backend, "llmcache.operation": operation, "error.type": reason})
        kind = "timeout" if reason == "TimeoutError" else "error"
    BACKEND_FAILOPEN.add(1, {"llmcache.backend": backend, "llmcache.operation": operation, "llmcache.reason": kind})


def stale_served(provider: str, reason: str) -> None:
    """A stale entry answered: `reason` is 5xx, 429, timeout, unreachable (stale-if-error) or max-stale."""
    STALE_SERVED.add(1, {"llmcache.provider": provider, "llmcache.reason": reason})

"""The sidecar's own histograms (see `histograms`) handed to OpenTelemetry metric readers.

`OwnHistograms` is a mixin for any SDK `MetricReader` (Prometheus, periodic OTLP, in
memory): at each collection it adds one histogram metric per `metrics.HISTOGRAMS`
entry to what the SDK collected, under the sidecar's instrumentation scope, in the
reader's preferred temporality. Every reader reads the same totals, so a Prometheus
scrape and an OTLP collector see the same numbers. It overrides `_receive_metrics`,
the hook the SDK documents for reader subclasses. The SDK calls it only when its own
instruments have something to report; in the sidecar they always do once a duration
was recorded (every request is also counted in `llmcache.requests`).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from llmcache_sidecar.telemetry import histograms, metrics

SCOPE = InstrumentationScope(metrics.SCOPE_NAME)


class _DeltaState:
    """What a delta reader reported last, per histogram: totals and the interval tracker."""

    def __init__(self, histogram: histograms.Histogram) -> None:
        self.previous: dict[tuple[str, ...], histograms.Point] = {}
        self.since_ns = histogram.start_ns
        self.interval = histogram.open_interval()


class OwnHistograms(MetricReader):
    """Mixin: put it before the SDK reader class, e.g. `class R(OwnHistograms, InMemoryMetricReader)`."""

    def __init__(self, *args: Any, resource: Resource | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_resource = resource if resource is not None else Resource.create()
        self._own_delta: dict[str, _DeltaState] | None = None
        if self._own_temporality() == AggregationTemporality.DELTA:
            self._own_delta = {h.name: _DeltaState(h) for h in metrics.HISTOGRAMS}

    def _own_temporality(self) -> AggregationTemporality:
        for kind, temporality in self._instrument_class_temporality.items():
            if issubclass(kind, SdkHistogram):
                return temporality
        return AggregationTemporality.CUMULATIVE

    def _receive_metrics(self, metrics_data: MetricsData | None, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        own = [m for m in (self._own_metric(h) for h in metrics.HISTOGRAMS) if m is not None]
        merged = _merged(metrics_data, own, self._own_resource)
        if merged is None:
            return
        # The next class in the MRO is the concrete SDK reader (the mixin is listed first).
        receive: Any = super()._receive_metrics  # type: ignore[safe-super]
        receive(merged, timeout_millis, **kwargs)

    def _own_metric(self, histogram: histograms.Histogram) -> Metric | None:
        now = time.time_ns()
        bounds = histogram.boundaries
        points = histogram.snapshot()
        if self._own_delta is None:
            data = [_point(p, histogram.start_ns, now, bounds) for p in points]
            temporality = AggregationTemporality.CUMULATIVE
        else:
            data = _deltas(self._own_delta[histogram.name], histogram, points, now)
            temporality = AggregationTemporality.DELTA
        if not data:
            return None
        return Metric(
            name=histogram.name,
            description=histogram.description,
            unit=histogram.unit,
            data=Histogram(data_points=data, aggregation_temporality=temporality),
        )


def _point(p: histograms.Point, start: int, now: int, bounds: tuple[float, ...]) -> HistogramDataPoint:
    return HistogramDataPoint(
        attributes=p.attributes,
        start_time_unix_nano=start,
        time_unix_nano=now,
        count=p.count,
        sum=p.sum,
        bucket_counts=list(p.bucket_counts),
        explicit_bounds=list(bounds),
        min=p.min,
        max=p.max,
    )


def _deltas(
    state: _DeltaState, histogram: histograms.Histogram, points: list[histograms.Point], now: int
) -> list[HistogramDataPoint]:
    """Points for what changed since the last collection (none for an attribute set that did not)."""
    extremes = histogram.take_interval(state.interval)
    data = []
    for p in points:
        before = state.previous.get(p.labels)
        count = p.count - (before.count if before is not None else 0)
        low_high = extremes.get(p.labels)
        if count <= 0 or low_high is None:
            continue
        buckets = (
            p.bucket_counts
            if before is None
            else [a - b for a, b in zip(p.bucket_counts, before.bucket_counts, strict=True)]
        )
        total = p.sum - (before.sum if before is not None else 0.0)
        data.append(
            HistogramDataPoint(
                attributes=p.attributes,
                start_time_unix_nano=state.since_ns,
                time_unix_nano=now,
                count=count,
                sum=total,
                bucket_counts=list(buckets),
                explicit_bounds=list(histogram.boundaries),
                min=low_high[0],
                max=low_high[1],
            )
        )
    state.previous = {p.labels: p for p in points}
    state.since_ns = now
    return data


def _merged(metrics_data: MetricsData | None, own: list[Metric], resource: Resource) -> MetricsData | None:
    """`metrics_data` with `own` added under the sidecar's scope (made when the SDK had nothing)."""
    if not own:
        return metrics_data
    if metrics_data is None or not metrics_data.resource_metrics:
        scope = ScopeMetrics(scope=SCOPE, metrics=own, schema_url="")
        return MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")])
    first, *rest = metrics_data.resource_metrics
    scopes = list(first.scope_metrics)
    for i, scope_metrics in enumerate(scopes):
        if scope_metrics.scope.name == SCOPE.name:
            scopes[i] = ScopeMetrics(
                scope=scope_metrics.scope,
                metrics=[*scope_metrics.metrics, *own],
                schema_url=scope_metrics.schema_url,
            )
            break
    else:
        scopes.append(ScopeMetrics(scope=SCOPE, metrics=own, schema_url=""))
    merged = ResourceMetrics(resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url)
    return MetricsData(resource_metrics=[merged, *rest])

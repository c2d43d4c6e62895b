"""The sidecar's own histograms read like the OpenTelemetry SDK's, in every reader and temporality."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, HistogramDataPoint, InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmcache_sidecar import telemetry
from llmcache_sidecar.telemetry import histograms
from llmcache_sidecar.telemetry.export import OwnHistograms
from llmcache_sidecar.telemetry.otel import PrometheusReader

BOUNDS = [0.001, 0.01, 0.1, 1.0]
# Boundary values included: OpenTelemetry counts a value equal to a boundary in the bucket below it.
VALUES = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 0.02]


class InMemoryReader(OwnHistograms, InMemoryMetricReader):
    pass


def points_of(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    if data is None:  # nothing to report
        return []
    found = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]
    return found  # type: ignore[return-value]


@pytest.fixture
def provider_readers() -> Iterator[tuple[InMemoryReader, InMemoryReader, CollectorRegistry]]:
    """A meter provider of the test's own with a cumulative, a delta and a Prometheus reader."""
    cumulative = InMemoryReader()
    delta = InMemoryReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[cumulative, delta, PrometheusReader(registry=registry)])
    # As in the sidecar, where every request is counted too, the SDK has something to report.
    provider.get_meter("test").create_up_down_counter("requests").add(1)
    yield cumulative, delta, registry
    provider.shutdown()


def test_values_land_in_the_buckets_the_sdk_histogram_would_put_them_in() -> None:
    sdk_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[sdk_reader])
    try:
        sdk = provider.get_meter("test").create_histogram("sdk", explicit_bucket_boundaries_advisory=BOUNDS)
        own = histograms.Histogram("own", unit="s", description="", boundaries=BOUNDS, attribute_names=["a"])
        for value in VALUES:
            sdk.record(value, {"a": "x"})
            own.record(value, ("x",))
        (expected,) = points_of(sdk_reader, "sdk")
    finally:
        provider.shutdown()
    (point,) = own.snapshot()
    assert point.attributes == {"a": "x"}
    assert (point.count, point.min, point.max) == (expected.count, expected.min, expected.max)
    assert point.sum == pytest.approx(expected.sum)
    assert list(point.bucket_counts) == list(expected.bucket_counts)


def test_prometheus_and_the_otel_readers_show_the_same_request_durations(provider_readers) -> None:
    cumulative, _, registry = provider_readers
    model = "model-of-test-same-durations"  # a label set no other test records
    for value in VALUES:
        telemetry.REQUEST_DURATION.record(value, ("openai", model, "chat/completions", "hit"))

    (point,) = [
        p for p in points_of(cumulative, "llmcache.request.duration") if p.attributes["gen_ai.request.model"] == model
    ]
    assert point.attributes == {
        "llmcache.provider": "openai",
        "gen_ai.request.model": model,
        "llmcache.endpoint": "chat/completions",
        "llmcache.status": "hit",
    }
    assert point.count == len(VALUES)
    scraped = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.labels.get("gen_ai_request_model") == model
    }
    assert scraped[("llmcache_request_duration_seconds_count", None)] == point.count
    assert scraped[("llmcache_request_duration_seconds_sum", None)] == pytest.approx(point.sum)
    running = 0
    for bound, count in zip([*point.explicit_bounds, float("inf")], point.bucket_counts, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else str(float(bound))
        assert scraped[("llmcache_request_duration_seconds_bucket", le)] == running


def test_a_delta_reader_gets_only_what_changed_since_its_last_collection(provider_readers) -> None:
    _, delta, _ = provider_readers
    labels = ("redis", "get-of-test-delta")

    def mine() -> list[HistogramDataPoint]:
        points = points_of(delta, "llmcache.backend.operation.duration")
        return [p for p in points if p.attributes["llmcache.operation"] == labels[1]]

    telemetry.BACKEND_DURATION.record(0.002, labels)
    telemetry.BACKEND_DURATION.record(0.004, labels)
    (first,) = mine()
    assert (first.count, first.min, first.max) == (2, 0.002, 0.004)
    assert first.sum == pytest.approx(0.006)

    telemetry.BACKEND_DURATION.record(0.0001, labels)
    (second,) = mine()
    assert (second.count, second.min, second.max) == (1, 0.0001, 0.0001)
    assert second.sum == pytest.approx(0.0001)
    assert sum(second.bucket_counts) == 1
    assert second.start_time_unix_nano == first.time_unix_nano

    assert mine() == []  # nothing new: no point, as the SDK does for deltas


def test_attribute_sets_beyond_the_limit_are_counted_in_one_overflow_point(monkeypatch) -> None:
    monkeypatch.setattr(histograms, "CARDINALITY_LIMIT", 3)
    h = histograms.Histogram("h", unit="s", description="", boundaries=BOUNDS, attribute_names=["model"])
    for model in ["a", "b", "c", "d", "a"]:
        h.record(0.5, (model,))
    counts = {tuple(sorted(p.attributes.items())): p.count for p in h.snapshot()}
    assert counts == {(("model", "a"),): 2, (("model", "b"),): 1, (((histograms.OVERFLOW, True),)): 2}


def test_a_record_with_the_wrong_number_of_attribute_values_is_refused() -> None:
    h = histograms.Histogram("h", unit="s", description="", boundaries=BOUNDS, attribute_names=["a", "b"])
    with pytest.raises(ValueError, match="2 attribute values expected"):
        h.record(0.5, ("only-one",))

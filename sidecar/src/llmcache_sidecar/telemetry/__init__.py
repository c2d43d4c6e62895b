"""What the sidecar reports: metrics, spans, logs, and the OpenTelemetry SDK set up once.

The data path uses the names re-exported here (the API side: `RequestTrace`, the
`Aggregates` sums, the backend timings, the price book). `otel` (the SDK, in the CLI
only), `export` (the own histograms for metric readers) and `logs` are imported by name.
"""

from llmcache_sidecar.telemetry.metrics import (
    BACKEND_DURATION,
    HISTOGRAMS,
    REQUEST_DURATION,
    SCOPE_NAME,
    SEMANTIC_SIMILARITY,
    SKIPPED,
    UNAVAILABLE,
    Aggregates,
    backend_failed,
    backend_timing,
    is_timed,
    register,
    savings_totals,
    stale_served,
    unregister,
)
from llmcache_sidecar.telemetry.pricing import PriceBook, price_of
from llmcache_sidecar.telemetry.tracing import TRACING, RequestTrace, refresh_tracing_flag, root_ratio

__all__ = [
    "BACKEND_DURATION",
    "HISTOGRAMS",
    "REQUEST_DURATION",
    "SCOPE_NAME",
    "SEMANTIC_SIMILARITY",
    "SKIPPED",
    "TRACING",
    "UNAVAILABLE",
    "Aggregates",
    "PriceBook",
    "RequestTrace",
    "backend_failed",
    "backend_timing",
    "is_timed",
    "price_of",
    "refresh_tracing_flag",
    "register",
    "root_ratio",
    "savings_totals",
    "stale_served",
    "unregister",
]

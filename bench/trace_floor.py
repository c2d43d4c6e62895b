"""The OpenTelemetry SDK's own cost of tracing one cache hit: the floor a traced hit cannot go below.

Two measurements, for `make bench`:

- `serve`: a minimal aiohttp server that answers every POST with the same 1 KiB JSON
  body (a hit with no cache behind it) and, with `--traces`, makes with the SDK alone
  the spans a traced memory hit makes in the sidecar (the server span with its
  attributes, set at the start and at the end, and the lookup child with explicit
  times), exported as the sidecar exports them (BatchSpanProcessor, OTLP/HTTP). Loaded
  by wrk beside the sidecars, its CPU per request with traces less without is the SDK's
  cost in a running server under the same load: the floor the traced sidecar is held to.
- `loop` (the figure docs/benchmarks.md first recorded): the same spans made in a
  tight loop, then encoded as the OTLP exporter does, CPU per hit; no server, no
  batch processor, no HTTP. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import orjson
from aiohttp import web
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON

BATCH = 512
KEY = "llmc:1:default:e0:" + "ab" * 8 + ":" + "cd" * 32
START_ATTRIBUTES = {
    "http.request.method": "POST",
    "url.path": "/openai/v1/chat/completions",
    "gen_ai.system": "openai",
    "gen_ai.operation.name": "chat",
    "llmcache.provider": "openai",
}
END_ATTRIBUTES = {
    "llmcache.status": "hit",
    "http.response.status_code": 200,
    "gen_ai.request.model": "gpt-4o-mini",
    "llmcache.key": KEY,
    "gen_ai.usage.input_tokens": 260,
    "gen_ai.usage.output_tokens": 12,
}
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-floor",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 800}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 260, "completion_tokens": 12, "total_tokens": 272},
    }
)


def traced_hit(tracer: trace.Tracer) -> None:
    """The spans of one traced memory hit, as the sidecar makes them."""
    server = tracer.start_span(
        "POST /openai/chat/completions", kind=trace.SpanKind.SERVER, attributes=dict(START_ATTRIBUTES)
    )
    context = trace.set_span_in_context(server)
    now = time.time_ns()
    lookup = tracer.start_span(
        "llmcache.lookup",
        context=context,
        start_time=now,
        attributes={"llmcache.backend": "memory", "llmcache.hit": True},
    )
    lookup.end(end_time=now + 2000)
    server.set_attributes(dict(END_ATTRIBUTES))
    server.end()


# --- serve ---------------------------------------------------------------------------------


def serve(port: int, otlp: str | None) -> None:
    tracer: trace.Tracer | None = None
    if otlp is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "floor"}), sampler=DEFAULT_ON)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp.rstrip("/") + "/v1/traces")))
        tracer = provider.get_tracer("llmcache_sidecar")

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if tracer is not None:
            traced_hit(tracer)
        return web.Response(body=ANSWER, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{path:.*}", answer)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- loop ----------------------------------------------------------------------------------


class Keep(SpanProcessor):
    """Keeps ended spans in a list: the cheapest processor there is."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def traced_hits(count: int) -> tuple[float, Sequence[ReadableSpan]]:
    """CPU seconds to make and end the spans of `count` traced hits, and those spans."""
    keep = Keep()
    provider = TracerProvider(sampler=DEFAULT_ON)
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("llmcache_sidecar")
    started = time.process_time()
    for _ in range(count):
        traced_hit(tracer)
    return time.process_time() - started, keep.spans


def encoding(spans: Sequence[ReadableSpan]) -> float:
    """CPU seconds to encode `spans` for OTLP/HTTP, in the batch processor's batch size."""
    started = time.process_time()
    for i in range(0, len(spans), BATCH):
        encode_spans(spans[i : i + BATCH]).SerializePartialToString()
    return time.process_time() - started


def loop(hits: int, repeat: int) -> dict[str, float]:
    spans_us, encode_us = [], []
    for _ in range(repeat):
        made, spans = traced_hits(hits)
        spans_us.append(made / hits * 1e6)
        encode_us.append(encoding(spans) / hits * 1e6)
    return {"spans_us": statistics.median(spans_us), "encode_us": statistics.median(encode_us)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("serve", help="the minimal server, with or without the SDK's spans")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--traces", metavar="OTLP_URL", help="make and export a hit's spans to this endpoint")
    loops = sub.add_parser("loop", help="the spans of a hit in a tight loop, then their encoding")
    loops.add_argument("--hits", type=int, default=20_000)
    loops.add_argument("--repeat", type=int, default=5, help="runs; the median is reported")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.traces)
    else:
        print(json.dumps(loop(args.hits, args.repeat)))


if __name__ == "__main__":
    main()

"""The admin port: health, readiness, stats, flush, and one key at a time.

It listens on 127.0.0.1 by default: it can flush the cache and read stored answers,
so it must not be reachable from outside the pod.
"""

from __future__ import annotations

import base64
import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from llmcache_sidecar import __version__
from llmcache_sidecar.backends import BackendError
from llmcache_sidecar.runtime import STATE

METRICS = web.AppKey("metrics_registry", CollectorRegistry)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus_metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/cache/stats", stats)
    app.router.add_post("/cache/flush", flush)
    app.router.add_get("/cache/keys/{key:.+}", get_key)
    app.router.add_delete("/cache/keys/{key:.+}", delete_key)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok", "version": __version__})


async def prometheus_metrics(request: web.Request) -> web.Response:
    """The OpenTelemetry instruments in the Prometheus text format (what a scrape reads)."""
    registry = request.app.get(METRICS)
    if registry is None:
        return _json({"error": "metrics are off (telemetry.metrics: false)"}, 404)
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[STATE].runtime
    try:
        await runtime.backend.ping()
    except (BackendError, TimeoutError, OSError) as exc:
        return _json(
            {"status": "unavailable", "backend": runtime.backend.name, "error": str(exc) or type(exc).__name__}, 503
        )
    return _json({"status": "ready", "backend": runtime.backend.name})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    runtime = state.runtime
    counters = state.counters
    backend_stats = await runtime.backend.stats()
    lookups = counters.hits + counters.coalesced + counters.misses
    return _json(
        {
            "namespace": runtime.settings.namespace,
            "caching": runtime.caching,
            "hits": counters.hits,
            "coalesced": counters.coalesced,
            "misses": counters.misses,
            "bypasses": counters.bypasses,
            "stored": counters.stored,
            "upstreamErrors": counters.upstream_errors,
            "hitRate": round((counters.hits + counters.coalesced) / lookups, 4) if lookups else None,
            "inFlight": len(state.coalescer),
            "backend": {
                "type": runtime.settings.backend.type,
                "entries": backend_stats.entries,
                "bytes": backend_stats.bytes,
                "errors": getattr(runtime.backend, "errors", 0),
            },
        }
    )


async def flush(request: web.Request) -> web.Response:
    """Empty this sidecar's namespace by moving its epoch on (O(1) on every backend)."""
    state = request.app[STATE]
    runtime = state.runtime
    namespace = runtime.settings.namespace
    try:
        epoch = await runtime.backend.bump_epoch(namespace)
    except (BackendError, TimeoutError, OSError) as exc:
        return _json({"error": f"flush failed: the backend did not answer ({exc or type(exc).__name__})"}, 503)
    state.epoch = (epoch, time.monotonic())
    return _json({"namespace": namespace, "epoch": epoch, "flushed": True})


def _key_or_400(request: web.Request) -> str:
    key = request.match_info["key"]
    if not key.startswith("llmc:"):
        raise web.HTTPBadRequest(
            text=orjson.dumps(
                {"error": "not an llmcache key: use the value of an answer's x-llmcache-key header"}
            ).decode(),
            content_type="application/json",
        )
    return key


async def get_key(request: web.Request) -> web.Response:
    key = _key_or_400(request)
    entry = await request.app[STATE].runtime.backend.get(key)
    if entry is None:
        return _json({"error": "no such key (never stored, expired, or flushed)"}, 404)
    try:
        body: object = orjson.loads(entry.body) if not entry.is_stream else entry.body.decode("utf-8")
        encoding = "json" if not entry.is_stream else "text"
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        body, encoding = base64.b64encode(entry.body).decode(), "base64"
    return _json(
        {
            "key": key,
            "status": entry.status,
            "createdAt": entry.created_at,
            "age": round(time.time() - entry.created_at, 3),
            "stream": entry.is_stream,
            "model": entry.model,
            "usage": {"inputTokens": entry.usage.input_tokens, "outputTokens": entry.usage.output_tokens},
            "size": entry.size,
            "headers": entry.headers,
            "bodyEncoding": encoding,
            "body": body,
        }
    )


async def delete_key(request: web.Request) -> web.Response:
    key = _key_or_400(request)
    deleted = await request.app[STATE].runtime.backend.delete(key)
    return _json({"key": key, "deleted": deleted}, 200 if deleted else 404)

"""The admin port: health, readiness, stats, flush, one key at a time, export and import.

It listens on 127.0.0.1 by default: it can flush the cache and read stored answers,
so it must not be reachable from outside the pod. Whoever reaches it acts on this
sidecar's namespace only: a flush moves this namespace's epoch, and the key operations
take entry keys of this namespace and its sub-namespaces, never another namespace's
entries (on a shared backend) nor the epoch, lease or semantic keys.
"""

from __future__ import annotations

import base64
import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from llmcache_sidecar import __version__
from llmcache_sidecar.backends import BackendError, ListingUnsupported
from llmcache_sidecar.config import ConfigError, parse_duration
from llmcache_sidecar.proxy import STATE, State, recording
from llmcache_sidecar.wire import keys

METRICS = web.AppKey("metrics_registry", CollectorRegistry)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus_metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/cache/stats", stats)
    app.router.add_post("/cache/flush", flush)
    app.router.add_get("/cache/keys/{key:.+}", get_key)
    app.router.add_delete("/cache/keys/{key:.+}", delete_key)
    app.router.add_get("/cache/export", export_entries)
    app.router.add_post("/cache/import", import_entries)


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
    """Ready: a config file was loaded, the backend answers, every configured part was built (else 503 and why)."""
    runtime = request.app[STATE].runtime
    if not runtime.caching:
        return _json(
            {"status": "unavailable", "backend": runtime.backend.name, "error": "no config file: caching is off"}, 503
        )
    try:
        await runtime.backend.ping()
    except (BackendError, TimeoutError, OSError) as exc:
        return _json(
            {"status": "unavailable", "backend": runtime.backend.name, "error": str(exc) or type(exc).__name__}, 503
        )
    if runtime.semantic_error is not None:
        return _json(
            {"status": "unavailable", "backend": runtime.backend.name, "error": f"semantic: {runtime.semantic_error}"},
            503,
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
            "stale": counters.stale,
            "hitRate": round((counters.hits + counters.coalesced) / lookups, 4) if lookups else None,
            "inFlight": len(state.coalescer),
            "backend": {
                "type": runtime.settings.backend.type,
                "entries": backend_stats.entries,
                "bytes": backend_stats.bytes,
                "errors": getattr(runtime.backend, "errors", 0),
                "unavailable": runtime.backend_error,
            },
            "semantic": await _semantic_stats(state),
        }
    )


async def _semantic_stats(state: State) -> dict[str, object]:
    """The semantic section of /cache/stats: counters since start, rejections by reason."""
    cache = state.runtime.semantic
    c = state.semantic
    return {
        "enabled": cache is not None,
        "unavailable": state.runtime.semantic_error,
        "mode": cache.settings.mode if cache is not None else None,
        "store": cache.index.name if cache is not None else None,
        "prompts": await cache.index.count() if cache is not None else None,
        "lookups": c.lookups,
        "hits": c.hits,
        "shadowHits": c.shadow_hits,
        "misses": c.misses,
        "skipped": c.skipped,
        "stale": c.stale,
        "indexed": c.indexed,
        "embedErrors": c.embed_errors,
        "indexErrors": c.index_errors,
        "embeddingCalls": cache.embedder.calls if cache is not None else 0,
        "embeddingCacheHits": cache.embedder.cached if cache is not None else 0,
        "rejected": dict(sorted(c.rejected.items())),
        "judgeErrors": c.judge_errors,
        "judge": _judge_stats(state),
    }


def _judge_stats(state: State) -> dict[str, object] | None:
    """Verdicts by source, tokens and estimated spend of the LLM judge (None when it is off)."""
    cache = state.runtime.semantic
    if cache is None or cache.judge is None:
        return None
    j = state.semantic.judge
    return {
        "model": cache.judge.settings.model,
        "calls": sum(n for (_, source), n in j.verdicts.items() if source == "judge"),
        "same": j.verdicts[("same", "judge")],
        "different": j.verdicts[("different", "judge")],
        "errors": j.verdicts[("error", "judge")],
        "cachedVerdicts": sum(n for (_, source), n in j.verdicts.items() if source == "cache"),
        "inputTokens": sum(n for (_, kind), n in j.tokens.items() if kind == "input"),
        "outputTokens": sum(n for (_, kind), n in j.tokens.items() if kind == "output"),
        "costUsd": round(sum(j.cost_usd.values()), 9),
    }


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


def _own_key(request: web.Request) -> str:
    """The entry key in the path, if it is one of this sidecar's namespace; else a 400 or a 403."""
    key = request.match_info["key"]
    namespace = keys.entry_namespace(key)
    if namespace is None:
        raise web.HTTPBadRequest(
            text=orjson.dumps(
                {
                    "error": "not an llmcache entry key: use the value of an answer's x-llmcache-key header"
                    " (epoch, lease and semantic index keys are not entries)"
                }
            ).decode(),
            content_type="application/json",
        )
    own = request.app[STATE].runtime.settings.namespace
    if not keys.within(namespace, own):
        raise web.HTTPForbidden(
            text=orjson.dumps(
                {"error": f"a key of namespace {namespace!r}: this admin port acts on {own!r} and its sub-namespaces"}
            ).decode(),
            content_type="application/json",
        )
    return key


async def get_key(request: web.Request) -> web.Response:
    key = _own_key(request)
    entry = await request.app[STATE].runtime.backend.get(key)
    if entry is None:
        return _json({"error": "no such key (never stored, expired, or flushed)"}, 404)
    try:
        body: object = orjson.loads(entry.body) if not entry.is_stream else entry.body.decode("utf-8")
        encoding = "json" if not entry.is_stream else "text"
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        body, encoding = base64.b64encode(entry.body).decode(), "base64"
    now = time.time()
    return _json(
        {
            "key": key,
            "status": entry.status,
            "createdAt": entry.created_at,
            "age": round(now - entry.created_at, 3),
            "ttl": entry.ttl,
            "stale": entry.staleness(now) > 0,
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
    key = _own_key(request)
    deleted = await request.app[STATE].runtime.backend.delete(key)
    return _json({"key": key, "deleted": deleted}, 200 if deleted else 404)


EXPORT_LIMIT = 1_000_000
"""The most entries one export lists (`?limit=` lowers it)."""


async def export_entries(request: web.Request) -> web.StreamResponse:
    """This sidecar's namespace (and its sub-namespaces) as JSON lines, one entry a line (docs/policy.md)."""
    state = request.app[STATE]
    if not state.runtime.settings.entry_transfer:
        return _transfer_off("export")
    try:
        limit = min(int(request.query.get("limit", EXPORT_LIMIT)), EXPORT_LIMIT)
    except ValueError:
        return _json({"error": "limit: a number of entries"}, 400)
    try:
        lines = await recording.export(state, limit)
    except ListingUnsupported as exc:
        return _json({"error": f"export: {exc}"}, 501)
    except (BackendError, TimeoutError, OSError) as exc:
        return _json({"error": f"export failed: the backend did not answer ({exc or type(exc).__name__})"}, 503)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    async for line in lines:
        await response.write(line)
    await response.write_eof()
    return response


async def import_entries(request: web.Request) -> web.Response:
    """Store exported JSON lines in this sidecar's namespace, each for `recordingTtl` (or `?ttl=`)."""
    state = request.app[STATE]
    if not state.runtime.settings.entry_transfer:
        return _transfer_off("import")
    raw: str | float = request.query.get("ttl") or state.runtime.settings.recording_ttl
    try:
        ttl = parse_duration(float(raw) if isinstance(raw, str) and raw.isdigit() else raw, "ttl")
    except ConfigError as exc:
        return _json({"error": str(exc)}, 400)
    try:
        loaded = await recording.load(state, recording.split_lines(request.content.iter_chunked(2**16)), ttl)
    except ValueError as exc:  # a line over the size limit
        return _json({"error": f"import stopped: {exc}"}, 400)
    except (BackendError, TimeoutError, OSError) as exc:
        return _json({"error": f"import failed: the backend did not answer ({exc or type(exc).__name__})"}, 503)
    return _json(
        {
            "namespace": state.runtime.settings.namespace,
            "imported": loaded.imported,
            "failed": loaded.failed,
            "errors": loaded.errors,
            "ttl": ttl,
        },
        200 if not loaded.failed else 422,
    )


def _transfer_off(what: str) -> web.Response:
    """Export and import cross tenants: off unless the configuration turns them on (docs/security.md)."""
    return _json(
        {
            "error": f"{what} is off: it reads and writes every tenant's entries, for anyone who reaches this port;"
            " set entryTransfer: true where all callers of this sidecar may see each other's answers"
        },
        403,
    )

"""Record and replay: the answers a replay cannot give, fingerprints, and a namespace as JSON lines.

`recording: record` stores every answer it forwards (for `recordingTtl`) with the
fingerprint of its request (`stamp`). `recording: replay` answers only from the cache:
a miss, or anything that would have gone upstream, is a `504` that names the key and,
when this sidecar recorded or imported requests in the same scope, what the nearest one
differs in (`replay_miss`). The answer carries `x-should-retry: false`, so the official
SDKs raise at once instead of retrying a miss that will not go away.

`export` and `load` move a namespace's entries in and out through the admin port as
JSON lines, one entry a line: the key's tenant and digest, and the entry (body as text
when it is UTF-8, as it is for JSON and SSE answers). Only the sidecar's own namespace
(and its sub-namespaces) is read or written, under the current flush epoch; an
imported entry lives for the sidecar's `recordingTtl` (or `?ttl=`), not for what it
had left where it was recorded.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from llmcache_sidecar.backends import BackendError
from llmcache_sidecar.entry import CachedResponse, Usage
from llmcache_sidecar.proxy import upstream
from llmcache_sidecar.proxy.call import Call
from llmcache_sidecar.proxy.runtime import State
from llmcache_sidecar.wire import cache_status, keys
from llmcache_sidecar.wire.recording import Fingerprint, fingerprint

logger = logging.getLogger(__name__)

LINE_FORMAT = 1
"""Version of an exported line; `load` refuses others."""
MAX_LINE_BYTES = 64 * 2**20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^(?:shared|anon|[0-9a-f]{32})$")  # as `wire.keys` makes them
_SUBNAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


# --- replay --------------------------------------------------------------------------------


def not_replayable(what: str) -> web.Response:
    """Replay mode, for a request that would have to go upstream to be answered."""
    return _gateway_timeout(
        "replay_refused", f"llmcache replay mode: {what}; nothing is sent upstream while replaying", {}
    )


def replay_miss(call: Call, parsed: dict[str, Any] | None) -> web.Response:
    """Replay mode, for a cacheable request with no recorded answer: the key, and the nearest recorded request."""
    call.tel.status = "miss"
    call.state.counters.misses += 1
    message = f"llmcache replay mode: no recorded answer for this request (key {call.key})"
    extra: dict[str, Any] = {"key": call.key}
    if call.ctl.key is None:  # a caller-chosen key has no request parts to compare
        own = request_fingerprint(call, orjson.loads(call.body) if parsed is None else parsed)
        nearest = call.state.recorded.nearest(call.key, own)
        if nearest is not None:
            extra["nearest"] = {"key": nearest.key, "differs": nearest.differs}
            message += f"; the nearest recorded request differs in {', '.join(nearest.differs) or 'nothing'}"
        else:
            message += "; no recorded request of the same scope (namespace, tenant) is known to this sidecar"
    response = _gateway_timeout("replay_miss", message, extra)
    response.headers["x-llmcache-key"] = call.key
    return response


def _gateway_timeout(code: str, message: str, extra: dict[str, Any]) -> web.Response:
    body = orjson.dumps({"error": {"message": message, "type": "llmcache_error", "code": code, **extra}})
    headers = {"Cache-Status": cache_status.not_forwarded(detail=code.replace("_", "-")), "x-should-retry": "false"}
    return web.Response(status=504, body=body, content_type="application/json", headers=headers)


# --- record ---------------------------------------------------------------------------------


def stamp(call: Call, entry: CachedResponse) -> CachedResponse:
    """Record mode: `entry` with its request's fingerprint, remembered for later replay misses."""
    try:
        parsed = orjson.loads(call.body)
    except orjson.JSONDecodeError:
        return entry
    if call.ctl.key is not None or not isinstance(parsed, dict):
        return entry
    request = request_fingerprint(call, parsed)
    call.state.recorded.add(call.key, request)
    return replace(entry, request=request)


def request_fingerprint(call: Call, parsed: dict[str, Any]) -> Fingerprint:
    """The fingerprint of the parts that made `call`'s key (the inputs of handler's request digest)."""
    request, route = call.request, call.route
    query = sorted((k, v) for k, v in request.query.items() if k not in route.kind.credential_query)
    headers = [(h, request.headers[h]) for h in route.kind.key_headers if h in request.headers]
    return fingerprint(
        provider=route.name,
        path=call.tail,
        query=query,
        headers=headers,
        fields=keys.key_fields(parsed, call.rt.settings.key_params),
    )


# --- export and import ----------------------------------------------------------------------


async def current_epoch(state: State) -> str:
    """The epoch part of this namespace's keys now; `BackendError` when the backend cannot tell."""
    rt = state.runtime
    value = await rt.backend.get_epoch(rt.settings.namespace)
    if value < 0:
        raise BackendError("the backend did not say the namespace's flush epoch")
    return keys.epoch_tag(value, rt.flush_suffix)


async def export(state: State, limit: int) -> AsyncIterator[bytes]:
    """This namespace's live entries (sub-namespaces included) as JSON lines; raises before the first line."""
    rt = state.runtime
    namespace = rt.settings.namespace
    epoch = await current_epoch(state)
    found = await rt.backend.keys(f"llmc:{keys.KEY_FORMAT}:{namespace}", limit)
    return _lines(state, sorted(k for k in found if _own(k, namespace, epoch)))


async def _lines(state: State, found: list[str]) -> AsyncIterator[bytes]:
    backend = state.runtime.backend
    for key in found:
        entry = await backend.get(key)
        if entry is not None:  # gone since it was listed: expired, deleted
            yield orjson.dumps(_line(key, entry, state.runtime.settings.namespace)) + b"\n"


def _own(key: str, namespace: str, epoch: str) -> bool:
    parts = key.split(":")
    return len(parts) == 6 and parts[3] == epoch and (parts[2] == namespace or parts[2].startswith(namespace + "/"))


def _line(key: str, entry: CachedResponse, namespace: str) -> dict[str, Any]:
    _, _, key_namespace, _, tenant, digest = key.split(":")
    sub = key_namespace[len(namespace) + 1 :] or None
    line: dict[str, Any] = {
        "format": LINE_FORMAT,
        "subNamespace": sub,
        "tenant": tenant,
        "digest": digest,
        "status": entry.status,
        "stream": entry.is_stream,
        "model": entry.model,
        "usage": [entry.usage.input_tokens, entry.usage.output_tokens],
        "createdAt": entry.created_at,
        "elapsed": entry.elapsed,
        "headers": entry.headers,
        "chunkTimes": entry.chunk_times,
        "request": entry.request,
    }
    try:
        line["body"] = entry.body.decode("utf-8")
    except UnicodeDecodeError:
        line["bodyBase64"] = base64.b64encode(entry.body).decode()
    return line


@dataclass
class Loaded:
    """What an import did: entries written, lines refused (the first few, with why)."""

    imported: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def load(state: State, lines: AsyncIterator[bytes], ttl: float) -> Loaded:
    """Store each exported line under this sidecar's namespace and current epoch, for `ttl` seconds.

    The tenant is kept as recorded, or becomes `shared` where this sidecar's isolation is
    `namespace` (a replay in CI, whose API key is not the recorder's). A bad line is
    counted and skipped; the lines before and after it are stored.
    """
    rt = state.runtime
    settings = rt.settings
    epoch = await current_epoch(state)
    result = Loaded()
    number = 0
    async for raw in lines:
        number += 1
        if not raw.strip():
            continue
        try:
            sub, tenant, digest, entry = _parse_line(raw)
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            result.failed += 1
            if len(result.errors) < 10:
                result.errors.append(f"line {number}: {exc}")
            continue
        if settings.isolation == "namespace":
            tenant = keys.SHARED_TENANT
        namespace = settings.namespace if sub is None else f"{settings.namespace}/{sub}"
        key = keys.compose(namespace, epoch, tenant, digest)
        await rt.backend.set(key, entry, ttl)
        state.recorded.add(key, entry.request)
        result.imported += 1
    return result


def _parse_line(raw: bytes) -> tuple[str | None, str, str, CachedResponse]:
    line = orjson.loads(raw)
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    if line.get("format") != LINE_FORMAT:
        raise ValueError(f"format {line.get('format')!r}; this release reads {LINE_FORMAT}")
    sub, tenant, digest = line.get("subNamespace"), line["tenant"], line["digest"]
    if sub is not None and not (isinstance(sub, str) and _SUBNAMESPACE.match(sub)):
        raise ValueError("subNamespace: letters, digits, '.', '_', '-'")
    if not (isinstance(tenant, str) and _TENANT.match(tenant)):
        raise ValueError("tenant: a tenant hash, shared or anon")
    if not (isinstance(digest, str) and _HEX64.match(digest)):
        raise ValueError("digest: 64 hex digits")
    status = line["status"]
    if not isinstance(status, int) or not 200 <= status < 300:
        raise ValueError("status: only 2xx answers are ever stored")
    text = line.get("body")
    body = text.encode("utf-8") if isinstance(text, str) else base64.b64decode(line["bodyBase64"], validate=True)
    usage = line.get("usage") or [0, 0]
    entry = CachedResponse(
        status=status,
        # What a stored entry would keep: no hop-by-hop or length headers that could contradict the body.
        headers=upstream.stored_headers((str(k), str(v)) for k, v in line.get("headers", ())),
        body=body,
        created_at=float(line.get("createdAt") or time.time()),
        is_stream=bool(line.get("stream", False)),
        model=line.get("model") if isinstance(line.get("model"), str) else None,
        usage=Usage(int(usage[0]), int(usage[1])),
        chunk_times=tuple((int(o), float(t)) for o, t in line.get("chunkTimes", ())),
        elapsed=float(line.get("elapsed") or 0.0),
        request=tuple((str(n), str(h)) for n, h in line.get("request", ())),
    )
    return sub, tenant, digest, entry


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Lines of a request body read in chunks (a recording's lines can be far longer than aiohttp's line limit)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if b"\n" in chunk:
            *complete, rest = buffer.split(b"\n")
            for line in complete:
                yield bytes(line)
            buffer = bytearray(rest)
        if len(buffer) > MAX_LINE_BYTES:
            raise ValueError(f"a line longer than {MAX_LINE_BYTES} bytes")
    if buffer:
        yield bytes(buffer)

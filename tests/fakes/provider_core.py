"""Shared machinery of the fake LLM provider: state, knobs, SSE plumbing, the generic handler.

The per-provider modules (``provider_openai``, ``provider_anthropic``, ``provider_gemini``)
only describe *what* a provider answers; this module decides *how* it is delivered
(delays, error statuses, broken or erroring streams) so the knobs behave the same everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aiohttp import web

from .provider_answers import Json

# --------------------------------------------------------------------------- recorded requests


@dataclass(frozen=True)
class Received:
    """One request as it reached the fake (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    """The request target as sent, percent-encoding and query included."""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# --------------------------------------------------------------------------- knobs


@dataclass(frozen=True)
class Behaviour:
    """How to deliver one answer. ``None`` means "not set here": inherit from the layer below.

    status:         answer this HTTP status with the provider's error JSON instead.
    delay_ms:       sleep before the response starts.
    chunk_delay_ms: sleep between SSE events.
    cut_after:      stream only: send this many events, then drop the connection
                    (never sending the end marker).
    error_after:    stream only: send this many events, then the provider's error event.
    hang_up:        close the connection without answering at all (a provider that crashed, a reset).
    """

    status: int | None = None
    delay_ms: int | None = None
    chunk_delay_ms: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    hang_up: int | None = None

    def over(self, base: Behaviour) -> Behaviour:
        """This behaviour's set fields, the rest taken from ``base``."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Behaviour:
        """Parse the ``x-fake-*`` request headers (the only place knobs are parsed)."""
        values: dict[str, int] = {}
        for header, name in KNOB_HEADERS.items():
            raw = headers.get(header)
            if raw is None:
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                raise web.HTTPBadRequest(text=f"{header} must be an integer, got {raw!r}") from None
        return cls(**values)


KNOB_HEADERS: dict[str, str] = {
    "x-fake-status": "status",
    "x-fake-delay-ms": "delay_ms",
    "x-fake-chunk-delay-ms": "chunk_delay_ms",
    "x-fake-cut-after": "cut_after",
    "x-fake-error-event": "error_after",
    "x-fake-hang-up": "hang_up",
}


# --------------------------------------------------------------------------- state


@dataclass
class FakeProvider:
    """The fake's state: what it received, and how it should behave next.

    Precedence per call: ``x-fake-*`` headers > the next planned Behaviour > the defaults here.
    Serial numbers never go back, not even on ``reset()``, so a cached answer stays recognisable.
    """

    received: list[Received] = field(default_factory=list)
    default_delay_ms: int = 0
    default_chunk_delay_ms: int = 0
    embedding_dim: int = 8
    keep_last: int | None = None  # bound ``received`` (a long-running demo or bench)
    reply_rule: Callable[[Json], str | None] | None = None
    """Chat answers of a test's choosing: given the request body, the answer's text, or None for the echo
    (e.g. a fake LLM judge that says SAME or DIFFERENT per a rule the test controls)."""
    reported_tokens: tuple[int, int] | None = None
    """(input, output) token counts chat completions report instead of the word counts (openai only)."""
    gateway_header: str | None = None
    """Act as an API gateway (Azure APIM, LiteLLM): a request carrying this header (the caller's
    subscription key) is accepted without the provider's own credential (openai only)."""
    _planned: deque[Behaviour] = field(default_factory=deque, init=False, repr=False)
    _serial: int = field(default=0, init=False)

    def plan(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per call by the next calls."""
        self._planned.extend(behaviours)

    def record(self, request: Received) -> None:
        self.received.append(request)
        if self.keep_last is not None and len(self.received) > 2 * self.keep_last:
            del self.received[: -self.keep_last]

    def count(self, path_suffix: str | None = None) -> int:
        """How many requests arrived (whose path ends with ``path_suffix``, if given)."""
        return sum(1 for r in self.received if path_suffix is None or r.path.endswith(path_suffix))

    def reset(self) -> None:
        self.received.clear()
        self._planned.clear()
        self.default_delay_ms = 0
        self.default_chunk_delay_ms = 0
        self.embedding_dim = 8
        self.reply_rule = None
        self.reported_tokens = None
        self.gateway_header = None

    def reply_to(self, body: Json) -> str | None:
        return self.reply_rule(body) if self.reply_rule is not None else None

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def next_behaviour(self, headers: Mapping[str, str]) -> Behaviour:
        defaults = Behaviour(delay_ms=self.default_delay_ms, chunk_delay_ms=self.default_chunk_delay_ms)
        planned = self._planned.popleft() if self._planned else Behaviour()
        return Behaviour.from_headers(headers).over(planned.over(defaults))


FAKE = web.AppKey("fake", FakeProvider)
# On every answer: the only place an answer without an id (embeddings) carries its serial.
SERIAL_HEADER = "x-fake-serial"


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None

    def encode(self, newline: str) -> bytes:
        lines = ([f"event: {self.event}"] if self.event else []) + [f"data: {self.data}"]
        return (newline.join(lines) + newline * 2).encode()


def sse_json(payload: Json, event: str | None = None) -> SseEvent:
    return SseEvent(json.dumps(payload, separators=(",", ":")), event)


@dataclass(frozen=True)
class Stream:
    """A streamed answer: every event, the end marker (if the provider has one) included."""

    events: Sequence[SseEvent]


def script(events: Sequence[SseEvent], behaviour: Behaviour, dialect: Dialect) -> tuple[list[SseEvent], bool]:
    """What to actually send, and whether to drop the connection afterwards.

    A cut or an error always lands before the last event, so the end marker is never sent.
    """
    last = max(len(events) - 1, 0)
    if behaviour.cut_after is not None:
        return list(events[: min(behaviour.cut_after, last)]), True
    if behaviour.error_after is not None:
        sent = min(behaviour.error_after, last)
        return [*events[:sent], dialect.stream_error(sent)], False
    return list(events), False


async def write_sse(
    request: web.Request,
    stream: Stream,
    behaviour: Behaviour,
    dialect: Dialect,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    events, drop = script(stream.events, behaviour, dialect)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **headers,
        }
    )
    await response.prepare(request)
    for index, event in enumerate(events):
        if index:
            await sleep_ms(behaviour.chunk_delay_ms)
        await response.write(event.encode(dialect.sse_newline))
    if drop:
        # Close the socket mid-body: the client sees an incomplete chunked body, not
        # a clean end. aiohttp's own write_eof then fails with a ConnectionError,
        # which it takes for a client disconnect.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


# --------------------------------------------------------------------------- providers


class Dialect(ABC):
    """A provider's conventions: credentials, error shapes, SSE line ending."""

    sse_newline = "\n"

    @abstractmethod
    def reject(self, request: web.Request) -> web.Response | None:
        """The provider's refusal (e.g. missing credential), or None to go on."""

    @abstractmethod
    def error_body(self, status: int) -> Any:
        """The provider's JSON error body for an HTTP status."""

    @abstractmethod
    def stream_error(self, index: int) -> SseEvent:
        """The provider's mid-stream error event, sent as event number ``index`` (from 0)."""

    def error_response(self, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(self.error_body(status), status=status, headers=headers)

    def caller_headers(self, request: web.Request, serial: int) -> dict[str, str]:
        """What the provider says about who called and which call this was (organization, request id)."""
        return {}


def caller_id(request: web.Request, *names: str) -> str:
    """A stable short id of the caller's credential (the first of `names` it sends, or Bearer)."""
    value = next((request.headers[n] for n in names if request.headers.get(n)), None) or bearer(request) or "none"
    return hashlib.sha256(value.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Call:
    """What a builder gets to compute its answer from."""

    body: Json
    serial: int
    params: Mapping[str, str]
    query: Mapping[str, str]
    fake: FakeProvider


Reply = Any  # a JSON-serialisable value, or a Stream of events
Builder = Callable[[Call], Reply]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(dialect: Dialect, build: Builder) -> Handler:
    """An aiohttp handler: checks, knobs, then ``build``'s answer as JSON or SSE."""

    async def handle(request: web.Request) -> web.StreamResponse:
        refusal = dialect.reject(request)
        if refusal is not None:
            return refusal
        fake = request.app[FAKE]
        behaviour = fake.next_behaviour(request.headers)
        serial = fake.next_serial()
        headers = {SERIAL_HEADER: str(serial), **dialect.caller_headers(request, serial)}
        await sleep_ms(behaviour.delay_ms)
        if behaviour.hang_up:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)  # never sent: the connection is gone
        if behaviour.status is not None:
            return dialect.error_response(behaviour.status, headers)
        body = await _json_body(request)
        if body is None:
            return dialect.error_response(400, headers)
        reply = build(Call(body, serial, request.match_info, request.query, fake))
        if isinstance(reply, Stream):
            return await write_sse(request, reply, behaviour, dialect, headers)
        return web.json_response(reply, headers=headers)

    return handle


async def _json_body(request: web.Request) -> Json | None:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def sleep_ms(ms: int | None) -> None:
    if ms:
        await asyncio.sleep(ms / 1000)


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None

"""Calls to the providers: the one `ClientSession`, and which headers cross over.

Requests go out with the caller's method, headers (credentials included) and body;
hop-by-hop headers and our own `x-llmcache-*` controls stay behind. Cacheable calls
ask for an uncompressed answer, so that the stored bytes suit every later caller
whatever it accepts, and usage can be read from them. Everything else passes through
byte for byte (the session does not decompress).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from yarl import URL

from llmcache_sidecar.proxy.coalesce import Flight, FlightFailed, Head

_tracer = trace.get_tracer("llmcache_sidecar")

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)
# Response headers never replayed from the cache: they describe one delivery, or the
# caller's rate-limit state at that moment, not the answer; or they say who the caller
# was (organization, project, the request's id), which another caller must never see.
PER_CALLER: Final = frozenset(
    {
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "x-request-id",
        "request-id",
        "apim-request-id",
        "x-ms-request-id",
        "x-ms-client-request-id",
        "x-amzn-requestid",
        "x-amz-request-id",
        "x-cloud-trace-context",
        "traceparent",
        "tracestate",
        "traceresponse",
    }
)
_NOT_STORED: Final = (
    HOP_BY_HOP
    | PER_CALLER
    | {
        "content-encoding",
        "date",
        "age",
        "set-cookie",
        "retry-after",
        "cache-status",
        "server",
        "alt-svc",
        "cf-ray",
    }
)
# x-litellm-*: a LiteLLM gateway's view of that call and that key (spend, budget, call id).
_NOT_STORED_PREFIXES: Final = ("x-ratelimit", "anthropic-ratelimit", "x-llmcache-", "x-envoy-", "x-litellm-")


def url(base: str, raw_tail: str, raw_query: str) -> str:
    """Where a request for `raw_tail` (below a provider's `base` URL) goes, with the caller's query.

    Both raw, as the app sent them: decoding them first would let `..%2f` climb out of
    `base` and an encoded `&` split a query value (`wire.paths` refuses what could mislead).
    """
    return f"{base}/{raw_tail}?{raw_query}" if raw_query else f"{base}/{raw_tail}"


def request_headers(headers: CIMultiDictProxy[str], *, cacheable: bool) -> CIMultiDict[str]:
    """The caller's headers as they go upstream.

    Without `Content-Encoding`: aiohttp's server has already decoded a compressed request
    body (gzip, deflate, br), and the decoded body is what goes upstream.
    """
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == "content-encoding" or lower.startswith("x-llmcache-"):
            continue
        if cacheable and lower == "accept-encoding":
            continue
        out.add(name, value)
    if cacheable:
        out["Accept-Encoding"] = "identity"
    return out


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The provider's headers as they reach the caller on a pass-through."""
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


def stored_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The provider's headers worth replaying on a hit."""
    return tuple(
        (k, v)
        for k, v in headers
        if (lower := k.lower()) not in _NOT_STORED and not lower.startswith(_NOT_STORED_PREFIXES)
    )


def is_event_stream(headers: Iterable[tuple[str, str]]) -> bool:
    return any(k.lower() == "content-type" and v.startswith("text/event-stream") for k, v in headers)


async def fetch_into(
    session: aiohttp.ClientSession,
    flight: Flight,
    *,
    method: str,
    url: str,
    headers: CIMultiDict[str],
    body: bytes,
    time_limit: float,
    trace_context: Context | None = None,
) -> None:
    """Run one upstream call, publishing its head and chunks into `flight`.

    Never raises: a connection error or a break mid-answer ends the flight with the
    error, which each reader sees. With a trace context, the call is a client span
    under it and its `traceparent` goes upstream, so the caller's trace continues.
    """
    span = None
    if trace_context is not None:
        parsed = URL(url)
        span = _tracer.start_span(
            method,
            context=trace_context,
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": parsed.host or "",
                "server.port": parsed.port or 0,
                "url.full": str(parsed.with_query(None)),  # the query may hold a credential (Gemini's key)
            },
        )
        propagate.inject(headers, context=trace.set_span_in_context(span, trace_context))
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=time_limit),
        ) as resp:
            raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
            if span is not None:
                span.set_attribute("http.response.status_code", resp.status)
            flight.set_head(
                Head(resp.status, tuple(raw_headers), is_event_stream(raw_headers)), length=resp.content_length
            )
            async for chunk in resp.content.iter_any():
                flight.publish(chunk)
                if not flight.recording and not await flight.room():
                    # Too large to store, and every caller left: nobody needs the rest.
                    flight.finish(FlightFailed("every reader of an answer too large to store left"))
                    return
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if span is not None:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(trace.StatusCode.ERROR, str(exc))
        flight.finish(exc)
        return
    except asyncio.CancelledError:
        flight.finish(FlightFailed("cancelled: the sidecar is shutting down"))
        raise
    finally:
        if span is not None:
            span.end()
    flight.finish()

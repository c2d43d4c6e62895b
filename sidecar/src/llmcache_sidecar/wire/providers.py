"""What differs between providers: which calls are cacheable, who the caller is,
what else changes the answer, and how to read a finished answer.

One `WireFormat` per provider kind (`config.ProviderKind`: openai, azure, anthropic,
gemini), in `KINDS`. Everything here is decided from the request line and headers, or
from a finished answer when it is stored, never on a hit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmcache_sidecar.entry import Usage
from llmcache_sidecar.wire.sse import Event

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WireFormat:
    name: str
    cacheable: re.Pattern[str]
    """Matches the path after `/<provider>/` of a cacheable POST; group `endpoint` names it."""
    credential_headers: tuple[str, ...]
    credential_query: tuple[str, ...]
    """Query parameters that carry a credential: never in the key, never stored."""
    key_headers: tuple[str, ...]
    """Request headers that change the answer, so they are part of the key."""
    usage: Callable[[Json], Usage]
    stream_complete: Callable[[list[Event]], bool]
    """True when a recorded stream ended with the provider's own end marker and no error."""
    model_from_path: re.Pattern[str] | None = None

    def model(self, tail: str, body: Json) -> str | None:
        """The model a request names, for metrics: in the body, or in the path (Gemini, Azure)."""
        model = body.get("model")
        if isinstance(model, str):
            return model
        if self.model_from_path is not None and (m := self.model_from_path.search(tail)):
            return m.group(1)
        return None

    def credential(
        self, headers: Mapping[str, str], query: Mapping[str, str], extra_headers: tuple[str, ...] = ()
    ) -> str | None:
        """Every credential the request carries, in this kind's headers, `extra_headers` and query, as one string.

        None when it carries none. All of them, not the first: behind a gateway a shared key
        (`api-key`) may come with the caller's own (`Ocp-Apim-Subscription-Key`).
        """
        # Values in a fixed order; a header value holds no line break. Two requests that
        # show the same secrets are one caller, whichever header carried each. (Loops, not
        # comprehensions: this runs on every hit.)
        found: str | None = None
        for name in self.credential_headers:
            if value := headers.get(name):
                found = value if found is None else f"{found}\n{value}"
        for name in extra_headers:
            if value := headers.get(name):
                found = value if found is None else f"{found}\n{value}"
        for name in self.credential_query:
            if value := query.get(name):
                found = value if found is None else f"{found}\n{value}"
        return found


def _int(value: Any) -> int:
    """A token count as a provider reported it; 0 for anything but a non-negative integer.

    Negative counts are clamped: they would make the tokens- and cost-saved counters go down.
    """
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 0


def _openai_usage(body: Json) -> Usage:
    usage = body.get("usage")
    if isinstance(body.get("response"), dict):  # Responses API stream: response.completed
        usage = body["response"].get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=_int(usage.get("completion_tokens", usage.get("output_tokens"))),
    )


def _anthropic_usage(body: Json) -> Usage:
    usage = body.get("usage")
    if isinstance(body.get("message"), dict):  # stream: message_start
        usage = body["message"].get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(input_tokens=_int(usage.get("input_tokens")), output_tokens=_int(usage.get("output_tokens")))


def _gemini_usage(body: Json) -> Usage:
    usage = body.get("usageMetadata")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("promptTokenCount")),
        output_tokens=_int(usage.get("candidatesTokenCount")),
    )


def is_error(name: str | None, parsed: Json | None) -> bool:
    """An event that reports an error (by its name, or an `error` field): its stream is never stored."""
    return name == "error" or (parsed is not None and "error" in parsed)


def _has_error(events: Iterable[Event]) -> bool:
    return any(is_error(e.name, e.json) for e in events)


def _openai_stream_complete(events: list[Event]) -> bool:
    if _has_error(events) or not events:
        return False
    last = events[-1]
    if last.data == b"[DONE]":
        return True
    # The Responses API ends with a typed event and no [DONE].
    return last.name == "response.completed"


def _anthropic_stream_complete(events: list[Event]) -> bool:
    return bool(events) and events[-1].name == "message_stop" and not _has_error(events)


def _gemini_stream_complete(events: list[Event]) -> bool:
    if not events or _has_error(events):
        return False
    last = events[-1].json or {}
    candidates = last.get("candidates")
    return isinstance(candidates, list) and any(isinstance(c, dict) and c.get("finishReason") for c in candidates)


_OPENAI_ENDPOINTS = r"(?P<endpoint>chat/completions|completions|embeddings|responses)"

KINDS: Mapping[str, WireFormat] = {
    "openai": WireFormat(
        name="openai",
        cacheable=re.compile(rf"^(?:.*?/)?{_OPENAI_ENDPOINTS}$"),
        credential_headers=("authorization", "api-key"),
        credential_query=(),
        key_headers=("openai-beta",),
        usage=_openai_usage,
        stream_complete=_openai_stream_complete,
    ),
    "azure": WireFormat(
        name="azure",
        cacheable=re.compile(rf"^openai/(?:deployments/[^/]+/|v1/)?{_OPENAI_ENDPOINTS}$"),
        credential_headers=("api-key", "authorization"),
        credential_query=(),
        key_headers=(),
        usage=_openai_usage,
        stream_complete=_openai_stream_complete,
        model_from_path=re.compile(r"deployments/([^/]+)/"),
    ),
    "anthropic": WireFormat(
        name="anthropic",
        cacheable=re.compile(r"^(?:v1/)?(?P<endpoint>messages)$"),
        credential_headers=("x-api-key", "authorization"),
        credential_query=(),
        key_headers=("anthropic-version", "anthropic-beta"),
        usage=_anthropic_usage,
        stream_complete=_anthropic_stream_complete,
    ),
    "gemini": WireFormat(
        name="gemini",
        cacheable=re.compile(r"^v1(?:beta|alpha)?/models/[^/:]+:(?P<endpoint>generateContent|streamGenerateContent)$"),
        credential_headers=("x-goog-api-key", "authorization"),
        credential_query=("key",),
        key_headers=(),
        usage=_gemini_usage,
        stream_complete=_gemini_stream_complete,
        model_from_path=re.compile(r"models/([^/:]+):"),
    ),
}

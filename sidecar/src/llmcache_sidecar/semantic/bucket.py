"""The exact part of a semantic lookup: which stored prompts a request may be compared with.

Only the last user message of a chat request is compared by meaning. Everything
else must be identical, so it goes into the bucket: the provider and its upstream,
the endpoint path and query, the headers that change answers, the model and every
parameter (temperature, max tokens, tools, response format, stream, ...), the system
prompt and every earlier turn, plus the exact key's scope: namespace, flush epoch and
tenant (the hash of the caller's API key). A near-duplicate is therefore never served
across models, parameters, conversations or tenants, and a flush empties the semantic
index as it empties the exact cache.

Chat-style requests only: OpenAI and Azure chat completions and responses, Anthropic
messages, Gemini generateContent. The last message must be the user's and be plain
text; a request with an image, a tool result or an assistant turn last is not looked
up by meaning (it goes on as a normal miss).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmcache_sidecar.config import KeyParams
from llmcache_sidecar.wire import keys
from llmcache_sidecar.wire.providers import WireFormat

Json = dict[str, Any]
_CHAT_ENDPOINTS = frozenset({"chat/completions", "responses", "messages", "generateContent", "streamGenerateContent"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})


@dataclass(frozen=True, slots=True)
class Probe:
    """What a request looks up by: its bucket and its last user message."""

    bucket: str
    text: str


def probe(
    *,
    kind: WireFormat,
    provider: str,
    upstream: str,
    tail: str,
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    body: Mapping[str, Any],
    key_params: KeyParams,
    key: str,
) -> Probe | None:
    """The request's bucket and last user message, or None when it is not a plain chat turn."""
    match = kind.cacheable.match(tail)
    if match is None or match.group("endpoint") not in _CHAT_ENDPOINTS:
        return None
    split = split_last_user_message(dict(keys.key_fields(body, key_params)))
    if split is None:
        return None
    rest, text = split
    if not text.strip():
        return None
    digest = keys.request_digest(
        provider=provider, upstream=upstream, path=tail, query=query, headers=headers, fields=rest
    )
    return Probe(keys.semantic_bucket(key, digest), text)


def split_last_user_message(body: Json) -> tuple[Json, str] | None:
    """(the body with the last user message's text taken out, that text), for any provider's shape."""
    if isinstance(body.get("messages"), list):  # OpenAI chat, Anthropic messages
        return _split_turns(body, "messages", "content")
    if "input" in body:  # OpenAI responses
        if isinstance(body["input"], str):
            return {**body, "input": None}, body["input"]
        if isinstance(body["input"], list):
            return _split_turns(body, "input", "content")
        return None
    if isinstance(body.get("contents"), list):  # Gemini
        return _split_turns(body, "contents", "parts")
    return None


def _split_turns(body: Json, list_field: str, content_field: str) -> tuple[Json, str] | None:
    turns = body[list_field]
    if not turns or not isinstance(turns[-1], dict):
        return None
    last = turns[-1]
    if last.get("role", "user") != "user":
        return None
    text = _plain_text(last.get(content_field))
    if text is None:
        return None
    rest_last = {k: v for k, v in last.items() if k != content_field}
    return {**body, list_field: [*turns[:-1], rest_last]}, text


def _plain_text(content: Any) -> str | None:
    """The text of a message content that holds only text (a string, or text parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            return None
        if part.get("type", "text") not in _TEXT_PART_TYPES or set(part) - {"type", "text"}:
            return None  # cache_control, images, files: not a plain text turn
        texts.append(part["text"])
    return "\n".join(texts)


def stored_text_digest(text: str) -> str:
    """What logs show of a prompt: a short hash, never the text."""
    return hashlib.sha256(orjson.dumps(text)).hexdigest()[:12]

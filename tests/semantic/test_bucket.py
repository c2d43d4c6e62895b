"""Buckets: everything but the last user message must match exactly, in every provider's shape."""

from __future__ import annotations

from typing import Any

import pytest

from llmcache_sidecar.config import KeyParams
from llmcache_sidecar.semantic.bucket import Probe, probe
from llmcache_sidecar.wire.providers import KINDS

KEY = "llmc:1:default:e0:tenant-a:" + "0" * 64


def chat(question: Any = "How do I reset my password?", **body: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}], **body}


def probe_of(
    body: dict[str, Any], *, kind: str = "openai", tail: str = "v1/chat/completions", key: str = KEY
) -> Probe | None:
    return probe(
        kind=KINDS[kind],
        provider=kind,
        upstream="https://upstream.test",
        tail=tail,
        query=[],
        headers=[],
        body=body,
        key_params=KeyParams(),
        key=key,
    )


def test_the_last_user_message_is_what_is_compared_by_meaning() -> None:
    found = probe_of(chat())
    assert found is not None and found.text == "How do I reset my password?"


def test_two_wordings_of_one_request_share_a_bucket() -> None:
    a, b = probe_of(chat("How do I reset my password?")), probe_of(chat("how can I reset my password"))
    assert a is not None and b is not None and a.bucket == b.bucket


@pytest.mark.parametrize(
    "other",
    [
        chat(model="gpt-4o"),
        chat(temperature=0.7),
        chat(tools=[{"type": "function", "function": {"name": "lookup"}}]),
        {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."}, *chat()["messages"]]},
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello"},
                *chat()["messages"],
            ],
        },
    ],
    ids=["model", "temperature", "tools", "system prompt", "earlier turns"],
)
def test_anything_else_that_differs_makes_another_bucket(other: dict[str, Any]) -> None:
    a, b = probe_of(chat()), probe_of(other)
    assert a is not None and b is not None and a.bucket != b.bucket


def test_another_tenant_namespace_or_epoch_makes_another_bucket() -> None:
    buckets = {
        probe_of(chat(), key=key).bucket  # type: ignore[union-attr]
        for key in (KEY, KEY.replace("tenant-a", "tenant-b"), KEY.replace("default", "team"), KEY.replace("e0", "e1"))
    }
    assert len(buckets) == 4


def test_fields_left_out_of_the_key_are_left_out_of_the_bucket() -> None:
    a, b = probe_of(chat(user="alice")), probe_of(chat(user="bob"))
    assert a is not None and b is not None and a.bucket == b.bucket


@pytest.mark.parametrize(
    ("body", "tail"),
    [
        ({"model": "m", "prompt": "How do I reset my password?"}, "v1/completions"),
        ({"model": "m", "input": "How do I reset my password?"}, "v1/embeddings"),
        (chat([{"type": "image_url", "image_url": {"url": "data:..."}}]), "v1/chat/completions"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]},
            "v1/chat/completions",
        ),
        (chat("   "), "v1/chat/completions"),
    ],
    ids=["completions", "embeddings", "an image", "assistant last", "blank"],
)
def test_requests_that_are_not_a_plain_chat_turn_are_not_looked_up(body: dict[str, Any], tail: str) -> None:
    assert probe_of(body, tail=tail) is None


@pytest.mark.parametrize(
    ("kind", "tail", "body"),
    [
        ("openai", "v1/chat/completions", chat([{"type": "text", "text": "How do I reset my password?"}])),
        ("openai", "v1/responses", {"model": "m", "input": "How do I reset my password?"}),
        ("anthropic", "v1/messages", {"model": "c", "max_tokens": 9, "system": "x", "messages": chat()["messages"]}),
        (
            "gemini",
            "v1beta/models/gemini-2.0-flash:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "How do I reset my password?"}]}]},
        ),
    ],
    ids=["openai text parts", "responses", "anthropic", "gemini"],
)
def test_every_providers_chat_shape_is_read(kind: str, tail: str, body: dict[str, Any]) -> None:
    found = probe_of(body, kind=kind, tail=tail)
    assert found is not None and found.text == "How do I reset my password?"

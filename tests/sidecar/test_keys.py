"""Cache keys: canonical, scoped, and never shared across tenants."""

from __future__ import annotations

import pytest

from llmcache_sidecar.config import KeyParams
from llmcache_sidecar.wire import keys
from llmcache_sidecar.wire.policy import CACHE
from llmcache_sidecar.wire.render import AS_STORED


def digest(fields: dict[str, object], **over: object) -> str:
    args: dict[str, object] = {
        "provider": "openai",
        "upstream": "https://api.openai.com",
        "path": "v1/chat/completions",
        "query": [],
        "headers": [],
        "fields": fields,
    }
    args.update(over)
    return keys.request_digest(**args)  # type: ignore[arg-type]


def test_key_order_does_not_change_the_digest() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    b = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert digest(a) == digest(b)


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"provider": "vllm"}, "another provider"),
        ({"upstream": "http://other"}, "another upstream"),
        ({"path": "v1/completions"}, "another endpoint"),
        ({"query": [("api-version", "2024-10-21")]}, "another query"),
        ({"headers": [("anthropic-version", "2023-06-01")]}, "a header that changes the answer"),
    ],
)
def test_everything_that_can_change_the_answer_changes_the_digest(over: dict[str, object], why: str) -> None:
    assert digest({"model": "m"}, **over) != digest({"model": "m"}), why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"temperature": 0}, {"temperature": 0.0}),  # kept exactly as sent: never guess equality
        ({"n": 1}, {"n": 2}),
        ({"content": "Hi"}, {"content": "hi"}),
        ({"stream": True}, {"stream": False}),
    ],
)
def test_values_that_differ_give_different_digests(a: dict[str, object], b: dict[str, object]) -> None:
    assert digest(a) != digest(b)


def test_excluded_fields_and_the_cache_field_are_left_out() -> None:
    body = {"model": "m", "user": "alice", "metadata": {"x": 1}, "cache": {"ttl": 5}}
    assert keys.key_fields(body, KeyParams()) == {"model": "m"}


def test_an_include_list_keeps_only_what_it_names() -> None:
    body = {"model": "m", "messages": [], "temperature": 1}
    assert keys.key_fields(body, KeyParams(include=("model", "messages"))) == {"model": "m", "messages": []}


def test_tenants_are_one_way_hashes_and_anonymous_callers_share_one() -> None:
    a, b = keys.tenant_of("Bearer sk-a"), keys.tenant_of("Bearer sk-b")
    assert a != b
    assert "sk-a" not in a
    assert len(a) == 32
    assert keys.tenant_of(None) == keys.tenant_of("") == keys.ANONYMOUS_TENANT


def test_a_key_carries_format_namespace_epoch_and_tenant() -> None:
    key = keys.compose("team-a", "e3", "t" * 32, "d" * 64)
    assert key == f"llmc:{keys.KEY_FORMAT}:team-a:e3:{'t' * 32}:{'d' * 64}"
    assert keys.short(key) == "d" * 12


def test_a_caller_chosen_key_is_still_scoped_to_provider_upstream_and_endpoint() -> None:
    one = keys.caller_digest(provider="openai", upstream="https://a", path="v1/chat/completions", caller_key="k")
    assert one != keys.caller_digest(provider="anthropic", upstream="https://a", path="v1/messages", caller_key="k")
    assert one != keys.caller_digest(
        provider="openai", upstream="https://b", path="v1/chat/completions", caller_key="k"
    )
    assert one == keys.caller_digest(
        provider="openai", upstream="https://a", path="v1/chat/completions", caller_key="k"
    )


def test_the_digest_memo_tells_apart_every_input_and_forgets_the_oldest() -> None:
    memo = keys.DigestMemo(size=2)
    up = "https://a.openai.azure.com"
    base = keys.DigestMemo.key("openai", up, "v1/chat/completions", "", (None,), b'{"model":"m"}')
    memo.put(base, "d1", "m", AS_STORED, CACHE)
    again = keys.DigestMemo.key("openai", up, "v1/chat/completions", "", (None,), b'{"model":"m"}')
    assert memo.get(again) == ("d1", "m", AS_STORED, CACHE)
    for other in (
        keys.DigestMemo.key("vllm", up, "v1/chat/completions", "", (None,), b'{"model":"m"}'),
        keys.DigestMemo.key(
            "openai", "https://b.openai.azure.com", "v1/chat/completions", "", (None,), b'{"model":"m"}'
        ),
        keys.DigestMemo.key("openai", up, "v1/completions", "", (None,), b'{"model":"m"}'),
        keys.DigestMemo.key("openai", up, "v1/chat/completions", "api-version=1", (None,), b'{"model":"m"}'),
        keys.DigestMemo.key("openai", up, "v1/chat/completions", "", ("beta",), b'{"model":"m"}'),
        keys.DigestMemo.key("openai", up, "v1/chat/completions", "", (None,), b'{"model": "m"}'),
    ):
        assert memo.get(other) is None
    memo.put(keys.DigestMemo.key("a", "", "", "", (), b"1"), "d2", None, AS_STORED, CACHE)
    memo.put(keys.DigestMemo.key("a", "", "", "", (), b"2"), "d3", None, AS_STORED, CACHE)
    assert memo.get(base) is None  # the oldest went first

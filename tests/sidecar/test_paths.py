"""Which paths below a route are forwarded, and how the cache reads them (`wire.paths`, issue 15 finding 10)."""

from __future__ import annotations

import pytest

from llmcache_sidecar.proxy import route_tail
from llmcache_sidecar.wire import paths


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("v1/chat/completions", "v1/chat/completions"),
        ("v1beta/models/gemini-2.0-flash:generateContent", "v1beta/models/gemini-2.0-flash:generateContent"),
        ("v1beta/models/gemini-2.0-flash%3AgenerateContent", "v1beta/models/gemini-2.0-flash:generateContent"),
        ("openai/deployments/my%20model/chat/completions", "openai/deployments/my model/chat/completions"),
        ("v1/files/file-1.jsonl", "v1/files/file-1.jsonl"),
        ("v1/..x/chat/completions", "v1/..x/chat/completions"),
        ("v1//chat/completions", "v1//chat/completions"),
        ("", ""),
    ],
)
def test_a_path_that_means_one_resource_is_decoded_for_the_cache(raw: str, decoded: str) -> None:
    assert paths.decode(raw) == decoded


@pytest.mark.parametrize(
    "raw",
    [
        "..%2f..%2fadmin",
        "..%2F..%2Fadmin",
        "%2e%2e/%2e%2e/admin",
        "v1/../admin",
        "v1/./chat/completions",
        "..",
        "v1/%2E/chat/completions",
        "v1/models%23/chat/completions",
        "v1/models%3f/chat/completions",
        "v1/chat%2fcompletions",
        "v1%5c..%5cadmin",
        "v1\\chat\\completions",
        "v1/models#/chat/completions",
        "v1/chat/completions%00",
    ],
)
def test_a_path_whose_decoding_could_reach_another_resource_is_refused(raw: str) -> None:
    with pytest.raises(paths.PathError):
        paths.decode(raw)


def test_a_request_target_splits_into_raw_path_and_raw_query() -> None:
    assert paths.split_query("/openai/v1/x?a=%2B&b=1") == ("/openai/v1/x", "a=%2B&b=1")
    assert paths.split_query("/openai/v1/x") == ("/openai/v1/x", "")


@pytest.mark.parametrize(
    ("target", "tail"),
    [
        ("/openai/v1/chat/completions?x=1", "v1/chat/completions"),
        ("/op%65nai/v1/chat%20x", "v1/chat%20x"),
        ("/openai/", ""),
        ("http://127.0.0.1:8787/openai/v1/embeddings?x=%2F", "v1/embeddings"),
    ],
)
def test_the_raw_tail_of_a_route_is_the_path_after_its_name_as_sent(target: str, tail: str) -> None:
    assert route_tail(target) == tail

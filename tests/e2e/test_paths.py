"""A path below a route reaches that route's upstream as sent, or is refused (issue 15, finding 10).

The route's tail used to be percent-decoded before the upstream URL was built from it:
`/openai/..%2f..%2fadmin` reached `/admin` upstream, and `/openai/v1/models%23/chat/completions`
was classified (and keyed) as a chat call while it went to `/v1/models`. Raw paths are
sent with aiohttp and `URL(..., encoded=True)`, so that no client normalises them first.
"""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from tests.conftest import Sidecar, Upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    "path",
    [
        "/openai/..%2f..%2fadmin",
        "/openai/v1/%2e%2e/%2e%2e/admin",
        "/openai/v1/../../admin",
        "/openai/v1/models%23/chat/completions",
        "/openai/v1/models%3F/chat/completions",
        "/openai/v1/chat%2Fcompletions",
        "/azure/openai/deployments/x%5c..%5c..%5cadmin/chat/completions",
    ],
)
async def test_a_path_that_could_reach_another_resource_upstream_is_refused(
    sidecar: Sidecar, upstream: Upstream, path: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            URL(sidecar.url + path, encoded=True), json=CHAT, headers={"authorization": "Bearer sk-a"}
        ) as r:
            assert r.status == 400
            error = (await r.json())["error"]
    assert error["code"] == "invalid_path"
    assert "could reach another path upstream" in error["message"]
    assert upstream.fake.received == []


async def test_the_path_and_the_query_go_upstream_exactly_as_the_app_sent_them(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    """`%2541` is the text `%41`: decoded once before forwarding, it arrived as `A`."""
    target = "/openai/v1/chat/completions?tag=%2541&x=a%2Bb"
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(
                URL(sidecar.url + target, encoded=True), json=CHAT, headers={"authorization": "Bearer sk-a"}
            ) as r:
                assert r.status == 200
    (received,) = upstream.fake.received
    assert received.raw_path == "/v1/chat/completions?tag=%2541&x=a%2Bb"
    assert received.query == {"tag": "%41", "x": "a+b"}
    assert r.headers["cache-status"] == "llmcache; hit"

"""Paths of intercepted calls: forwarded as sent, or refused when they could reach another resource (finding 10)."""

from __future__ import annotations

import pytest

from tests.transparent.conftest import Pki, Proxy, TlsUpstream
from tests.transparent.test_sdks import CHAT, http_client


@pytest.mark.parametrize("path", ["/v1/..%2f..%2fadmin", "/v1/models%23/chat/completions"])
async def test_an_intercepted_path_that_could_reach_another_resource_is_refused(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream, path: str
) -> None:
    async with http_client(proxy, pki) as http:
        r = await http.post(f"https://api.openai.com{path}", json=CHAT, headers={"authorization": "Bearer sk-a"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_path"
    assert tls_upstream.fake.received == []


async def test_an_intercepted_call_reaches_the_upstream_with_its_raw_query(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with http_client(proxy, pki) as http:
        r = await http.post(
            "https://api.openai.com/v1/chat/completions?tag=%2541", json=CHAT, headers={"authorization": "Bearer sk-a"}
        )
    assert r.status_code == 200, r.text
    (received,) = tls_upstream.fake.received
    assert received.raw_path == "/v1/chat/completions?tag=%2541"

"""The provider label of transparent pass-through requests is bounded (issue 15, finding 8).

A plain-HTTP proxy request to a host that is not intercepted is counted under that host
as its provider: an app naming ever new hosts made a new series each. Past
`telemetry.labels.MAX_HOSTS` hosts the rest count as `other`; configured providers are not capped.
"""

from __future__ import annotations

import httpx

from llmcache_sidecar.telemetry.labels import MAX_HOSTS, OTHER
from tests.transparent.conftest import Pki, Proxy
from tests.transparent.test_sdks import CHAT, http_client


async def test_pass_through_hosts_beyond_the_cap_are_counted_as_other(proxy: Proxy, pki: Pki) -> None:
    extra = 10
    async with httpx.AsyncClient(proxy=proxy.url) as plain:
        for i in range(MAX_HOSTS + extra):
            r = await plain.get(f"http://host-{i}.example/")  # nothing resolves it here: a 502, counted all the same
            assert r.status_code == 502
    async with http_client(proxy, pki) as http:  # an intercepted, configured provider after them
        assert (await http.post("https://api.openai.com/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-a"})).status_code == 200  # fmt: skip

    providers = {provider for provider, *_ in proxy.state.aggregates.requests}
    assert providers == {f"host-{i}.example" for i in range(MAX_HOSTS)} | {OTHER, "openai"}
    other = sum(n for (provider, *_), n in proxy.state.aggregates.requests.items() if provider == OTHER)
    assert other == extra

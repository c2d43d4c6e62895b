"""Two Azure OpenAI resources behind one provider: each answers for itself (issue 15, finding 3).

Every `*.openai.azure.com` host is one route (`azure`) with the host as its upstream. The
same Entra token and the same request sent to resource-a and then to resource-b must reach
resource-b: an entry is scoped by its upstream, on the memo path and with a caller-chosen
key alike. The two resources are two fake providers over TLS (stand-ins for Azure, which
cannot be reached from here); the app is the official openai SDK behind HTTPS_PROXY.
"""

from __future__ import annotations

import openai
import pytest

from tests.fakes.provider import FAKE, make_fake_provider
from tests.transparent.conftest import Pki, ProxyFactory, ServerFactory, server_context
from tests.transparent.test_sdks import MESSAGES, sdk_client

RESOURCES = ("resource-a.openai.azure.com", "resource-b.openai.azure.com")


@pytest.mark.parametrize("caller_key", [None, "my-key"], ids=["computed-key", "x-llmcache-key"])
async def test_one_azure_resource_never_answers_for_another(
    make_proxy: ProxyFactory, aiohttp_server: ServerFactory, pki: Pki, caller_key: str | None
) -> None:
    servers = [
        await aiohttp_server(make_fake_provider(), ssl=server_context(pki.public_ca, *RESOURCES)) for _ in RESOURCES
    ]
    proxy = await make_proxy(resolve={host: s.port for host, s in zip(RESOURCES, servers, strict=True)})
    headers = {"x-llmcache-key": caller_key} if caller_key else {}

    answers = []
    for host in (*RESOURCES, RESOURCES[0]):
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=f"https://{host}",
            azure_ad_token="the-same-entra-token",
            api_version="2024-10-21",
            max_retries=0,
            http_client=sdk_client(proxy, pki),
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=MESSAGES, extra_headers=headers
            )
            answers.append((raw.headers["cache-status"], raw.headers["x-llmcache-key"]))

    (a_status, a_key), (b_status, b_key), (again_status, again_key) = answers
    assert a_status == b_status == "llmcache; fwd=miss; stored"
    assert again_status == "llmcache; hit" and again_key == a_key
    assert a_key != b_key
    assert [s.app[FAKE].count("/chat/completions") for s in servers] == [1, 1]

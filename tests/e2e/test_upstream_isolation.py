"""Two upstreams of one provider kind in reverse-proxy mode: each answers for itself (issue 15, finding 3).

Two Azure OpenAI resources configured as two providers of kind `azure`: the same request
with the same credential, to each in turn, reaches each resource once; a repeat to the
first is a hit. With a computed key and with a caller-chosen `x-llmcache-key` alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import SidecarFactory, Upstream
from tests.fakes.provider import FAKE, make_fake_provider

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize("caller_key", [None, "my-key"], ids=["computed-key", "x-llmcache-key"])
async def test_two_resources_of_one_kind_never_answer_for_each_other(
    make_sidecar: SidecarFactory,
    upstream: Upstream,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    caller_key: str | None,
) -> None:
    other = await aiohttp_server(make_fake_provider())
    sidecar = await make_sidecar(
        providers={
            "azure-a": {"kind": "azure", "upstream": upstream.url},
            "azure-b": {"kind": "azure", "upstream": str(other.make_url("")).rstrip("/")},
        }
    )
    headers = {"x-llmcache-key": caller_key} if caller_key else {}
    answers = []
    for provider in ("azure-a", "azure-b", "azure-a"):
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=f"{sidecar.url}/{provider}",
            azure_ad_token="the-same-entra-token",
            api_version="2024-10-21",
            max_retries=0,
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=MESSAGES, extra_headers=headers
            )
            answers.append((raw.headers["cache-status"], raw.headers["x-llmcache-key"]))

    (a_status, a_key), (b_status, b_key), (again_status, again_key) = answers
    assert a_status == b_status == "llmcache; fwd=miss; stored"
    assert again_status == "llmcache; hit" and again_key == a_key
    assert a_key != b_key
    assert upstream.fake.count("/chat/completions") == 1
    assert other.app[FAKE].count("/chat/completions") == 1

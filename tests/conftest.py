"""Shared fixtures: a real redis-server, the fake provider, and a sidecar in front of it.

The fake provider (tests/fakes/provider.py) is a local aiohttp server that speaks the
providers' real wire formats; it stands in for OpenAI, Anthropic, Gemini and Azure,
which cannot be reached from here. Everything else is real: the sidecar's apps on
real sockets, the official SDKs as clients, a real redis-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llmcache_sidecar import config
from llmcache_sidecar.app import make_admin_app, make_app
from llmcache_sidecar.runtime import STATE, State
from tests.fakes.provider import FAKE, FakeProvider, make_fake_provider
from tests.redis_server import RedisServer, running_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole run; tests keep apart by namespace."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@dataclass
class Upstream:
    url: str
    fake: FakeProvider


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Upstream:
    server = await aiohttp_server(make_fake_provider())
    return Upstream(str(server.make_url("")).rstrip("/"), server.app[FAKE])


@dataclass
class Sidecar:
    url: str
    admin_url: str
    app: web.Application

    @property
    def state(self) -> State:
        return self.app[STATE]

    @property
    def settings(self) -> config.Settings:
        return self.state.runtime.settings


def sidecar_settings(upstream_url: str, **overrides: Any) -> config.Settings:
    """Settings whose providers all point at the fake provider."""
    data: dict[str, Any] = {
        "providers": {
            "openai": {"upstream": upstream_url},
            "anthropic": {"upstream": upstream_url},
            "gemini": {"upstream": upstream_url},
            "azure": {"kind": "azure", "upstream": upstream_url},
        },
    }
    data.update(overrides)
    return config.parse(config.Settings, data)


SidecarFactory = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def make_sidecar(
    aiohttp_server: Callable[..., Awaitable[TestServer]], upstream: Upstream
) -> AsyncIterator[SidecarFactory]:
    async def start(**overrides: Any) -> Sidecar:
        app = make_app(sidecar_settings(upstream.url, **overrides))
        server = await aiohttp_server(app)
        admin = await aiohttp_server(make_admin_app(app[STATE]))
        return Sidecar(str(server.make_url("")).rstrip("/"), str(admin.make_url("")).rstrip("/"), app)

    yield start


@pytest.fixture
async def sidecar(make_sidecar: SidecarFactory) -> Sidecar:
    """A sidecar with the default settings (memory backend) in front of the fake provider."""
    return await make_sidecar()

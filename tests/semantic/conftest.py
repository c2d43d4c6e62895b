"""Fixtures for the semantic cache: a real embeddings server of ours with a deterministic encoder.

`embedder` is `llmcache-embedder` itself (the same aiohttp app the chart offers as the
in-cluster embedder) running its bag-of-words `HashEncoder`: prompts that share words
get a high cosine, prompts that share none get zero, and every run gives the same
vectors. Only the encoder is a stand-in for the real model; `test_real_model.py` runs
all-MiniLM-L6-v2 instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from llmcache_embedder.app import create_app
from llmcache_embedder.model import HashEncoder

from tests.conftest import Sidecar, SidecarFactory

EMBED_MODEL = "hash-bow-256"
THRESHOLD = 0.7


@dataclass
class Embedder:
    url: str
    encoder: HashEncoder

    @property
    def texts(self) -> list[str]:
        """Every text the embeddings server was asked to embed, in order."""
        return [t for call in self.encoder.calls if call != ["warm-up"] for t in call]


@pytest.fixture
async def embedder(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Embedder:
    encoder = HashEncoder(256)
    server = await aiohttp_server(create_app(lambda: encoder, EMBED_MODEL), host="127.0.0.1")
    return Embedder(str(server.make_url("/v1")), encoder)


def semantic_settings(embedder: Embedder, **overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "enabled": True,
        "threshold": THRESHOLD,
        "embedding": {"url": embedder.url, "model": EMBED_MODEL, "timeoutMs": 2000},
    }
    block.update(overrides)
    return block


SemanticSidecarFactory = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
def semantic_sidecar(make_sidecar: SidecarFactory, embedder: Embedder) -> SemanticSidecarFactory:
    """Start a sidecar in front of the fake provider with semantic caching on (overrides for its block)."""

    async def start(*, sidecar: dict[str, Any] | None = None, **semantic: Any) -> Sidecar:
        return await make_sidecar(semantic=semantic_settings(embedder, **semantic), **(sidecar or {}))

    return start

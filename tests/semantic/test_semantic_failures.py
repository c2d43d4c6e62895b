"""The semantic cache fails open: a dead, slow or wrong embedder, or a dead vector store,
turns a lookup into a plain miss, counted, and never fails or blocks a request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from llmcache_embedder.model import HashEncoder
from llmcache_embedder.server import create_app

from llmcache_sidecar import reload
from tests.conftest import SidecarFactory, Upstream
from tests.redis_server import free_port, running_redis
from tests.semantic.conftest import EMBED_MODEL, Embedder, SemanticSidecarFactory, semantic_settings
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"


async def test_an_unreachable_embedder_means_plain_misses(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    sidecar = await make_sidecar(
        semantic={"enabled": True, "embedding": {"url": f"http://127.0.0.1:{free_port()}/v1", "timeoutMs": 500}}
    )
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)
    exact = await ask(sidecar, QUESTION)

    assert (first.status, second.status) == ("llmcache; fwd=miss; stored", "llmcache; fwd=miss; stored")
    assert exact.status == "llmcache; hit"  # the exact cache does not depend on the embedder
    numbers = await stats(sidecar)
    assert (numbers["embedErrors"], numbers["hits"], numbers["indexed"]) == (2, 0, 0)


class SlowEncoder(HashEncoder):
    def encode(self, texts: list[str]) -> list[list[float]]:
        if texts != ["warm-up"]:
            time.sleep(0.5)  # runs in the embedder's worker thread, as the real model does
        return super().encode(texts)


async def test_a_slow_embedder_is_cut_off_by_its_own_timeout(
    make_sidecar: SidecarFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    server = await aiohttp_server(create_app(lambda: SlowEncoder(64), EMBED_MODEL), host="127.0.0.1")
    sidecar = await make_sidecar(
        semantic={
            "enabled": True,
            "embedding": {"url": str(server.make_url("/v1")), "model": EMBED_MODEL, "timeoutMs": 100},
        }
    )
    answer = await ask(sidecar, QUESTION)

    assert answer.status == "llmcache; fwd=miss; stored"
    assert (await stats(sidecar))["embedErrors"] == 1  # the 500 ms encoder ran past the 100 ms timeout


async def test_an_embedder_that_refuses_the_model_means_plain_misses(
    semantic_sidecar: SemanticSidecarFactory, embedder: Embedder
) -> None:
    # The embeddings server answers 404 model_not_found for a model it does not serve.
    sidecar = await semantic_sidecar(embedding={"url": embedder.url, "model": "other"})
    await ask(sidecar, QUESTION)
    assert (await stats(sidecar))["embedErrors"] == 1


async def test_a_dead_redis_vector_store_means_plain_misses(
    semantic_sidecar: SemanticSidecarFactory, embedder: Embedder, tmp_path: Path, upstream: Upstream
) -> None:
    with running_redis(tmp_path) as redis:
        sidecar = await semantic_sidecar(store={"type": "redis", "redis": {"url": redis.url, "timeoutMs": 200}})
        await ask(sidecar, QUESTION)
        assert (await ask(sidecar, PARAPHRASE)).status == "llmcache; hit; detail=semantic"
    after = await ask(sidecar, "how could I reset my password")

    assert after.status == "llmcache; fwd=miss; stored"
    numbers = await stats(sidecar)
    assert numbers["indexErrors"] >= 1
    assert upstream.fake.count("/chat/completions") == 2


async def test_an_unreadable_embedder_key_file_leaves_exact_caching_on_until_the_file_appears(
    make_sidecar: SidecarFactory, embedder: Embedder, tmp_path: Path
) -> None:
    """The key's Secret volume is not filled yet: semantic caching waits for it, nothing else does."""
    key_file = tmp_path / "embedder" / "api-key"
    block = semantic_settings(embedder)
    block["embedding"]["apiKeyFile"] = str(key_file)
    sidecar = await make_sidecar(semantic=block)
    first = await ask(sidecar, QUESTION)
    paraphrase_before = await ask(sidecar, PARAPHRASE)
    exact = await ask(sidecar, QUESTION)
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/readyz") as resp:
        ready_before = resp.status, await resp.json()
    stats_before = await stats(sidecar)

    key_file.parent.mkdir()
    key_file.write_text("sk-embedder\n")
    await reload.retry_unbuilt(sidecar.state)  # what the reload poll does every interval
    stored_after = await ask(sidecar, "How do I change my email address?")
    paraphrase_after = await ask(sidecar, "how can I change my email address")
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/readyz") as resp:
        ready_after = resp.status

    assert (first.status, paraphrase_before.status) == ("llmcache; fwd=miss; stored",) * 2
    assert exact.status == "llmcache; hit"
    assert ready_before == (
        503,
        {
            "status": "unavailable",
            "backend": "memory",
            "error": f"semantic: semantic.embedding.apiKeyFile: cannot read the secret file {key_file}:"
            " No such file or directory",
        },
    )
    assert (stats_before["enabled"], stats_before["unavailable"]) == (False, ready_before[1]["error"][10:])
    # Built on the retry: a paraphrase of what is stored from now on is matched.
    assert stored_after.status == "llmcache; fwd=miss; stored"
    assert paraphrase_after.status == SEMANTIC_HIT
    assert embedder.texts  # asked only after the key was there
    assert (await stats(sidecar))["enabled"] is True
    assert ready_after == 200

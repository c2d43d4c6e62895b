"""Answers larger than `maxResponseBytes`: streamed whole to the caller, never stored, never held (finding 7).

A cacheable answer used to be buffered whole: one 150 MiB embeddings answer (2,048 inputs
of 3,072 dimensions) raised a sidecar's peak RSS by about 750 MiB, an OOM kill at the
injected 64Mi limit. Past the limit the answer now goes on to the caller as it comes, the
recording stops, nothing is stored, and `Cache-Status` says why. The upstream is a fake
that writes answers of any size as it sends them (`tests/fakes/large_answers.py`).

The memory test runs the real `llmcache-sidecar` process and reads its peak resident set
(`VmHWM` in /proc) after a 150 MiB answer: a ceiling with a wide margin, not a timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml
from aiohttp.test_utils import TestServer

from llmcache_sidecar.config import Settings, parse
from llmcache_sidecar.proxy.runtime import response_limit
from tests.conftest import SidecarFactory
from tests.fakes.large_answers import DELTA, EMBEDDINGS, LargeAnswers, make_large_provider
from tests.realparts import free_port, until_healthy

MiB = 2**20
TOO_LARGE = "llmcache; fwd=miss; detail=response-too-large"
COMMAND = str(Path(sys.executable).with_name("llmcache-sidecar"))
ServerFactory = Callable[..., Awaitable[TestServer]]


async def large_upstream(aiohttp_server: ServerFactory, answers: LargeAnswers) -> str:
    server = await aiohttp_server(make_large_provider(answers))
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_past_the_limit_reaches_the_sdk_whole_and_is_not_stored(
    make_sidecar: SidecarFactory, aiohttp_server: ServerFactory, content_length: bool
) -> None:
    answers = LargeAnswers(size=3 * MiB, content_length=content_length, chunk=64 * 1024)
    url = await large_upstream(aiohttp_server, answers)
    sidecar = await make_sidecar(maxResponseBytes=256 * 1024, providers={"openai": {"upstream": url}})
    statuses = []
    async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0) as client:
        for _ in range(2):
            raw = await client.embeddings.with_raw_response.create(model="text-embedding-3-large", input=["hi"] * 4)
            statuses.append(raw.headers["cache-status"])
            embeddings = raw.parse()
            assert len(embeddings.data) == answers.items
            assert len(embeddings.data[-1].embedding) == 3072
            assert embeddings.usage.prompt_tokens == answers.items
    assert statuses == [TOO_LARGE, TOO_LARGE]
    assert answers.calls == 2
    assert sidecar.state.counters.stored == 0


async def test_a_stream_past_the_limit_reaches_the_sdk_whole_and_is_not_stored(
    make_sidecar: SidecarFactory, aiohttp_server: ServerFactory
) -> None:
    """A stream's Cache-Status goes out before its end: it says `stored`, meaning "if it completes
    within the limit" (docs); the second call shows that nothing was."""
    answers = LargeAnswers(size=1 * MiB, chunk=16 * 1024)
    url = await large_upstream(aiohttp_server, answers)
    sidecar = await make_sidecar(maxResponseBytes=128 * 1024, providers={"openai": {"upstream": url}})
    async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0) as client:
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "sing"}], stream=True
            )
            chunks = [chunk async for chunk in stream]
            assert len(chunks) == answers.events
            assert all(chunk.choices[0].delta.content == DELTA for chunk in chunks)
    assert answers.calls == 2
    assert sidecar.state.counters.stored == 0


async def test_callers_who_share_a_flight_past_the_limit_each_get_the_whole_answer(
    make_sidecar: SidecarFactory, aiohttp_server: ServerFactory
) -> None:
    answers = LargeAnswers(size=2 * MiB, content_length=False, chunk=64 * 1024, delay_ms=200)
    url = await large_upstream(aiohttp_server, answers)
    sidecar = await make_sidecar(maxResponseBytes=256 * 1024, providers={"openai": {"upstream": url}})
    length, digest = answers.whole(EMBEDDINGS)

    async def fetch() -> tuple[str, int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{sidecar.url}/openai/v1/embeddings",
                json={"model": "text-embedding-3-large", "input": ["same"]},
                headers={"Authorization": "Bearer sk-a"},
            ) as r,
        ):
            body = await r.read()
            return r.headers["cache-status"], len(body), hashlib.sha256(body).hexdigest()

    results = await asyncio.gather(*(fetch() for _ in range(3)))
    assert sorted(status for status, _, _ in results) == sorted(
        [TOO_LARGE, "llmcache; hit; detail=coalesced", "llmcache; hit; detail=coalesced"]
    )
    assert {(n, d) for _, n, d in results} == {(length, digest)}
    assert answers.calls == 1


async def test_an_answer_within_the_limit_is_still_stored(
    make_sidecar: SidecarFactory, aiohttp_server: ServerFactory
) -> None:
    answers = LargeAnswers(size=512 * 1024, chunk=64 * 1024)
    url = await large_upstream(aiohttp_server, answers)
    sidecar = await make_sidecar(maxResponseBytes=MiB, providers={"openai": {"upstream": url}})
    async with openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key="sk-a", max_retries=0) as client:
        first = await client.embeddings.with_raw_response.create(model="text-embedding-3-large", input=["hi"])
        await sidecar.state.drain(5)
        second = await client.embeddings.with_raw_response.create(model="text-embedding-3-large", input=["hi"])
    assert (first.headers["cache-status"], second.headers["cache-status"]) == (
        "llmcache; fwd=miss; stored",
        "llmcache; hit",
    )
    assert answers.calls == 1


@pytest.mark.parametrize(
    ("limit_file", "expected"),
    [
        ("67108864\n", 4 * MiB),  # the injected 64Mi: 4 MiB
        ("max\n", 64 * MiB),  # cgroup v2 without a limit
        ("9223372036854771712\n", 64 * MiB),  # cgroup v1 without a limit
        ("8388608\n", MiB),  # 8 MiB: never below 1 MiB
        ("4294967296\n", 64 * MiB),  # 4 GiB: never above 64 MiB
        (None, 64 * MiB),  # no cgroup file at all
    ],
)
def test_the_default_limit_is_a_sixteenth_of_the_memory_limit(
    tmp_path: Path, limit_file: str | None, expected: int
) -> None:
    file = tmp_path / "memory.max"
    if limit_file is not None:
        file.write_text(limit_file)
    settings = parse(Settings, {})
    assert response_limit(settings, (str(file),)) == expected
    assert response_limit(parse(Settings, {"maxResponseBytes": 12345}), (str(file),)) == 12345


# --- the real process's memory ----------------------------------------------------------------


@asynccontextmanager
async def running_sidecar(config: dict[str, object], tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """`llmcache-sidecar --config` with `config`; yields (its data URL, its pid)."""
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    file = tmp_path / "sidecar.yaml"
    file.write_text(yaml.safe_dump({"listen": listen, "admin": admin, **config}))
    with (tmp_path / "sidecar.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(COMMAND, "--config", str(file), stderr=log)
        try:
            await until_healthy(f"http://{admin}")
            yield f"http://{listen}", proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of process `pid`, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@pytest.mark.parametrize("content_length", [False, True], ids=["chunked", "content-length"])
async def test_a_150_mib_answer_leaves_the_sidecars_peak_memory_bounded(
    aiohttp_server: ServerFactory, tmp_path: Path, content_length: bool
) -> None:
    """Before: peak RSS +~750 MiB. Now: the limit (4 MiB, the default at a 64Mi memory limit) plus
    buffers; asserted below 64 MiB above the idle sidecar, a wide margin (the bench has the figures)."""
    answers = LargeAnswers(size=150 * MiB, content_length=content_length)
    url = await large_upstream(aiohttp_server, answers)
    length, digest = answers.whole(EMBEDDINGS)
    config = {"maxResponseBytes": 4 * MiB, "providers": {"openai": {"upstream": url}}}
    async with running_sidecar(config, tmp_path) as (sidecar, pid):
        idle, _ = memory_mib(pid)
        received, sha = 0, hashlib.sha256()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{sidecar}/openai/v1/embeddings",
                json={"model": "text-embedding-3-large", "input": ["x"] * 2048},
                headers={"Authorization": "Bearer sk-a"},
            ) as r,
        ):
            assert r.headers["cache-status"] == TOO_LARGE
            async for chunk in r.content.iter_any():
                received += len(chunk)
                sha.update(chunk)
        _, peak = memory_mib(pid)
    assert (received, sha.hexdigest()) == (length, digest)
    assert peak - idle < 64, f"peak RSS {peak:.0f} MiB, idle {idle:.0f} MiB"

"""Record, export, import, replay: the CI workflow of docs/policy.md, through the official SDKs.

Real: two sidecars on real sockets (one recording in front of the provider, one replaying
with a different API key, as a CI job would), their admin ports, the openai SDK, and a
real redis-server for the export of a shared backend. The provider is the local fake
(tests/fakes), which counts the calls that reach it: a replay must add none.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.realparts import RedisServer

QUESTION = [{"role": "user", "content": "What is the capital of Portugal?"}]


def client(sidecar: Sidecar, api_key: str) -> openai.AsyncOpenAI:
    # The SDK's default retries stay on: a replay miss must stop them (x-should-retry: false).
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key=api_key, timeout=20)


async def suite(sidecar: Sidecar, api_key: str) -> dict[str, Any]:
    """What an app's test suite asks: a chat, a streamed chat, an embedding."""
    async with client(sidecar, api_key) as c:
        chat = await c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, temperature=0.9)
        stream = await c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        embedding = await c.embeddings.create(model="text-embedding-3-small", input="Lisbon")
    await sidecar.state.drain(5)
    return {
        "chat": (chat.id, chat.choices[0].message.content),
        "streamed": streamed,
        "embedding": embedding.data[0].embedding,
    }


async def admin_export(sidecar: Sidecar) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/cache/export") as resp:
        return resp.status, await resp.read()


async def admin_import(sidecar: Sidecar, lines: bytes) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{sidecar.admin_url}/cache/import", data=lines) as resp:
        return resp.status, await resp.json()


async def test_a_recording_exported_and_imported_replays_every_answer_without_the_provider(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    rules = [{"when": "true", "action": "bypass", "reason": "never-in-live-mode"}]  # record stores regardless
    recorder = await make_sidecar(entryTransfer=True, recording="record", rules=rules, namespace="laptop")
    recorded = await suite(recorder, "sk-real-key")
    calls = upstream.fake.count()
    status, exported = await admin_export(recorder)

    replayer = await make_sidecar(entryTransfer=True, recording="replay", isolation="namespace", namespace="ci")
    imported_status, imported = await admin_import(replayer, exported)
    replayed = await suite(replayer, "sk-ci-dummy")

    assert status == 200 and len(exported.splitlines()) == 3
    assert (imported_status, imported["imported"], imported["failed"]) == (200, 3, 0)
    assert replayed == recorded
    assert upstream.fake.count() == calls == 3


async def test_a_replay_miss_is_a_504_the_sdk_raises_at_once_with_the_key_and_what_differs(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    recorder = await make_sidecar(entryTransfer=True, recording="record", isolation="namespace")
    async with client(recorder, "sk-a") as c:
        await c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, temperature=0)
    await recorder.state.drain(5)
    _, exported = await admin_export(recorder)
    replayer = await make_sidecar(entryTransfer=True, recording="replay", isolation="namespace")
    await admin_import(replayer, exported)
    calls = upstream.fake.count()

    changed = [{"role": "user", "content": "What is the capital of Spain?"}]
    async with client(replayer, "sk-b") as c:
        with pytest.raises(openai.APIStatusError) as raised:
            await c.chat.completions.create(model="gpt-4o-mini", messages=changed, temperature=0)

    error = raised.value
    assert error.status_code == 504
    assert error.code == "replay_miss"
    assert isinstance(error.body, dict)
    assert error.body["key"] == error.response.headers["x-llmcache-key"]
    assert error.body["nearest"]["differs"] == ["body.messages"]
    assert "differs in body.messages" in error.message
    assert error.response.headers["cache-status"] == "llmcache; detail=replay-miss"
    assert upstream.fake.count() == calls  # not sent upstream
    assert replayer.state.counters.misses == 1  # and not retried by the SDK


async def test_replay_sends_nothing_upstream_even_what_it_could_never_cache(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    replayer = await make_sidecar(entryTransfer=True, recording="replay")
    async with client(replayer, "sk-b") as c:
        with pytest.raises(openai.APIStatusError) as listing:
            await c.models.list()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{replayer.url}/openai/v1/chat/completions", data=b"not json", headers={"Authorization": "Bearer k"}
        ) as resp:
            not_json = (resp.status, await resp.json())

    assert listing.value.status_code == 504
    assert listing.value.code == "replay_refused"
    assert not_json[0] == 504
    assert "not-json" in not_json[1]["error"]["message"]
    assert upstream.fake.count() == 0


async def test_record_mode_stores_what_the_caller_asked_not_to_store(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    recorder = await make_sidecar(entryTransfer=True, recording="record")
    async with client(recorder, "sk-a") as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=QUESTION, extra_headers={"Cache-Control": "no-store"}
        )
        await recorder.state.drain(5)
        again = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=QUESTION)

    assert raw.headers["cache-status"] == "llmcache; fwd=miss; stored"
    assert again.headers["cache-status"] == "llmcache; hit"
    assert upstream.fake.count("/chat/completions") == 1


async def test_export_lists_a_redis_namespace_and_nothing_of_another(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server: RedisServer
) -> None:
    backend = {"type": "redis", "redis": {"url": redis_server.url, "timeoutMs": 5000}}  # no write dropped under load
    ours = await make_sidecar(entryTransfer=True, backend=backend, namespace="export-ours", recording="record")
    theirs = await make_sidecar(entryTransfer=True, backend=backend, namespace="export-ours-too")
    for sidecar, text in ((ours, "one"), (ours, "two"), (theirs, "three")):
        async with client(sidecar, "sk-a") as c:
            await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        await sidecar.state.drain(5)

    status, exported = await admin_export(ours)

    lines = [json.loads(line) for line in exported.splitlines()]
    assert status == 200
    assert sorted(json.loads(line["body"])["choices"][0]["message"]["content"] for line in lines) == [
        "Echo #1: one",
        "Echo #2: two",
    ]


async def test_a_bad_line_is_refused_with_its_number_and_the_others_are_imported(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    recorder = await make_sidecar(entryTransfer=True, recording="record")
    async with client(recorder, "sk-a") as c:
        await c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    await recorder.state.drain(5)
    _, exported = await admin_export(recorder)
    good = exported.strip()
    forged = json.loads(good) | {"status": 500}

    replayer = await make_sidecar(entryTransfer=True, recording="replay")
    status, result = await admin_import(replayer, b"\n".join([b"{not json", json.dumps(forged).encode(), good]))

    assert status == 422
    assert (result["imported"], result["failed"]) == (1, 2)
    assert result["errors"][1] == "line 2: status: only 2xx answers are ever stored"


async def test_export_from_a_backend_that_cannot_list_says_so(make_sidecar: SidecarFactory, tmp_path) -> None:
    sidecar = await make_sidecar(entryTransfer=True, backend={"type": "disk", "disk": {"path": str(tmp_path)}})
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/cache/export") as resp:
        assert resp.status == 501
        assert "cannot list" in (await resp.json())["error"]


async def test_an_imported_line_cannot_bring_headers_a_stored_entry_would_not_keep(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    recorder = await make_sidecar(entryTransfer=True, recording="record", isolation="namespace")
    async with client(recorder, "sk-a") as c:
        recorded = await c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    await recorder.state.drain(5)
    _, exported = await admin_export(recorder)
    line = json.loads(exported)
    line["headers"] += [["Content-Length", "2"], ["Set-Cookie", "session=stolen"], ["Transfer-Encoding", "chunked"]]

    replayer = await make_sidecar(entryTransfer=True, recording="replay", isolation="namespace")
    await admin_import(replayer, json.dumps(line).encode())
    async with client(replayer, "sk-b") as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=QUESTION)

    assert raw.parse().choices[0].message.content == recorded.choices[0].message.content
    assert "set-cookie" not in raw.headers
    assert raw.headers["cache-status"] == "llmcache; hit"


async def test_export_and_import_are_off_unless_configured(make_sidecar: SidecarFactory, upstream: Upstream) -> None:
    """They cross tenants: any container of the pod could read and overwrite another API key's answers."""
    sidecar = await make_sidecar(recording="record")
    await suite(sidecar, "sk-victim")
    status, body = await admin_export(sidecar)
    assert status == 403 and b"entryTransfer: true" in body
    imported_status, imported = await admin_import(sidecar, b"{}")
    assert imported_status == 403 and "entryTransfer: true" in imported["error"]

"""The per-namespace Redis ACL that docs/security.md recommends: enough for a sidecar, and a fence.

The ACL line is read from docs/security.md as written there, so the docs cannot drift from
what is tested. Applied to a real redis-server, it must let a sidecar of its namespace do
everything it does (misses, hits, flushes, cross-pod leases, the semantic index in Redis,
/readyz, /cache/stats) without one denied command, and must stop the same credentials
from touching another namespace, from a sidecar or from a plain Redis client.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from llmcache_sidecar import config
from llmcache_sidecar.backends import build_backend, ledger_of
from tests.conftest import Sidecar, SidecarFactory, Upstream
from tests.e2e.test_admin import admin, call
from tests.semantic.conftest import Embedder, embedder, semantic_settings  # noqa: F401 (fixture)
from tests.semantic.helpers import ask

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
DOCUMENTED_USER = "llmcache-team-a"
DOCUMENTED_NAMESPACE = "team-a"


def documented_acl(namespace: str, password: str) -> list[str]:
    """The `ACL SETUSER` line of docs/security.md, for `namespace`, as arguments."""
    line = next(line for line in DOCS.read_text().splitlines() if line.startswith(f"ACL SETUSER {DOCUMENTED_USER} "))
    line = line.replace(DOCUMENTED_USER, f"llmcache-{namespace}").replace(">CHANGE-ME", f">{password}")
    line = re.sub(rf"~llmc:2:{DOCUMENTED_NAMESPACE}([:/.])", rf"~llmc:2:{namespace}\1", line)
    return line.split()[1:]  # SETUSER ...


async def acl_user(redis_url: str, namespace: str, tmp_path: Path) -> tuple[str, str]:
    """Make `namespace`'s user as documented; its URL (no password) and password file."""
    password = secrets.token_urlsafe(16)
    async with aioredis.Redis.from_url(redis_url) as root:
        await root.execute_command("ACL", *documented_acl(namespace, password))
    file = tmp_path / f"{namespace}.password"
    file.write_text(password)
    host = redis_url.removeprefix("redis://")
    return f"redis://llmcache-{namespace}@{host}", str(file)


def redis_block(url: str, password_file: str) -> dict[str, Any]:
    # A generous timeout: this is about permissions, and a busy machine must not turn a
    # slow answer into a backend error here.
    return {"url": url, "passwordFile": password_file, "timeoutMs": 2000}


async def denied_since(redis_url: str, before: int) -> list[dict[Any, Any]]:
    async with aioredis.Redis.from_url(redis_url) as root:
        log: list[dict[Any, Any]] = await root.execute_command("ACL", "LOG", "128")
    return log[: max(0, len(log) - before)]


async def acl_log_length(redis_url: str) -> int:
    async with aioredis.Redis.from_url(redis_url) as root:
        return len(await root.execute_command("ACL", "LOG", "128"))


async def backend_errors(sidecar: Sidecar) -> tuple[int, int]:
    _, stats = await admin(sidecar, "GET", "/cache/stats")
    return stats["backend"]["errors"], stats["semantic"]["indexErrors"]


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"acl-{abs(hash(request.node.name)) % 10**8}"


async def test_the_documented_acl_is_enough_for_every_part_of_a_sidecar(
    make_sidecar: SidecarFactory,
    upstream: Upstream,
    redis_server: Any,
    embedder: Embedder,  # noqa: F811
    tmp_path: Path,
    namespace: str,
) -> None:
    url, password_file = await acl_user(redis_server.url, namespace, tmp_path)
    before = await acl_log_length(redis_server.url)
    settings: dict[str, Any] = {
        "namespace": namespace,
        "backend": {"type": "redis", "redis": redis_block(url, password_file)},
        "semantic": semantic_settings(embedder, store={"type": "redis", "redis": redis_block(url, password_file)}),
        "telemetry": {"savingsInterval": "100ms"},  # HINCRBY, HINCRBYFLOAT, EXPIRE
    }
    one, two = await make_sidecar(**settings), await make_sidecar(**settings)

    assert (await admin(one, "GET", "/readyz"))[0] == 200
    assert (await call(one))["Cache-Status"] == "llmcache; fwd=miss; stored"  # miss, then SET
    await one.state.drain(5)
    assert (await call(one))["Cache-Status"] == "llmcache; hit"  # GET
    flushed = await admin(one, "POST", "/cache/flush")
    assert flushed[1].get("epoch") == 1, (flushed, await denied_since(redis_server.url, before))  # INCR
    assert (await call(one))["Cache-Status"] == "llmcache; fwd=miss; stored"  # the new epoch, read with GET
    await one.state.drain(5)

    # Cross-pod coalescing: the second pod waits on the first one's lease (SET NX PX, DEL).
    upstream.fake.default_delay_ms = 300
    before_calls = upstream.fake.count("/chat/completions")
    answers = await asyncio.gather(
        ask(one, "which pod asks first?", drain=False), ask(two, "which pod asks first?", drain=False)
    )
    assert upstream.fake.count("/chat/completions") == before_calls + 1
    assert {a.status for a in answers} == {"llmcache; fwd=miss; stored", "llmcache; hit; detail=coalesced-peer"}
    upstream.fake.default_delay_ms = 0

    # The semantic index in Redis: LPUSH, LTRIM, a script (PTTL, PEXPIRE), LRANGE.
    await ask(one, "How do I reset my password?")
    paraphrase = await ask(two, "how can I reset my password")
    assert paraphrase.status == "llmcache; hit; detail=semantic"

    assert (await admin(one, "GET", "/cache/stats"))[0] == 200  # DBSIZE, INFO

    # What the sidecars saved, reported every 100 ms and read back as the operator reads it (HGETALL).
    await asyncio.sleep(0.5)
    reader = build_backend(config.parse(config.BackendSettings, settings["backend"], "backend"))
    try:
        ledger = ledger_of(reader)
        assert ledger is not None
        minute = int(time.time() // 60)
        saved = await ledger.read_savings(namespace, [minute - 1, minute, minute + 1])
    finally:
        await reader.aclose()
    assert saved.hits >= 1 and saved.requests > saved.hits, saved
    assert await backend_errors(one) == (0, 0)
    assert await backend_errors(two) == (0, 0)
    assert await denied_since(redis_server.url, before) == []


async def test_the_documented_acl_keeps_a_sidecar_out_of_another_namespace(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server: Any, tmp_path: Path, namespace: str
) -> None:
    other = f"{namespace}-other"
    url, password_file = await acl_user(redis_server.url, namespace, tmp_path)
    other_url, other_password = await acl_user(redis_server.url, other, tmp_path)
    theirs = await make_sidecar(
        namespace=other, backend={"type": "redis", "redis": redis_block(other_url, other_password)}
    )
    stored_key = (await call(theirs))["x-llmcache-key"]
    await theirs.state.drain(5)

    # Our credentials, with the other namespace's name in the config (a wrong or hostile spec).
    intruder = await make_sidecar(namespace=other, backend={"type": "redis", "redis": redis_block(url, password_file)})
    headers = await call(intruder)
    assert headers["Cache-Status"] != "llmcache; hit"  # answered from upstream, never from their entries
    assert (await admin(intruder, "GET", f"/cache/keys/{stored_key}"))[0] == 404  # NOPERM is a miss
    assert (await admin(intruder, "POST", "/cache/flush"))[0] == 503
    assert (await backend_errors(intruder))[0] > 0

    # The same credentials from a plain client: reading, writing, flushing, listing are all refused.
    async with aioredis.Redis.from_url(url, password=Path(password_file).read_text()) as client:
        for attempt in (
            client.get(stored_key),
            client.set(f"llmc:2:{other}:e0:shared:{'0' * 64}", b"x"),
            client.incr(f"llmc:2:{other}:epoch"),
            client.delete(f"llmc:2:{other}:epoch"),
            client.keys("*"),
        ):
            with pytest.raises(NoPermissionError):
                await attempt
    async with aioredis.Redis.from_url(redis_server.url) as root:
        assert await root.get(f"llmc:2:{other}:epoch") is None  # untouched: never flushed
    async with aiohttp.ClientSession() as http, http.get(f"{theirs.admin_url}/cache/keys/{stored_key}") as r:
        assert r.status == 200  # their entry is still there

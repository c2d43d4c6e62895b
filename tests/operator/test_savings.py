"""status.savings: what a cache saved over the last hour, read from its real Redis as the sidecars keep it."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import redis.asyncio as redis_lib

from llmcache_operator import crd, savings
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar import backends, config
from llmcache_sidecar.backends import Savings
from llmcache_sidecar.wire import keys
from tests.operator.listener import MARKER, listening
from tests.realparts import RedisServer, free_port

NOW = datetime.datetime(2026, 12, 1, 10, 30, 15, tzinfo=datetime.UTC)
MINUTE = int(NOW.timestamp() // 60)


def secrets(values: dict[tuple[str, str], str]) -> Any:
    async def read(ref: SecretKeyRef) -> str | None:
        return values.get((ref.name, ref.key))

    return read


async def compute(raw: dict[str, Any], values: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    return await savings.compute(
        raw, name="shared", namespace="team-a", read_secret=secrets(values or {}), call_timeout=5.0, now=NOW
    )


async def report(redis_url: str, namespace: str, minute: int, delta: Savings, password: str | None = None) -> None:
    """What a sidecar's reporter sends, through the sidecar's own backend code."""
    settings = config.parse(config.BackendSettings, {"type": "redis", "redis": {"url": redis_url}})
    backend = backends.build_backend(settings)
    try:
        ledger = backends.ledger_of(backend)
        assert ledger is not None
        await ledger.add_savings(namespace, minute, delta)
    finally:
        await backend.aclose()


async def test_the_last_sixty_minutes_of_every_pod_make_the_status(redis_server: RedisServer) -> None:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    for minute in (MINUTE, MINUTE - 1, MINUTE - 59):  # three pods' reports within the hour
        await report(redis_server.url, namespace, minute, Savings(requests=10, hits=6, tokens=600, cost_usd=0.1234))
    await report(redis_server.url, namespace, MINUTE - 60, Savings(requests=1000, hits=1000))  # over an hour ago
    await report(redis_server.url, "another-cache", MINUTE, Savings(requests=1000))

    found = await compute({"namespace": namespace, "backend": {"type": "redis", "redis": {"url": redis_server.url}}})
    assert found == {
        "window": "1h",
        "computedAt": "2026-12-01T10:30:15Z",
        "requests": 30,
        "hits": 18,
        "hitRatio": 0.6,
        "tokensSaved": 1800,
        "costSavedUSD": 0.3702,
        "message": None,
    }


async def test_the_cache_namespace_defaults_to_the_kubernetes_one_and_dual_reads_its_redis(
    redis_server: RedisServer,
) -> None:
    await report(redis_server.url, "team-a", MINUTE, Savings(requests=4, hits=1, tokens=40, cost_usd=0.5))
    found = await compute({"backend": {"type": "dual", "redis": {"url": redis_server.url}}})
    assert (found["requests"], found["hits"], found["hitRatio"]) == (4, 1, 0.25)


async def test_a_password_comes_from_the_referenced_secret(redis_with_password: RedisServer) -> None:
    url = f"redis://:{redis_with_password.password}@127.0.0.1:{redis_with_password.port}/0"
    await report(url, "team-p", MINUTE, Savings(requests=2, hits=2))
    raw = {
        "namespace": "team-p",
        "backend": {
            "type": "redis",
            "redis": {"url": redis_with_password.url, "passwordSecretRef": {"name": "r", "key": "p"}},
        },
    }
    assert (await compute(raw, {("r", "p"): redis_with_password.password or ""}))["hitRatio"] == 1.0
    missing = await compute(raw)
    assert missing["requests"] is None and "Secret 'r' (key 'p') not found" in missing["message"]


async def test_no_requests_yet_is_zero_saved_and_no_ratio(redis_server: RedisServer) -> None:
    found = await compute(
        {"namespace": f"idle-{uuid.uuid4().hex[:8]}", "backend": {"type": "redis", "redis": {"url": redis_server.url}}}
    )
    assert (found["requests"], found["hitRatio"], found["tokensSaved"], found["message"]) == (0, None, 0, None)


async def test_a_memory_cache_says_where_its_numbers_are_instead() -> None:
    found = await compute({})
    assert [found[k] for k in ("requests", "hits", "hitRatio", "tokensSaved", "costSavedUSD")] == [None] * 5
    assert found["message"].startswith("The memory backend keeps no shared counts")
    assert "/metrics" in found["message"]


async def test_a_redis_that_does_not_answer_is_said_so() -> None:
    found = await compute({"backend": {"type": "redis", "redis": {"url": f"redis://127.0.0.1:{free_port()}/0"}}})
    assert found["hitRatio"] is None and found["message"].startswith("Not read: cannot connect (ECONNREFUSED")


def test_kubectl_get_shows_the_hit_ratio_and_savings_from_the_status_model() -> None:
    (version,) = crd.build()["spec"]["versions"]
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns["Hit ratio"] == ("number", ".status.savings.hitRatio")
    assert columns["Tokens saved"] == ("integer", ".status.savings.tokensSaved")
    assert columns["USD saved"] == ("number", ".status.savings.costSavedUSD")
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"


# --- What the author of an LLMCache chooses: where the savings are read from (issue 15, finding 2) ------


async def test_status_savings_never_echoes_what_a_backend_answered() -> None:
    """As the probe's message: a Redis error reply with the author's text is named by its class only."""
    async with listening() as listener:
        found = await compute({"backend": {"type": "redis", "redis": {"url": listener.redis_url}}})
    assert listener.connections >= 1
    assert found["message"] == "Not read: the backend answered with an error (ResponseError)."
    assert MARKER not in found["message"]


async def test_status_savings_never_echoes_a_reply_that_is_not_the_backends_protocol() -> None:
    async with listening(reply=f"HTTP/1.1 200 OK\r\nX: {MARKER}\r\n\r\n".encode()) as listener:
        found = await compute({"backend": {"type": "redis", "redis": {"url": listener.redis_url}}})
    assert found["message"].startswith("Not read: ") and MARKER not in found["message"]
    assert "b'" not in found["message"]


async def test_status_savings_never_echoes_a_savings_hash_that_is_not_numbers(redis_server: RedisServer) -> None:
    """Whoever can write the backend (a sidecar's config, another tenant) must not reach the status either."""
    client = redis_lib.from_url(redis_server.url)
    try:
        await client.hset(keys.savings_key("team-a", MINUTE), mapping={"requests": MARKER})
    finally:
        await client.aclose()
    found = await compute({"backend": {"type": "redis", "redis": {"url": redis_server.url}}})
    assert found["requests"] is None and MARKER not in found["message"]


# --- Which caches the operator reads (handlers.read_savings) ----------------------------------------------


class FakeApi:
    """The calls read_savings makes: which namespaces it listed, and the status patches it sent."""

    def __init__(self, caches: list[dict[str, Any]]) -> None:
        self.caches = caches
        self.listed: list[tuple[str, ...]] = []
        self.patched: dict[str, dict[str, Any]] = {}

    async def list_llmcaches(self, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        self.listed.append(tuple(namespaces))
        return self.caches

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        self.patched[name] = status
        return True

    async def read_secret_key(self, namespace: str, ref: SecretKeyRef, usable: Any) -> str | None:
        return None


def an_llmcache(name: str, spec: dict[str, Any], *, allowed: str | None, generation: int = 2) -> dict[str, Any]:
    conditions = [] if allowed is None else [{"type": "Allowed", "status": allowed, "observedGeneration": generation}]
    return {
        "metadata": {"name": name, "namespace": "team-a", "generation": 2},
        "spec": spec,
        "status": {"conditions": conditions, "configHash": "x"},
    }


async def test_only_allowed_caches_of_the_watched_namespaces_are_read(redis_server: RedisServer) -> None:
    """The namespaced Roles allow listing only the watched namespaces; a cache the operator has not
    allowed for its current generation, or that its allowlists refuse now, never has its backend contacted."""
    from llmcache_operator import handlers, injection
    from llmcache_operator.memo import Shared
    from llmcache_operator.options import Options

    async with listening() as listener:
        elsewhere = {"backend": {"type": "redis", "redis": {"url": listener.redis_url}}}
        api = FakeApi([
            an_llmcache("allowed", {"backend": {"type": "redis", "redis": {"url": redis_server.url}}}, allowed="True"),
            an_llmcache("unchecked", elsewhere, allowed=None),
            an_llmcache("older-generation", elsewhere, allowed="True", generation=1),
            an_llmcache("refused", elsewhere, allowed="False"),
            an_llmcache("beyond-the-allowlist", {**elsewhere, "namespace": "team-b"}, allowed="True"),
        ])  # fmt: skip
        options = Options(watch_namespaces=("team-a",))
        rt = Shared(api=api, options=options, policy=injection.Policy())  # type: ignore[arg-type]
        await handlers.read_savings(rt)
    assert api.listed == [("team-a",)]
    assert list(api.patched) == ["allowed"] and api.patched["allowed"]["savings"]["requests"] == 0
    assert listener.connections == 0

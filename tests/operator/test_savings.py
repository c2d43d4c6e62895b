"""status.savings: what a cache saved over the last hour, read from its real Redis as the sidecars keep it."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from llmcache_operator import crd, savings
from llmcache_operator.spec import SecretKeyRef
from llmcache_sidecar import backends, config
from llmcache_sidecar.backends import Savings
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
    assert found["hitRatio"] is None and found["message"].startswith("Not read: the backend did not answer")


def test_kubectl_get_shows_the_hit_ratio_and_savings_from_the_status_model() -> None:
    (version,) = crd.build()["spec"]["versions"]
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns["Hit ratio"] == ("number", ".status.savings.hitRatio")
    assert columns["Tokens saved"] == ("integer", ".status.savings.tokensSaved")
    assert columns["USD saved"] == ("number", ".status.savings.costSavedUSD")
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"

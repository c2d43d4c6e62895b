"""Whose answer is whose: credentials llmcache does not know, identity headers, the tenant salt.

Issue 15, findings 4 and 9. Against the fake provider, which says who called in its
answers' headers (`openai-organization`, `x-request-id`, `anthropic-organization-id`, ...)
and can act as an API gateway that takes a caller's subscription key instead of the
provider's own credential (`FakeProvider.gateway_header`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import anthropic
import openai
import orjson

from tests.conftest import Sidecar, SidecarFactory, Upstream

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
APIM = "Ocp-Apim-Subscription-Key"


async def post(
    sidecar: Sidecar, headers: dict[str, str], path: str = "/openai/v1/chat/completions"
) -> tuple[str, bytes]:
    async with aiohttp.ClientSession() as http, http.post(sidecar.url + path, json=CHAT, headers=headers) as r:
        assert r.status == 200, await r.text()
        return r.headers["cache-status"], await r.read()


def openai_client(sidecar: Sidecar, api_key: str = "sk-a", **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/openai/v1", api_key=api_key, max_retries=0, **kwargs)  # type: ignore[arg-type]


# --- finding 4: a credential in a header llmcache does not know ------------------------------


async def test_callers_known_only_by_a_gateway_header_are_not_cached_by_default(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    """Two tenants of an APIM gateway, each with only their subscription key: never one answer for both."""
    upstream.fake.gateway_header = APIM.lower()
    sidecar = await make_sidecar()

    status_a, answer_a = await post(sidecar, {APIM: "sub-tenant-a"})
    status_b, answer_b = await post(sidecar, {APIM: "sub-tenant-b"})

    assert status_a == status_b == "llmcache; fwd=bypass; detail=no-credential"
    assert answer_a != answer_b
    assert upstream.fake.count("/chat/completions") == 2
    assert sidecar.state.counters.bypasses == 2


async def test_configured_credential_headers_keep_a_gateways_tenants_apart(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    """The SDK's API key is a placeholder the gateway ignores; the subscription key says who calls."""
    upstream.fake.gateway_header = APIM.lower()
    sidecar = await make_sidecar(providers={"openai": {"upstream": upstream.url, "credentialHeaders": [APIM]}})
    statuses = []
    for tenant in ("a", "b", "a"):
        async with openai_client(sidecar, "placeholder", default_headers={APIM: f"sub-tenant-{tenant}"}) as client:
            raw = await client.chat.completions.with_raw_response.create(**CHAT)
            statuses.append(raw.headers["cache-status"])
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; fwd=miss; stored", "llmcache; hit"]
    assert upstream.fake.count("/chat/completions") == 2


async def test_allow_anonymous_caches_callers_without_a_credential_in_one_shared_tenant(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    """For an upstream that needs no key (a local vLLM): opted in, keyless calls share entries."""
    upstream.fake.gateway_header = "x-team"  # the fake then answers without a credential
    sidecar = await make_sidecar(
        providers={"vllm": {"kind": "openai", "upstream": upstream.url, "allowAnonymous": True}}
    )
    first, _ = await post(sidecar, {"x-team": "one"}, "/vllm/v1/chat/completions")
    second, _ = await post(sidecar, {"x-team": "two"}, "/vllm/v1/chat/completions")
    assert (first, second) == ("llmcache; fwd=miss; stored", "llmcache; hit")


async def test_isolation_by_namespace_caches_callers_without_a_credential(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    upstream.fake.gateway_header = APIM.lower()
    sidecar = await make_sidecar(isolation="namespace")
    first, _ = await post(sidecar, {APIM: "sub-tenant-a"})
    second, _ = await post(sidecar, {APIM: "sub-tenant-b"})
    assert (first, second) == ("llmcache; fwd=miss; stored", "llmcache; hit")


# --- finding 9: identity replayed, and the tenant hash ----------------------------------------


async def test_a_hit_never_shows_another_callers_organization_project_or_request_id(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    """Under isolation: namespace two API keys share entries, never each other's identity."""
    sidecar = await make_sidecar(isolation="namespace")
    async with openai_client(sidecar, "sk-a") as a, openai_client(sidecar, "sk-b") as b:
        first = await a.chat.completions.with_raw_response.create(**CHAT)
        second = await b.chat.completions.with_raw_response.create(**CHAT)
    async with anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key="ak-a", max_retries=0) as c:
        claude_first = await c.messages.with_raw_response.create(model="claude-x", max_tokens=64, messages=MESSAGES)
    async with anthropic.AsyncAnthropic(base_url=f"{sidecar.url}/anthropic", api_key="ak-b", max_retries=0) as d:
        claude_second = await d.messages.with_raw_response.create(model="claude-x", max_tokens=64, messages=MESSAGES)

    assert first.headers["openai-organization"].startswith("org-")  # the fake does send them
    assert claude_first.headers["anthropic-organization-id"].startswith("org-")
    assert second.headers["cache-status"] == claude_second.headers["cache-status"] == "llmcache; hit"
    for name in ("openai-organization", "openai-project", "x-request-id"):
        assert name not in second.headers, name
    for name in ("anthropic-organization-id", "request-id"):
        assert name not in claude_second.headers, name
    assert second.request_id is None and claude_second.request_id is None  # what the SDKs expose
    assert second.parse().id == first.parse().id  # the answer itself is replayed

    async with aiohttp.ClientSession() as http:  # and the stored entry has none of them
        async with http.get(f"{sidecar.admin_url}/cache/keys/{second.headers['x-llmcache-key']}") as r:
            stored = {name.lower() for name, _ in (await r.json())["headers"]}
    assert not stored & {"openai-organization", "openai-project", "x-request-id"}
    assert "content-type" in stored


def tenant_part(key: str) -> str:
    return key.split(":")[4]


async def test_the_tenant_part_of_a_key_is_salted_per_install(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    """The same API key has another tenant hash in another install, and it is not the key's plain hash."""
    (tmp_path / "one").write_text("salt-of-install-one\n")
    (tmp_path / "two").write_text("salt-of-install-two\n")
    keys = []
    for salt in ("one", "two", "one"):
        sidecar = await make_sidecar(tenantSaltFile=str(tmp_path / salt))
        async with openai_client(sidecar, "sk-the-same") as client:
            raw = await client.chat.completions.with_raw_response.create(**CHAT)
            keys.append(raw.headers["x-llmcache-key"])
    one, two, one_again = (tenant_part(k) for k in keys)
    assert one != two
    assert one == one_again
    unsalted = hashlib.sha256(b"llmcache-tenant\0Bearer sk-the-same").hexdigest()[:32]  # before the salt
    assert unsalted not in (one, two)


async def test_a_new_salt_turns_entries_keyed_by_credential_into_misses(
    make_sidecar: SidecarFactory, upstream: Upstream, redis_server, tmp_path: Path, request
) -> None:
    (tmp_path / "old").write_text("old-salt")
    (tmp_path / "new").write_text("new-salt")
    backend = {"type": "redis", "redis": {"url": redis_server.url}}
    namespace = request.node.name[:60]
    statuses = []
    for salt in ("old", "new", "old"):
        sidecar = await make_sidecar(backend=backend, namespace=namespace, tenantSaltFile=str(tmp_path / salt))
        async with openai_client(sidecar) as client:
            raw = await client.chat.completions.with_raw_response.create(**CHAT)
            statuses.append(raw.headers["cache-status"])
        await sidecar.state.drain(5)
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; fwd=miss; stored", "llmcache; hit"]


async def test_an_unreadable_salt_file_means_no_caching_never_an_unsalted_key(
    make_sidecar: SidecarFactory, upstream: Upstream, tmp_path: Path
) -> None:
    sidecar = await make_sidecar(tenantSaltFile=str(tmp_path / "not-mounted-yet"))
    status, body = await post(sidecar, {"authorization": "Bearer sk-a"})
    assert status == "llmcache; fwd=bypass; detail=backend-unavailable"
    assert orjson.loads(body)["object"] == "chat.completion"
    async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/readyz") as r:
        assert r.status == 503
        assert "tenantSaltFile" in (await r.json())["error"]

"""Official SDKs and plain clients calling https://api.openai.com through HTTPS_PROXY=<sidecar>.

The clients are configured as an operator-injected pod would be: a proxy, and trust in the
interception CA. Nothing in the request names the sidecar: the SDKs use their default base
URLs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import requests

from tests.transparent.conftest import Pki, Proxy, TlsUpstream

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}


def http_client(proxy: Proxy, pki: Pki) -> httpx.AsyncClient:
    """Plain httpx, as an app's own HTTP code would use it."""
    return httpx.AsyncClient(proxy=proxy.url, verify=pki.client_context())


def sdk_client(proxy: Proxy, pki: Pki) -> httpx2.AsyncClient:
    """The `http_client` the SDKs take: they build on httpx2, the successor of httpx."""
    return httpx2.AsyncClient(proxy=proxy.url, verify=pki.client_context())


async def test_the_openai_sdk_gets_its_second_identical_call_from_the_cache(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with openai.AsyncOpenAI(api_key="sk-a", max_retries=0, http_client=sdk_client(proxy, pki)) as client:
        first = await client.chat.completions.with_raw_response.create(**CHAT)
        second = await client.chat.completions.with_raw_response.create(**CHAT)

    assert str(first.http_request.url) == "https://api.openai.com/v1/chat/completions"
    assert first.headers["cache-status"] == "llmcache; fwd=miss; stored"
    assert second.headers["cache-status"] == "llmcache; hit"
    assert second.parse().id == first.parse().id
    assert tls_upstream.fake.count("/v1/chat/completions") == 1
    assert proxy.service.counters.intercepted == 1  # one tunnel, kept alive for both calls


async def test_a_streamed_answer_is_replayed_through_the_tunnel(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with openai.AsyncOpenAI(api_key="sk-a", max_retries=0, http_client=sdk_client(proxy, pki)) as client:
        texts = []
        for _ in range(2):
            stream = await client.chat.completions.create(**CHAT, stream=True)
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
    assert texts[0] and texts[1] == texts[0]
    assert tls_upstream.fake.count("/v1/chat/completions") == 1


async def test_the_anthropic_sdk_gets_its_second_identical_call_from_the_cache(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    async with anthropic.AsyncAnthropic(api_key="sk-ant", max_retries=0, http_client=sdk_client(proxy, pki)) as c:
        params: dict[str, Any] = {"model": "claude-fake-model", "max_tokens": 64, "messages": MESSAGES}
        first = await c.messages.with_raw_response.create(**params)
        second = await c.messages.with_raw_response.create(**params)

    assert str(first.http_request.url) == "https://api.anthropic.com/v1/messages"
    assert second.headers["cache-status"] == "llmcache; hit"
    assert (await second.parse()).id == (await first.parse()).id
    assert tls_upstream.fake.count("/v1/messages") == 1


async def test_plain_httpx_keeps_one_tunnel_alive_for_several_requests(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    headers = {"Authorization": "Bearer sk-a"}
    async with http_client(proxy, pki) as http:
        statuses = []
        for n in range(3):
            body = {**CHAT, "seed": n % 2}
            r = await http.post("https://api.openai.com/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200
            statuses.append(r.headers["cache-status"])
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; fwd=miss; stored", "llmcache; hit"]
    assert proxy.service.counters.connects == 1
    assert tls_upstream.fake.count("/v1/chat/completions") == 2


async def test_requests_in_a_thread_gets_a_hit_through_the_proxy(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    def call() -> list[str]:
        with requests.Session() as session:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would win over an explicit verify
            out = []
            for _ in range(2):
                r = session.post(
                    "https://api.openai.com/v1/chat/completions",
                    json=CHAT,
                    headers={"Authorization": "Bearer sk-a"},
                    proxies={"https": proxy.url},
                    verify=str(pki.bundle_file),
                    timeout=10,
                )
                r.raise_for_status()
                out.append(r.headers["Cache-Status"])
            return out

    assert await asyncio.to_thread(call) == ["llmcache; fwd=miss; stored", "llmcache; hit"]


async def test_intercepted_and_reverse_proxy_calls_share_one_entry(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    """The data port still serves /<provider>/... and both modes build the same key."""
    async with openai.AsyncOpenAI(
        api_key="sk-a", max_retries=0, base_url=f"{proxy.url}/openai/v1", http_client=httpx2.AsyncClient()
    ) as direct:
        first = await direct.chat.completions.with_raw_response.create(**CHAT)
    async with openai.AsyncOpenAI(api_key="sk-a", max_retries=0, http_client=sdk_client(proxy, pki)) as proxied:
        second = await proxied.chat.completions.with_raw_response.create(**CHAT)
    assert first.headers["cache-status"] == "llmcache; fwd=miss; stored"
    assert second.headers["cache-status"] == "llmcache; hit"
    assert first.headers["x-llmcache-key"] == second.headers["x-llmcache-key"]


_ENV_SCRIPT = textwrap.dedent(
    """
    import json, anthropic, openai, requests
    client = openai.OpenAI(max_retries=0)
    out = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        out.append(raw.headers["cache-status"])
    claude = anthropic.Anthropic(max_retries=0)
    for _ in range(2):
        raw = claude.messages.with_raw_response.create(model="claude-fake-model", max_tokens=64, messages=MESSAGES)
        out.append(raw.headers["cache-status"])
    r = requests.post("https://api.openai.com/v1/chat/completions", timeout=10,
                      json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers={"Authorization": "Bearer sk-env"})
    out.append(r.headers["Cache-Status"])
    print(json.dumps(out))
    """
)


async def test_proxy_and_trust_from_environment_variables_alone(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    """A separate process configured only by the variables the operator sets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("OPENAI_", "ANTHROPIC_", "SSL_", "REQUESTS_", "CURL_"))
    }
    env |= {
        "HTTPS_PROXY": proxy.url,
        "NO_PROXY": "localhost,127.0.0.1,.svc,.cluster.local",
        "SSL_CERT_FILE": str(pki.bundle_file),
        "REQUESTS_CA_BUNDLE": str(pki.bundle_file),
        "OPENAI_API_KEY": "sk-env",
        "ANTHROPIC_API_KEY": "sk-ant-env",
    }
    script = f"MESSAGES = {json.dumps(MESSAGES)}\n{_ENV_SCRIPT}"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    miss, hit = "llmcache; fwd=miss; stored", "llmcache; hit"
    assert json.loads(out) == [miss, hit, miss, hit, hit]  # openai, openai, anthropic, anthropic, requests
    assert tls_upstream.fake.count("/v1/chat/completions") == 1
    assert tls_upstream.fake.count("/v1/messages") == 1


async def test_azure_and_gemini_hosts_are_intercepted_and_cached_too(
    proxy: Proxy, pki: Pki, tls_upstream: TlsUpstream
) -> None:
    calls = [
        (
            "https://myres.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
            {"api-key": "az-key"},
            {"messages": MESSAGES},
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
            {"x-goog-api-key": "g-key"},
            {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        ),
    ]
    async with http_client(proxy, pki) as http:
        for url, headers, body in calls:
            statuses = []
            for _ in range(2):
                r = await http.post(url, json=body, headers=headers)
                assert r.status_code == 200, r.text
                statuses.append(r.headers["cache-status"])
            assert statuses == ["llmcache; fwd=miss; stored", "llmcache; hit"], url
    assert tls_upstream.fake.count("/chat/completions") == 1
    assert tls_upstream.fake.count(":generateContent") == 1

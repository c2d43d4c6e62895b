"""Bad input gets a clear answer and loses nothing: the call still reaches the provider."""

from __future__ import annotations

import gzip

import aiohttp

from tests.conftest import Sidecar, SidecarFactory, Upstream


async def test_a_body_that_is_not_json_passes_through_uncached(sidecar: Sidecar, upstream: Upstream) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            data=b"{not json",
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.headers["Cache-Status"] == "llmcache; fwd=bypass; detail=not-json"
        assert resp.status == 400  # the provider's own answer to a malformed body
    assert upstream.fake.received[-1].body == b"{not json"


async def test_a_gzip_compressed_body_goes_upstream_decoded_and_is_cached(sidecar: Sidecar, upstream: Upstream) -> None:
    # aiohttp's server decodes a compressed request body; what goes upstream is that
    # decoded body, so it must not still be labelled gzip (the provider would fail to decode it).
    body = b'{"model": "m", "messages": [{"role": "user", "content": "compressed"}]}'
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(
                f"{sidecar.url}/openai/v1/chat/completions",
                data=gzip.compress(body),
                headers={"Authorization": "Bearer k", "Content-Type": "application/json", "Content-Encoding": "gzip"},
            ) as resp:
                assert resp.status == 200, await resp.text()
                statuses.append(resp.headers["Cache-Status"])
    assert statuses == ["llmcache; fwd=miss; stored", "llmcache; hit"]
    assert upstream.fake.count() == 1
    assert upstream.fake.received[-1].body == body
    assert "content-encoding" not in upstream.fake.received[-1].headers


async def test_a_gzip_compressed_body_that_is_not_cacheable_goes_upstream_decoded(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            data=gzip.compress(b"{not json"),
            headers={"Authorization": "Bearer k", "Content-Type": "application/json", "Content-Encoding": "gzip"},
        ) as resp,
    ):
        assert resp.headers["Cache-Status"] == "llmcache; fwd=bypass; detail=not-json"
        assert resp.status == 400  # the provider's own answer to a malformed body, not a decoding failure
    assert upstream.fake.received[-1].body == b"{not json"


async def test_a_body_over_the_limit_passes_through_whole_and_uncached(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(maxBodyBytes=1024)
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as http:
        for _ in range(2):
            async with http.post(f"{sidecar.url}/openai/v1/chat/completions", json=big) as resp:
                assert resp.status == 200
                assert resp.headers["Cache-Status"] == "llmcache; fwd=bypass; detail=too-large"
    assert upstream.fake.count() == 2
    assert upstream.fake.received[-1].json()["messages"][0]["content"] == "x" * 5000


async def test_a_chunked_body_over_the_limit_passes_through_whole(
    make_sidecar: SidecarFactory, upstream: Upstream
) -> None:
    sidecar = await make_sidecar(maxBodyBytes=1024)
    payload = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"y" * 4000 + b'"}]}'

    async def chunks():
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            data=chunks(),
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 200
    assert upstream.fake.received[-1].body == payload


async def test_an_unknown_provider_gets_a_clear_error_and_nothing_is_forwarded(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sidecar.url}/nosuch/v1/chat/completions", json={}) as resp:
            assert resp.status == 404
            error = (await resp.json())["error"]
    assert "no provider named 'nosuch'" in error["message"]
    assert upstream.fake.count() == 0


async def test_an_unreachable_upstream_gives_a_502_that_sdks_can_read(make_sidecar: SidecarFactory) -> None:
    sidecar = await make_sidecar(providers={"openai": {"upstream": "http://127.0.0.1:9"}})
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            json={"model": "m", "messages": []},
            headers={"Authorization": "Bearer k"},
        ) as resp,
    ):
        assert resp.status == 502
        assert resp.headers["Cache-Status"] == "llmcache; fwd=miss; detail=upstream-unreachable"
        assert resp.headers["x-llmcache-key"].startswith("llmc:")
        error = (await resp.json())["error"]
    assert error["code"] == "upstream_unreachable"


async def test_a_body_that_says_gzip_and_is_not_gets_a_clear_400(sidecar: Sidecar, upstream: Upstream) -> None:
    """It cannot be decoded, so nothing could be forwarded that the provider would read either."""
    before = upstream.fake.count()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sidecar.url}/openai/v1/chat/completions",
            data=b'{"model": "m", "messages": []}',
            headers={"Authorization": "Bearer k", "Content-Type": "application/json", "Content-Encoding": "gzip"},
        ) as resp,
    ):
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert "gzip" in error["message"] and error["code"] == "undecodable_body"
    assert upstream.fake.count() == before

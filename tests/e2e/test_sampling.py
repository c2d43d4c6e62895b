"""Which requests are traced: parent-based, 1% of the roots by default, the standard variables override.

Real parts: the `llmcache-sidecar` command exporting OTLP/HTTP to a receiver of ours
(`test_otlp_and_logs.Receiver`), and the in-process sidecar with the SDK's in-memory
exporter. The provider is the fake one (tests/fakes/provider.py), which records the
`traceparent` each call brought.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import make_mocked_request

from llmcache_sidecar import config, telemetry
from llmcache_sidecar.telemetry import Aggregates, PriceBook, RequestTrace
from tests.conftest import Otel, SidecarFactory, Upstream
from tests.e2e.test_otlp_and_logs import Receiver
from tests.realparts import free_port, until_healthy

SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
UNSET = {"OTEL_TRACES_SAMPLER": "", "OTEL_TRACES_SAMPLER_ARG": ""}


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


@asynccontextmanager
async def cli_sidecar(
    tmp_path: Path, upstream: Upstream, collector: str, *, settings: dict[str, Any], env: dict[str, str]
) -> AsyncIterator[str]:
    """The real command exporting to `collector`; yields its data URL. Spans are flushed at SIGTERM."""
    port, admin = free_port(), free_port()
    path = tmp_path / f"config-{port}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "admin": f"127.0.0.1:{admin}",
                "providers": {"openai": {"upstream": upstream.url}},
                **settings,
            }
        )
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmcache_sidecar.cli",
        "--config",
        str(path),
        env={**base, "OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_METRIC_EXPORT_INTERVAL": "60000", **env},
        stderr=subprocess.PIPE,
    )
    try:
        await until_healthy(f"http://127.0.0.1:{admin}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, stderr.decode()[-2000:]


async def ask(url: str, prompt: str, **headers: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
            headers={"Authorization": "Bearer sk-sampling", **headers},
        ) as r:
            await r.read()
            return r.headers["Cache-Status"]


async def test_by_default_a_sampled_caller_is_traced_and_continued_upstream_and_an_unsampled_one_is_not(
    aiohttp_server, upstream: Upstream, tmp_path: Path
) -> None:
    receiver = Receiver()
    collector = str((await aiohttp_server(receiver.app())).make_url("")).rstrip("/")
    async with cli_sidecar(tmp_path, upstream, collector, settings={}, env=UNSET) as url:
        assert await ask(url, "sampled", traceparent=SAMPLED) == "llmcache; fwd=miss; stored"
        sampled_call = upstream.fake.received[-1].headers["traceparent"]
        assert await ask(url, "unsampled", traceparent=UNSAMPLED) == "llmcache; fwd=miss; stored"
        unsampled_call = upstream.fake.received[-1].headers["traceparent"]

    spans = receiver.spans()
    assert {s.trace_id.hex() for s in spans} == {trace_id(SAMPLED)}
    assert sorted(s.name for s in spans) == [
        "POST",
        "POST /openai/chat/completions",
        "llmcache.lookup",
        "llmcache.store",
    ]
    (client,) = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    # The caller's sampled trace goes on at the provider, under the sidecar's client span.
    assert sampled_call == f"00-{trace_id(SAMPLED)}-{client.span_id.hex()}-01"
    # An unsampled caller's context reaches the provider as it came: no span of ours in between.
    assert unsampled_call == UNSAMPLED


async def test_otel_traces_sampler_replaces_the_configured_ratio(
    aiohttp_server, upstream: Upstream, tmp_path: Path
) -> None:
    receiver = Receiver()
    collector = str((await aiohttp_server(receiver.app())).make_url("")).rstrip("/")
    everything = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}
    async with cli_sidecar(
        tmp_path, upstream, collector, settings={"telemetry": {"traceSampleRatio": 0}}, env=everything
    ) as url:
        for i in range(3):
            await ask(url, f"root {i}")
    assert len([s for s in receiver.spans() if s.kind == s.SPAN_KIND_SERVER]) == 3

    # A sampler the sidecar does not implement itself is the SDK's to run: always_off drops
    # even a caller's sampled trace.
    receiver.traces.clear()
    nothing = {"OTEL_TRACES_SAMPLER": "always_off", "OTEL_TRACES_SAMPLER_ARG": ""}
    async with cli_sidecar(
        tmp_path, upstream, collector, settings={"telemetry": {"traceSampleRatio": 1}}, env=nothing
    ) as url:
        await ask(url, "root", traceparent=SAMPLED)
        assert upstream.fake.received[-1].headers["traceparent"] == SAMPLED
    assert receiver.spans() == []


async def test_an_unsampled_caller_leaves_no_span_and_its_traceparent_goes_upstream_unchanged(
    make_sidecar: SidecarFactory, upstream: Upstream, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    sidecar = await make_sidecar(telemetry={"traceSampleRatio": 1})  # every root would be traced
    otel.spans.clear()
    for _ in range(2):  # a miss, then a hit
        await ask(sidecar.url, "unsampled in process", traceparent=UNSAMPLED)
        await sidecar.state.drain(5)
    assert otel.spans.get_finished_spans() == ()
    assert upstream.fake.received[-1].headers["traceparent"] == UNSAMPLED

    await ask(sidecar.url, "sampled in process", traceparent=SAMPLED)
    await sidecar.state.drain(5)
    assert {f"{s.context.trace_id:032x}" for s in otel.spans.get_finished_spans()} == {trace_id(SAMPLED)}


def test_one_root_request_in_a_hundred_is_traced_by_default(otel: Otel) -> None:
    settings = config.parse(config.Settings, {})
    assert settings.telemetry.trace_sample_ratio == 0.01
    ratio = telemetry.root_ratio(settings.telemetry, env={})
    assert ratio == 0.01
    telemetry.refresh_tracing_flag()  # the session's SDK (tests/conftest.py) is a real one
    otel.spans.clear()
    request = make_mocked_request("POST", "/openai/v1/chat/completions")
    traced = 0
    for _ in range(5000):
        tel = RequestTrace(request, "openai", "openai", "chat/completions", ratio)
        traced += tel.traced
        tel.finish(http_status=200, aggregates=Aggregates(), prices=PriceBook({}))
    # Binomial(5000, 0.01): mean 50, standard deviation 7; these bounds are over 4.5 deviations away.
    assert 18 <= traced <= 82
    assert len(otel.spans.get_finished_spans()) == traced


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 0.05),
        ({"OTEL_TRACES_SAMPLER": ""}, 0.05),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, 0.25),
        ({"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": " 0.5 "}, 0.5),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"}, 0.05),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, 0.05),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, None),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, None),
    ],
)
def test_the_standard_sampler_variables_override_the_setting(env: dict[str, str], expected: float | None) -> None:
    settings = config.parse(config.Settings, {"telemetry": {"traceSampleRatio": 0.05}})
    assert telemetry.root_ratio(settings.telemetry, env=env) == expected


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_a_sample_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(config.ConfigError, match=r"telemetry\.traceSampleRatio"):
        config.parse(config.Settings, {"telemetry": {"traceSampleRatio": ratio}})

"""`make bench`: what the sidecar costs and saves, measured with wrk over loopback.

Scenarios, each at concurrency 1 and 32 (keep-alive connections, like SDK clients):
- direct:        wrk -> fake provider (no sidecar), every request different
- miss:          wrk -> sidecar (memory) -> fake provider, every request different
- hit/memory:    wrk -> sidecar (memory backend), the same request every time
- hit/redis:     wrk -> sidecar (redis backend), the same request every time
- baseline/redis: wrk -> a minimal aiohttp server that only hashes the raw body and
                  does one Redis GET (the floor a Redis-backed cache can reach in Python)
Plus the sidecar's resident memory when idle and after the runs, and:
- telemetry: memory hits with telemetry off, metrics only, and metrics + traces at the
  default sampling (1% of roots) and at 100%, exported over OTLP/HTTP to a local sink;
  and the OpenTelemetry SDK's own cost of one traced hit (bench/trace_floor.py)
- the two targets compared robustly: telemetry on against off, and the Redis hit against
  the floor, with the servers up at once and loaded in turn over several rounds, reporting
  median requests/s and the median CPU time per request of each server process
- per backend: the sidecar's hit throughput on disk, dual, Redis Cluster, and S3, GCS and
  Azure Blob through their local emulators (which bound those figures)
- streaming: time to first byte of a streamed miss and of a streamed hit
- coalescing: a burst of 50 identical requests with coalescing on and off
- policy: memory hits with no rules against the same with five CEL rules (interleaved), the
  RSS each sidecar then has, and what deciding costs a request whose body this sidecar has
  not seen yet (a hit on an entry another pod stored): the only case that evaluates rules

This is a benchmark, not a test: it prints figures and asserts nothing. The machine
it runs on matters (docs/benchmarks.md says which one gave the recorded figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests import realparts
from tests.realparts import free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SYSTEM = "You are a helpful assistant for a travel agency. " * 20  # a realistic ~1 KiB system prompt
SAME_BODY_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"%s"},{"role":"user","content":"What is the best time to visit Lisbon?"}],"temperature":0}'
"""
UNIQUE_BODY_LUA = """
local counter = 0
function setup(thread) thread:set("id", math.random(1, 1000000000)) end
function init(args) math.randomseed(os.time() + (id or 0)) end
function request()
  counter = counter + 1
  local body = string.format('{"model":"gpt-4o-mini","messages":[{"role":"system","content":"%s"},{"role":"user","content":"Question %%d-%%d"}]}', counter, math.random(1, 1000000000))
  return wrk.format("POST", nil, {["Content-Type"]="application/json", ["Authorization"]="Bearer sk-bench"}, body)
end
"""


@dataclass
class Running:
    url: str
    admin: str
    pid: int

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.admin + "/cache/stats", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


@dataclass
class Result:
    name: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    hit_share: float | None = None
    requests: int = 0


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        print("unparsed latency:", repr(value))
        return float("nan")
    number, unit = float(m.group(1)), m.group(2)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


REPEAT = 3
"""Each scenario runs this many times and the median run (by requests/s) is reported:
the machines this runs on are small and shared, and one run can be off by a factor of two."""


def wrk(name: str, url: str, script: str, concurrency: int, seconds: int, sidecar: Running | None = None) -> Result:
    """The median of REPEAT wrk runs; with `sidecar`, also the share of its lookups that hit."""
    before = sidecar.stats() if sidecar is not None else None
    runs = sorted((_wrk_once(name, url, script, concurrency, seconds) for _ in range(REPEAT)), key=lambda r: r.rps)
    result = runs[len(runs) // 2]
    if sidecar is not None and before is not None:
        after = sidecar.stats()
        hits = int(after["hits"]) - int(before["hits"])  # type: ignore[call-overload]
        lookups = hits + int(after["misses"]) - int(before["misses"])  # type: ignore[call-overload]
        result.hit_share = hits / lookups if lookups else None
    return result


def _wrk_once(name: str, url: str, script: str, concurrency: int, seconds: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script % SYSTEM)
    threads = 1 if concurrency == 1 else 2
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", f.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(name, concurrency, rps, p50, p99, errors, requests=requests)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Target:
    name: str
    url: str
    pid: int
    sidecar: Running | None = None


@dataclass
class Compared:
    name: str
    rps: float
    cpu_us: float
    """The server process's CPU time per request served, in microseconds."""
    runs: list[tuple[float, float]]
    hit_share: float | None
    median_run: Result
    """The wrk run with the median requests/s, for the main table (latencies, errors)."""


def interleaved(targets: list[Target], script: str, concurrency: int, seconds: int, rounds: int) -> list[Compared]:
    """Each target loaded in turn, `rounds` times over, so that a busy minute hurts them all alike.

    Reports the median requests/s and the median CPU time per request of each target's
    own process: on a shared machine throughput varies by up to 2x from one minute to the
    next, while the CPU a request costs its server moves much less.
    """
    runs: dict[str, list[tuple[float, float]]] = {t.name: [] for t in targets}
    results: dict[str, list[Result]] = {t.name: [] for t in targets}
    before = {t.name: t.sidecar.stats() for t in targets if t.sidecar is not None}
    for t in targets:
        _wrk_once(t.name, t.url, script, concurrency, 1)  # warm up: connections, first entry
    for _ in range(rounds):
        for t in targets:
            used = cpu_seconds(t.pid)
            result = _wrk_once(t.name, t.url, script, concurrency, seconds)
            used = cpu_seconds(t.pid) - used
            runs[t.name].append((result.rps, used / max(result.requests, 1) * 1e6))
            results[t.name].append(result)
    compared = []
    for t in targets:
        share = None
        if t.sidecar is not None:
            after = t.sidecar.stats()
            hits = int(after["hits"]) - int(before[t.name]["hits"])  # type: ignore[call-overload]
            lookups = hits + int(after["misses"]) - int(before[t.name]["misses"])  # type: ignore[call-overload]
            share = hits / lookups if lookups else None
        rps = statistics.median(r for r, _ in runs[t.name])
        cpu = statistics.median(c for _, c in runs[t.name])
        median_run = sorted(results[t.name], key=lambda r: r.rps)[len(results[t.name]) // 2]
        median_run.hit_share = share
        compared.append(Compared(t.name, rps, cpu, runs[t.name], share, median_run))
    return compared


def comparison_table(title: str, rows: list[Compared], concurrency: int) -> str:
    """Ratios against the first row."""
    ref = rows[0]
    lines = [
        f"{title} (concurrency {concurrency}, {len(ref.runs)} interleaved rounds, medians)",
        "| server | requests/s | vs first | CPU µs/request | vs first | hits | requests/s of each round |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        hits = f"{r.hit_share:.0%}" if r.hit_share is not None else ""
        each = " ".join(f"{rps:,.0f}" for rps, _ in r.runs)
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.rps / ref.rps:.2f}x | {r.cpu_us:.1f} | {r.cpu_us / ref.cpu_us:.2f}x "
            f"| {hits} | {each} |"
        )
    return "\n".join(lines)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def process(args: list[str], **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, cwd=ROOT, text=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def fake_provider() -> Iterator[str]:
    with process([PY, "-m", "tests.fakes.provider", "--port", "0"], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        yield url


@contextlib.contextmanager
def sidecar(
    upstream: str,
    backend: dict[str, object],
    workdir: Path,
    *,
    extra: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Running]:
    """The real `llmcache-sidecar` command in a process of its own, in front of `upstream`."""
    port, admin = free_port(), free_port()
    cfg = workdir / f"sidecar-{port}.yaml"
    settings = {
        "listen": f"127.0.0.1:{port}",
        "admin": f"127.0.0.1:{admin}",
        "backend": backend,
        "providers": {"openai": {"upstream": upstream}},
        **(extra or {}),
    }
    cfg.write_text(yaml.safe_dump(settings))
    command = [str(Path(PY).parent / "llmcache-sidecar"), "--config", str(cfg), "--log-level", "WARNING"]
    with process(command, env={**os.environ, **(env or {})}) as proc:
        wait_http(f"http://127.0.0.1:{admin}/healthz")
        yield Running(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", proc.pid)


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts and drops everything (the cost measured is the sidecar's)."""
    port = free_port()
    with process([PY, "-m", "bench.otlp_sink", "--port", str(port)]):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def baseline(redis_url: str) -> Iterator[str]:
    port = free_port()
    with process([PY, "-m", "bench.baseline", "--port", str(port), "--redis", redis_url]):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | concurrency | requests/s | p50 ms | p99 ms | non-2xx | hits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        hits = f"{r.hit_share:.0%}" if r.hit_share is not None else ""
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} | {hits} |"
        )
    return "\n".join(lines)


FLOOR_OFF = "floor: aiohttp, no spans"
FLOOR_ON = "floor: aiohttp + the SDK's spans of a hit"
METRICS_ON = "hit (memory), metrics on"
TRACED_ALL = "hit (memory), metrics + traces 100% + OTLP"


def telemetry_runs(provider: str, work: Path, seconds: int, path: str, rounds: int) -> list[Compared]:
    """Memory hits with telemetry off, metrics only, metrics + traces at the default sampling, and at 100%.

    The traced sidecars export over OTLP/HTTP to a local sink. Beside them, the SDK's
    floor: a minimal aiohttp server without and with the spans of a traced hit
    (bench/trace_floor.py). All six run at once and are loaded in turn (see
    `interleaved`). wrk sends no `traceparent`: every request is a root, traced with
    the sidecar's root ratio.
    """
    unset = {"OTEL_TRACES_SAMPLER": "", "OTEL_TRACES_SAMPLER_ARG": ""}
    with otlp_sink() as sink, contextlib.ExitStack() as stack:
        variants = [
            ("hit (memory), telemetry off", {"telemetry": {"metrics": False, "traces": False}}),
            (METRICS_ON, {}),
            ("hit (memory), metrics + traces 1% (default) + OTLP", {"telemetry": {"otlpEndpoint": sink}}),
            (TRACED_ALL, {"telemetry": {"otlpEndpoint": sink, "traceSampleRatio": 1}}),
        ]
        targets = []
        for name, extra in variants:
            running = stack.enter_context(sidecar(provider, {"type": "memory"}, work, extra=extra, env=unset))
            targets.append(Target(name, running.url + path, running.pid, running))
        for name, traces in ((FLOOR_OFF, []), (FLOOR_ON, ["--traces", sink])):
            port = free_port()
            floor = stack.enter_context(process([PY, "-m", "bench.trace_floor", "serve", "--port", str(port), *traces]))
            wait_http(f"http://127.0.0.1:{port}/healthz")
            targets.append(Target(name, f"http://127.0.0.1:{port}{path}", floor.pid))
        return interleaved(targets, SAME_BODY_LUA, 32, seconds, rounds)


def trace_loop() -> dict[str, float]:
    """The SDK's CPU per traced hit in a tight loop (bench/trace_floor.py loop), in a process of its own."""
    out = subprocess.run([PY, "-m", "bench.trace_floor", "loop"], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def against_floor(rows: list[Compared], loop: dict[str, float]) -> str:
    """What tracing every hit costs per request, against the SDK's own cost of the same spans."""
    cpu = {r.name: r.cpu_us for r in rows}
    ours = cpu[TRACED_ALL] - cpu[METRICS_ON]
    floor = cpu[FLOOR_ON] - cpu[FLOOR_OFF]
    narrow = loop["spans_us"] + loop["encode_us"]
    return (
        f"Traces at 100% add {ours:.1f} µs of CPU per hit over metrics on. The SDK's floor, the same spans made"
        f" and exported by a minimal aiohttp server under the same load: {floor:.1f} µs, so"
        f" {ours / floor:.2f}x the floor. In a tight loop (no server, no batch processor, no HTTP):"
        f" {narrow:.1f} µs (spans {loop['spans_us']:.1f}, OTLP encoding {loop['encode_us']:.1f}),"
        f" {ours / narrow:.2f}x that."
    )


def redis_against_floor(
    provider: str, redis_url: str, work: Path, seconds: int, path: str, rounds: int
) -> list[Compared]:
    """The Redis-backed sidecar's hit against the hash + GET floor, all up at once, loaded in turn.

    Two floors: the issue's (its GET bounded by a 50 ms socket timeout) and the same
    without any timeout, the leanest that redis-py allows.
    """
    with contextlib.ExitStack() as stack:
        targets = []
        for name, timeout in (("baseline: hash + Redis GET", "0.05"), ("baseline, no Redis timeout", "0")):
            floor_port = free_port()
            args = ["--port", str(floor_port), "--redis", redis_url, "--socket-timeout", timeout]
            floor = stack.enter_context(process([PY, "-m", "bench.baseline", *args]))
            wait_http(f"http://127.0.0.1:{floor_port}/healthz")
            targets.append(Target(name, f"http://127.0.0.1:{floor_port}{path}", floor.pid))
        running = stack.enter_context(sidecar(provider, {"type": "redis", "redis": {"url": redis_url}}, work))
        targets.append(Target("hit (redis)", running.url + path, running.pid, running))
        return interleaved(targets, SAME_BODY_LUA, 32, seconds, rounds)


def backend_runs(provider: str, work: Path, seconds: int, path: str) -> list[Result]:
    results = []
    s3_env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    for sub in ("cluster", "moto", "gcs", "azurite"):
        (work / sub).mkdir(exist_ok=True)
    with (
        realparts.redis_cluster(work / "cluster") as cluster,
        realparts.moto_s3(work / "moto") as moto,
        realparts.gcs_emulator(work / "gcs", "bench") as gcs,
        realparts.azurite(work / "azurite") as azurite,
    ):
        from azure.storage.blob import ContainerClient

        connection = realparts.azurite_connection_string(azurite.port)
        with ContainerClient.from_connection_string(connection, "bench") as container:
            container.create_container()
        (work / "azure-connection").write_text(connection + "\n")
        _create_bucket(moto.port)
        s3 = {
            "bucket": "bench",
            "endpointUrl": f"http://127.0.0.1:{moto.port}",
            "region": "us-east-1",
            "addressingStyle": "path",
            "timeoutMs": 2000,  # an emulator is measured, not failed open
        }
        backends: list[tuple[str, dict[str, object], dict[str, str]]] = [
            ("disk", {"type": "disk", "disk": {"path": str(work / "disk")}}, {}),
            (
                "dual (memory over redis cluster)",
                {"type": "dual", "redis": {"url": f"redis://127.0.0.1:{cluster.port}/0", "cluster": True}},
                {},
            ),
            (
                "redis cluster",
                {"type": "redis", "redis": {"url": f"redis://127.0.0.1:{cluster.port}/0", "cluster": True}},
                {},
            ),
            ("s3 (moto)", {"type": "s3", "s3": s3}, s3_env),
            (
                "gcs (gcp-storage-emulator)",
                {
                    "type": "gcs",
                    "gcs": {"bucket": "bench", "endpointUrl": f"http://127.0.0.1:{gcs.port}", "timeoutMs": 2000},
                },
                {},
            ),
            (
                "azureBlob (azurite)",
                {
                    "type": "azureBlob",
                    "azureBlob": {
                        "container": "bench",
                        "connectionStringFile": str(work / "azure-connection"),
                        "timeoutMs": 2000,
                    },
                },
                {},
            ),
        ]
        for name, backend, env in backends:
            with sidecar(provider, backend, work, env=env) as running:
                results.append(wrk(f"hit ({name})", running.url + path, SAME_BODY_LUA, 32, seconds, running))
    return results


def _create_bucket(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/bench", method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def streaming_and_coalescing(provider: str, work: Path) -> list[str]:
    """Time to first byte of streamed answers, and a burst of identical requests."""
    import asyncio

    import aiohttp

    lines = []
    stream_body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "stream"}]}

    async def first_byte(url: str, body: dict[str, object]) -> float:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-bench"}) as http:
            started = time.perf_counter()
            async with http.post(url, json=body, headers={"x-fake-chunk-delay-ms": "20"}) as resp:
                await resp.content.readany()
                took = time.perf_counter() - started
                await resp.read()
                return took

    async def burst(url: str, n: int, round_: int) -> float:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"burst {round_}"}]}
        async with aiohttp.ClientSession(
            headers={"Authorization": "Bearer sk-bench", "x-fake-delay-ms": "300"}
        ) as http:

            async def one() -> None:
                async with http.post(url, json=body) as resp:
                    await resp.read()

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return time.perf_counter() - started

    with sidecar(provider, {"type": "memory"}, work) as running:
        target = running.url + "/openai/v1/chat/completions"
        misses, hits = [], []
        for i in range(30):
            body = {**stream_body, "messages": [{"role": "user", "content": f"stream {i}"}]}
            misses.append(asyncio.run(first_byte(target, body)))
            time.sleep(0.05)
            hits.append(asyncio.run(first_byte(target, body)))
        lines.append(f"streamed miss: time to first byte p50 {statistics.median(misses) * 1000:.2f} ms")
        lines.append(f"streamed hit:  time to first byte p50 {statistics.median(hits) * 1000:.2f} ms")
    for enabled in (True, False):
        with sidecar(provider, {"type": "memory"}, work, extra={"coalesce": {"enabled": enabled}}) as running:
            target = running.url + "/openai/v1/chat/completions"
            took = [asyncio.run(burst(target, 50, i)) for i in range(5)]
            calls = running.stats()["misses"]
            lines.append(
                f"5 bursts of 50 identical requests, coalescing {'on ' if enabled else 'off'}: "
                f"{statistics.median(took) * 1000:.0f} ms a burst (p50), {50 / statistics.median(took):.0f} requests/s, "
                f"{calls} provider calls"
            )
    return lines


FIVE_RULES: list[dict[str, object]] = [
    {"when": '"send_email" in tools', "action": "bypass", "reason": "sends-email"},
    {
        "when": "!(has(body.temperature) && body.temperature == 0.0) && !has(body.seed)",
        "action": "bypass",
        "reason": "not-deterministic",
    },
    {"when": 'endpoint == "embeddings"', "action": "cache", "ttl": "720h"},
    {"when": 'provider == "anthropic" && has(body.max_tokens) && body.max_tokens > 4096', "action": "bypass"},
    {"when": 'endpoint == "chat/completions"', "action": "cache", "ttl": "1h"},
]
"""The policy scenario's rules: the bench's chat request (temperature 0) reads all five."""


def policy_runs(provider: str, work: Path, seconds: int, path: str, rounds: int) -> tuple[list[Compared], list[str]]:
    """Memory hits without rules and with FIVE_RULES, up at once and loaded in turn; then RSS and decide()."""
    notes = []
    with contextlib.ExitStack() as stack:
        targets = []
        for name, extra in (("hit (memory), no rules", {}), ("hit (memory), 5 rules", {"rules": FIVE_RULES})):
            running = stack.enter_context(sidecar(provider, {"type": "memory"}, work, extra=extra))
            targets.append(Target(name, running.url + path, running.pid, running))
        compared = interleaved(targets, SAME_BODY_LUA, 32, seconds, rounds)
        rss = ", ".join(f"{t.name}: {rss_mib(t.pid):.1f} MiB" for t in targets)
        notes.append(f"sidecar RSS after the policy runs: {rss}")
    notes += decide_cost()
    return compared, notes


def decide_cost() -> list[str]:
    """CPU per decision with FIVE_RULES, for a body the sidecar has not seen (no memo), in this process."""
    from llmcache_sidecar import config
    from llmcache_sidecar.wire.policy import Policy

    policy = Policy(config.parse(config.Settings, {"rules": FIVE_RULES}).rules)
    lines = []
    for label, turns in (("1 KiB system prompt", 1), ("40 KiB of messages", 40)):
        body = {
            "model": "gpt-4o-mini",
            "temperature": 0,
            "messages": [{"role": "user", "content": SYSTEM}] * turns,
        }
        n = 20_000
        started = time.process_time()
        for _ in range(n):
            policy.decide(provider="openai", kind="openai", endpoint="chat/completions", model="gpt-4o-mini", body=body)
        micros = (time.process_time() - started) / n * 1e6
        lines.append(f"policy.decide with 5 rules, a body not seen before ({label}): {micros:.1f} µs CPU")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--only", choices=["core", "telemetry", "backends", "streaming", "policy"], action="append")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the target comparisons")
    args = parser.parse_args()
    only = set(args.only or ["core", "telemetry", "backends", "streaming", "policy"])
    if shutil.which("wrk") is None:
        sys.exit("make bench needs wrk: apt-get install wrk")
    results: list[Result] = []
    notes: list[str] = []
    comparisons: list[str] = []
    path = "/openai/v1/chat/completions"
    with tempfile.TemporaryDirectory() as tmp, fake_provider() as provider, realparts.redis(Path(tmp)) as redis:
        work = Path(tmp)
        if "core" in only:
            for c in (1, 32):
                results.append(
                    wrk("direct (no sidecar)", provider + "/v1/chat/completions", UNIQUE_BODY_LUA, c, args.seconds)
                )
            with sidecar(provider, {"type": "memory"}, work) as running:
                url, pid = running.url, running.pid
                time.sleep(0.5)
                idle = rss_mib(pid)
                for c in (1, 32):
                    results.append(wrk("miss (memory)", url + path, UNIQUE_BODY_LUA, c, args.seconds))
                for c in (1, 32):
                    results.append(wrk("hit (memory)", url + path, SAME_BODY_LUA, c, args.seconds, running))
                busy = rss_mib(pid)
            notes.append(f"sidecar RSS: {idle:.1f} MiB idle, {busy:.1f} MiB after the memory-backend runs")
            with sidecar(provider, {"type": "redis", "redis": {"url": redis.url}}, work) as running:
                url = running.url
                for c in (1, 32):
                    results.append(wrk("hit (redis)", url + path, SAME_BODY_LUA, c, args.seconds, running))
            with baseline(redis.url) as url:
                for c in (1, 32):
                    results.append(wrk("baseline: hash + Redis GET", url + path, SAME_BODY_LUA, c, args.seconds))
            floor = redis_against_floor(provider, redis.url, work, args.seconds, path, args.rounds)
            comparisons.append(comparison_table("Redis hit against the floor", floor, 32))
        if "telemetry" in only:
            tel = telemetry_runs(provider, work, args.seconds, path, args.rounds)
            results += [c.median_run for c in tel]
            sidecars = [c for c in tel if not c.name.startswith("floor")]
            comparisons.append(comparison_table("Telemetry cost on memory hits", sidecars, 32))
            comparisons.append(comparison_table("The SDK's floor", [c for c in tel if c not in sidecars], 32))
            comparisons.append(against_floor(tel, trace_loop()))
        if "policy" in only:
            pol, pol_notes = policy_runs(provider, work, args.seconds, path, args.rounds)
            results += [c.median_run for c in pol]
            notes += pol_notes
            comparisons.append(comparison_table("Policy rules on memory hits", pol, 32))
        if "backends" in only:
            results += backend_runs(provider, work, args.seconds, path)
        if "streaming" in only:
            notes += streaming_and_coalescing(provider, work)
    print(table(results))
    for note in notes:
        print(note)
    for comparison in comparisons:
        print()
        print(comparison)


if __name__ == "__main__":
    main()

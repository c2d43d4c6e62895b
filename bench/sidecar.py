"""`make bench`: what the sidecar costs and saves, measured with wrk over loopback.

Scenarios, each at concurrency 1 and 32 (keep-alive connections, like SDK clients):
- direct:        wrk -> fake provider (no sidecar), every request different
- miss:          wrk -> sidecar (memory) -> fake provider, every request different
- hit/memory:    wrk -> sidecar (memory backend), the same request every time
- hit/redis:     wrk -> sidecar (redis backend), the same request every time
- baseline/redis: wrk -> a minimal aiohttp server that only hashes the raw body and
                  does one Redis GET (the floor a Redis-backed cache can reach in Python)
Plus the sidecar's resident memory when idle and after the runs.

This is a benchmark, not a test: it prints figures and asserts nothing. The machine
it runs on matters (docs/benchmarks.md says which one gave the recorded figures).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.redis_server import free_port, running_redis

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
class Result:
    name: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        print("unparsed latency:", repr(value))
        return float("nan")
    number, unit = float(m.group(1)), m.group(2)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


def wrk(name: str, url: str, script: str, concurrency: int, seconds: int) -> Result:
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
    return Result(name, concurrency, rps, p50, p99, errors)


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
def sidecar(upstream: str, backend: dict[str, object], workdir: Path) -> Iterator[tuple[str, int]]:
    port, admin = free_port(), free_port()
    cfg = workdir / f"sidecar-{port}.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "admin": f"127.0.0.1:{admin}",
                "backend": backend,
                "providers": {"openai": {"upstream": upstream}},
            }
        )
    )
    with process([str(Path(PY).parent / "llmcache-sidecar"), "--config", str(cfg), "--log-level", "WARNING"]) as proc:
        wait_http(f"http://127.0.0.1:{admin}/healthz")
        yield f"http://127.0.0.1:{port}", proc.pid


@contextlib.contextmanager
def baseline(redis_url: str) -> Iterator[str]:
    port = free_port()
    with process([PY, "-m", "bench.baseline", "--port", str(port), "--redis", redis_url]):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"


def table(results: list[Result]) -> str:
    lines = ["| scenario | concurrency | requests/s | p50 ms | p99 ms | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {r.name} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} |" for r in results
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("make bench needs wrk: apt-get install wrk")
    results: list[Result] = []
    path = "/openai/v1/chat/completions"
    with tempfile.TemporaryDirectory() as tmp, fake_provider() as provider, running_redis(Path(tmp)) as redis:
        work = Path(tmp)
        for c in (1, 32):
            results.append(
                wrk("direct (no sidecar)", provider + "/v1/chat/completions", UNIQUE_BODY_LUA, c, args.seconds)
            )
        with sidecar(provider, {"type": "memory"}, work) as (url, pid):
            time.sleep(0.5)
            idle = rss_mib(pid)
            for c in (1, 32):
                results.append(wrk("miss (memory)", url + path, UNIQUE_BODY_LUA, c, args.seconds))
            for c in (1, 32):
                results.append(wrk("hit (memory)", url + path, SAME_BODY_LUA, c, args.seconds))
            busy = rss_mib(pid)
        with sidecar(provider, {"type": "redis", "redis": {"url": redis.url}}, work) as (url, _):
            for c in (1, 32):
                results.append(wrk("hit (redis)", url + path, SAME_BODY_LUA, c, args.seconds))
        with baseline(redis.url) as url:
            for c in (1, 32):
                results.append(wrk("baseline: hash + Redis GET", url + path, SAME_BODY_LUA, c, args.seconds))
    print(table(results))
    print(f"\nsidecar RSS: {idle:.1f} MiB idle, {busy:.1f} MiB after the memory-backend runs")


if __name__ == "__main__":
    main()

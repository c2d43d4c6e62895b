"""`make bench-semantic`: what a stored prompt costs the semantic cache in memory and CPU.

Two figures, for sizing a sidecar (docs/semantic.md records them):
- rss:    the real `llmcache-sidecar` as the chart's default LLMCache runs it with
          `redis.defaultCache.semantic=true` (answers in Redis, prompts in the memory
          store, the default 10,000-entry embedding cache), in front of the fake provider
          and `llmcache-embedder --encoder hash` at 384 dimensions (all-MiniLM-L6-v2's
          size). It is asked N distinct questions, each in a conversation of its own (so
          each is a bucket of its own, as in a chat app), and its resident memory is read
          every `--every` prompts.
- lookup: the CPU time of one memory-store search over a full bucket (256 prompts,
          384 dimensions), the arithmetic every lookup does, in this process.
- verify: the verifier's CPU per candidate, as the matcher spends it (the stored prompt
          read by `text.analyse`, then `RuleVerifier.verify` against the query), over
          every pair of the issue-18 evaluation set (640 pairs, both parts): the first
          pass (WordNet's per-word cache cold) and the steady state (median of 9 passes),
          median and 99th percentile per candidate.
- `--no-wordnet`: the rss run without WordNet (as a sidecar without the `semantic` extra),
          to show what the extra costs in memory.

To measure another version of the sidecar, put its source first on the path, e.g.
`git archive <commit> sidecar/src | tar -x -C /tmp/before` and then
`PYTHONPATH=/tmp/before/sidecar/src make bench-semantic` (the sidecar process inherits it).

A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from bench.sidecar import PY, Running, fake_provider, process, rss_mib, sidecar, wait_http
from tests import realparts
from tests.realparts import free_port

DIMENSIONS = 384
MODEL = f"hash-bow-{DIMENSIONS}"
TOPICS = ("reset my password", "change my email", "cancel my order", "export my data", "rotate an API key")


@contextlib.contextmanager
def hash_embedder() -> Iterator[str]:
    port = free_port()
    command = [PY, "-m", "llmcache_embedder.cli", "--encoder", "hash", "--hash-dimensions", str(DIMENSIONS),
               "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
    with process(command):
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield f"http://127.0.0.1:{port}/v1"


def question(n: int) -> tuple[list[dict[str, str]], str]:
    """The n-th distinct question, in a conversation of its own (its own bucket)."""
    text = f"How do I {TOPICS[n % len(TOPICS)]} for account {n} in the {n % 7}th region, step by step?"
    history = [
        {"role": "user", "content": f"Hello, I am customer {n}."},
        {"role": "assistant", "content": "Hello! How can I help?"},
    ]
    return [*history, {"role": "user", "content": text}], text


async def ask_all(running: Running, first: int, count: int, concurrency: int) -> int:
    """Ask questions first..first+count-1; the number of non-200 answers."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + count):
        queue.put_nowait(n)
    failed = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal failed
        while not queue.empty():
            messages, _ = question(queue.get_nowait())
            body = {"model": "gpt-4o-mini", "messages": messages}
            async with http.post(f"{running.url}/openai/v1/chat/completions", json=body) as resp:
                await resp.read()
                failed += resp.status != 200

    headers = {"Authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession(headers=headers) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return failed


def verify_cpu(passes: int) -> tuple[float, float, float]:
    """Microseconds of CPU per candidate: first pass mean, then steady-state median and p99."""
    from llmcache_sidecar.semantic import normalise, text, verifier
    from scripts.eval_semantic import PARTS, load

    normalise.warm_up()
    rules = verifier.RuleVerifier()
    pairs = [(r["a"], r["b"]) for part in ("tune", "holdout") for r in load(PARTS[part])]
    queries = {b: text.analyse(b) for _, b in pairs}

    def one_pass() -> list[float]:
        spent = []
        for a, b in pairs:
            started = time.process_time()
            rules.verify(text.analyse(a), queries[b])
            spent.append((time.process_time() - started) * 1e6)
        return spent

    first = one_pass()
    per_pair = [sorted(times)[len(times) // 2] for times in zip(*(one_pass() for _ in range(passes)), strict=True)]
    per_pair.sort()
    return sum(first) / len(first), per_pair[len(per_pair) // 2], per_pair[int(len(per_pair) * 0.99)]


def rss_run(prompts: int, every: int, concurrency: int, env: dict[str, str] | None = None) -> list[tuple[int, float]]:
    rows: list[tuple[int, float]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        provider = stack.enter_context(fake_provider())
        embedder = stack.enter_context(hash_embedder())
        redis = stack.enter_context(realparts.redis(tmp))
        backend: dict[str, object] = {"type": "redis", "redis": {"url": redis.url}}
        semantic = {"enabled": True, "embedding": {"url": embedder, "model": MODEL, "timeoutMs": 5000}}
        running = stack.enter_context(sidecar(provider, backend, tmp, extra={"semantic": semantic}, env=env))
        asyncio.run(ask_all(running, -50, 50, 4))  # warm up: word lists loaded, connections open
        rows.append((0, rss_mib(running.pid)))
        done = 0
        while done < prompts:
            batch = min(every, prompts - done)
            failed = asyncio.run(ask_all(running, done, batch, concurrency))
            done += batch
            rows.append((done, rss_mib(running.pid)))
            print(f"  {done:>6} prompts: {rows[-1][1]:7.1f} MiB" + (f" ({failed} failed)" if failed else ""))
        stats = running.stats()["semantic"]
        assert isinstance(stats, dict)
        print("  sidecar says:", json.dumps({k: stats.get(k) for k in ("indexed", "prompts", "embedErrors")}))
    return rows


def lookup_cpu(repeat: int) -> float:
    """CPU microseconds of one search over a full bucket, median of `repeat` batches."""
    from llmcache_sidecar.semantic.embedder import _unit
    from llmcache_sidecar.semantic.index import MemoryIndex, Stored

    rng = random.Random(1)
    index = MemoryIndex(max_per_bucket=256, max_buckets=10)

    def vector() -> object:
        return _unit([rng.gauss(0, 1) for _ in range(DIMENSIONS)])

    async def run() -> list[float]:
        for n in range(256):
            await index.add("b", Stored(key=f"k{n}", text="t", vector=vector(), expires_at=time.time() + 3600))  # type: ignore[arg-type]
        query = vector()
        batches = []
        for _ in range(repeat):
            started = time.process_time()
            for _ in range(50):
                await index.search("b", query, limit=3, threshold=0.0)  # type: ignore[arg-type]
            batches.append((time.process_time() - started) / 50 * 1e6)
        return batches

    batches = sorted(asyncio.run(run()))
    return batches[len(batches) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=12_000)
    parser.add_argument("--every", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["rss", "lookup", "verify"], action="append")
    parser.add_argument("--no-wordnet", action="store_true", help="rss without WordNet (no `semantic` extra)")
    args = parser.parse_args()
    only = set(args.only or ["rss", "lookup", "verify"])
    source = subprocess.run([PY, "-c", "import llmcache_sidecar; print(llmcache_sidecar.__file__)"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(f"sidecar source: {source}")
    if "lookup" in only:
        print(f"lookup: one search over 256 prompts of {DIMENSIONS} dimensions: {lookup_cpu(20):.0f} µs CPU (median)")
    if "verify" in only:
        first, median, p99 = verify_cpu(9)
        print(
            f"verify: CPU per candidate, first pass {first:.0f} µs (mean), steady {median:.0f} µs median, {p99:.0f} µs p99"
        )
    if "rss" in only:
        wordnet = "without WordNet" if args.no_wordnet else "with WordNet where installed"
        print(f"rss: {args.prompts} distinct prompts, each in its own bucket, {args.concurrency} at a time, {wordnet}")
        env = {"LLMCACHE_WORDNET_DIR": "/nonexistent"} if args.no_wordnet else None
        rows = rss_run(args.prompts, args.every, args.concurrency, env)
        base = rows[0][1]
        print(f"| base | {base:.0f} MiB | | |")
        for done, rss in rows[1:]:
            per = (rss - base) * 1024 / done
            print(f"| {done:,} | {rss:.0f} MiB | +{rss - base:.0f} MiB | {per:.1f} KiB |")


if __name__ == "__main__":
    main()

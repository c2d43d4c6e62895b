#!/usr/bin/env python3
"""How often does the semantic cache serve a paraphrase, and how often a near-miss? Per kind.

For every labelled pair, the answer stored for `a` is offered for `b`, two ways:

* raw cosine: the cosine similarity of the two prompts' embeddings as written;
* the matcher: the cosine of the *normalised* prompts (`semantic.normalise`, what the
  sidecar embeds) at or above the threshold, and the verifier
  (`semantic.verifier.RuleVerifier`) must accept: exactly the sidecar's decision for a
  candidate.

The sets (`--parts`): `tune` and `holdout` are the issue-18 set
(tests/data/semantic_eval_*.jsonl, 640 pairs written fresh, split once by a hash of
each pair's text); `tune` is what the verifier was tuned on, `holdout` was evaluated once,
at the end (docs/semantic.md says how). `project` and `project-holdout` are the earlier,
adversarial sets (tests/data/semantic_pairs*.jsonl).

It prints, per part: the per-kind table at the threshold, the trade-off curve
(recall and false hits as the threshold moves), the verifier's rejections by reason, and
what a judge would change: with a deterministic stand-in whose error rate is set (each
pair's verdict is flipped when a hash of the pair falls under the rate), and, with
`--judge-verdicts FILE` (from `scripts/judge_semantic.py`), with a real model's verdicts.

Embeddings come from the real all-MiniLM-L6-v2 (`llmcache_embedder.model.MiniLMEncoder`, in
process, CPU) and are kept in `--cache` (git-ignored) between runs.

Usage: python -m scripts.eval_semantic [--parts tune,holdout] [--threshold T] [--examples]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmcache_sidecar.semantic import normalise, text, verifier

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PARTS = {
    "tune": DATA / "semantic_eval_tune.jsonl",
    "holdout": DATA / "semantic_eval_holdout.jsonl",
    "final": DATA / "semantic_eval_final.jsonl",
    "blind": DATA / "semantic_eval_blind.jsonl",
    "project": DATA / "semantic_pairs.jsonl",
    "project-holdout": DATA / "semantic_pairs_holdout.jsonl",
}
THRESHOLDS = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95]
DEFAULT_THRESHOLD = 0.80  # keep in step with config.SemanticSettings.threshold
JUDGE_ERRORS = [0.0, 0.01, 0.02, 0.05, 0.10, 0.20]
JUDGE_FLOORS = [None, 0.70, 0.60, 0.50]
Row = dict[str, Any]


def load(path: Path) -> list[Row]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


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
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cached), encoding="utf-8")
    return cached


def score(rows: list[Row], vectors: dict[str, list[float]], rules: verifier.RuleVerifier) -> float:
    """Add raw cosine, normalised cosine and the verifier's verdict to every row; CPU seconds per verdict."""
    spent = 0.0
    for row in rows:
        row["raw"] = cosine(vectors[row["a"]], vectors[row["b"]])
        row["norm"] = cosine(vectors[normalise.normalise(row["a"])], vectors[normalise.normalise(row["b"])])
        t0 = time.process_time()
        verdict = rules.verify(text.analyse(row["a"]), text.analyse(row["b"]))
        spent += time.process_time() - t0
        row["accepted"] = verdict.accepted
        row["reason"] = verdict.reason
    return spent / len(rows) if rows else 0.0


def rate(rows: list[Row], hit: Callable[[Row], bool]) -> float:
    return sum(map(hit, rows)) / len(rows) if rows else float("nan")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def served(threshold: float) -> Callable[[Row], bool]:
    return lambda r: r["norm"] >= threshold and r["accepted"]


def kinds_of(rows: list[Row], label: str) -> list[str]:
    return sorted({r["kind"] for r in rows if r["label"] == label})


def per_kind(rows: list[Row], threshold: float) -> list[str]:
    lines = [
        f"| kind | pairs | raw cosine >= {threshold:.2f} | matcher (served) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, title in (("paraphrase", "paraphrase recall"), ("near_miss", "near-miss false hits")):
        group = [r for r in rows if r["label"] == label]
        for kind in kinds_of(rows, label):
            of_kind = [r for r in group if r["kind"] == kind]
            hits = sum(map(served(threshold), of_kind))
            lines.append(
                f"| {kind} | {len(of_kind)} | {pct(rate(of_kind, lambda r: r['raw'] >= threshold))} "
                f"| {pct(hits / len(of_kind))} ({hits}) |"
            )
        hits = sum(map(served(threshold), group))
        lines.append(
            f"| **{title}** | **{len(group)}** | {pct(rate(group, lambda r: r['raw'] >= threshold))} "
            f"| **{pct(hits / len(group))} ({hits})** |"
        )
    return lines


def curve(rows: list[Row]) -> list[str]:
    para = [r for r in rows if r["label"] == "paraphrase"]
    near = [r for r in rows if r["label"] == "near_miss"]
    lines = [
        "| threshold | paraphrase recall | synonym | reword | near-miss false hits | raw cosine false hits |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in THRESHOLDS:
        hit = served(t)
        syn = [r for r in para if r["kind"] == "synonym"]
        rew = [r for r in para if r["kind"] == "reword"]
        lines.append(
            f"| {t:.2f} | {pct(rate(para, hit))} | {pct(rate(syn, hit))} | {pct(rate(rew, hit))} "
            f"| {pct(rate(near, hit))} ({sum(map(hit, near))}) | {pct(rate(near, lambda r, t=t: r['raw'] >= t))} |"
        )
    return lines


def reasons(rows: list[Row]) -> list[str]:
    near = Counter(r["reason"] for r in rows if r["label"] == "near_miss" and not r["accepted"])
    para = Counter(r["reason"] for r in rows if r["label"] == "paraphrase" and not r["accepted"])
    lines = ["| reason | near-misses | paraphrases |", "| --- | ---: | ---: |"]
    lines += [f"| {x} | {near[x]} | {para[x]} |" for x in verifier.REASONS if near[x] or para[x]]
    return lines


def _wrong(row: Row, error: float) -> bool:
    """Deterministic: the stand-in judge errs on this pair when a hash of it falls under `error`."""
    digest = hashlib.sha256(f"judge|{row['a']}|{row['b']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < error


def judged(rows: list[Row], threshold: float, verdicts: Callable[[Row], bool]) -> list[str]:
    """Recall and false hits with a judge after the verifier, as the sidecar runs it.

    At or above the threshold the judge can only veto; with `minSimilarity` (the floor),
    verifier-accepted candidates between the floor and the threshold are served on SAME;
    with `decideUnsure`, so are candidates the rules rejected for a reason in `verifier.UNSURE`.
    """
    para = [r for r in rows if r["label"] == "paraphrase"]
    near = [r for r in rows if r["label"] == "near_miss"]
    lines = []
    for unsure in (False, True):
        for floor in JUDGE_FLOORS:
            low = threshold if floor is None else floor

            def hit(r: Row, low: float = low, unsure: bool = unsure) -> bool:
                passed = r["accepted"] or (unsure and r["reason"] in verifier.UNSURE)
                return r["norm"] >= low and passed and verdicts(r)

            syn = [r for r in para if r["kind"] == "synonym"]
            rew = [r for r in para if r["kind"] == "reword"]
            lines.append(
                f"| {'-' if floor is None else f'{floor:.2f}'} | {'yes' if unsure else 'no'} | {pct(rate(para, hit))} "
                f"| {pct(rate(syn, hit))} | {pct(rate(rew, hit))} | {pct(rate(near, hit))} ({sum(map(hit, near))}) |"
            )
    return lines


def judge_tables(rows: list[Row], threshold: float, real: dict[tuple[str, str], str] | None) -> list[str]:
    head = [
        "| minSimilarity | decideUnsure | paraphrase recall | synonym | reword | near-miss false hits |",
        "| ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    lines: list[str] = []
    for error in JUDGE_ERRORS:
        lines += [f"Stand-in judge wrong on {pct(error)} of pairs:", "", *head]

        def says_same(r: Row, error: float = error) -> bool:
            return (r["label"] == "paraphrase") != _wrong(r, error)

        lines += [*judged(rows, threshold, says_same), ""]
    if real is not None:
        known = [r for r in rows if (r["a"], r["b"]) in real]
        para = [r for r in known if r["label"] == "paraphrase"]
        near = [r for r in known if r["label"] == "near_miss"]

        def same(r: Row) -> bool:
            return real.get((r["a"], r["b"])) == "same"

        lines += [
            f"Real judge ({len(known)} pairs judged): says SAME to {pct(rate(para, same))} of paraphrases "
            f"and {pct(rate(near, same))} of near-misses (accuracy "
            f"{pct((sum(map(same, para)) + len(near) - sum(map(same, near))) / max(len(known), 1))}).",
            "",
            *head,
            *judged(known, threshold, same),
            "",
        ]
    return lines


def pool(rows: list[Row], vectors: dict[str, list[float]], rules: verifier.RuleVerifier, threshold: float) -> list[str]:
    """Every prompt against every other prompt of the part that no paraphrase pair links.

    What a bucket full of other questions looks like to the matcher. Prompts linked by
    paraphrase pairs (directly or through a shared prompt) count as one question; any other
    pair the matcher accepts is listed for reading (some may be true paraphrases no pair links).
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
    return [
        f"Pool: {len(prompts)} prompts, {pairs} pairs of different questions; pairs the matcher would serve:",
        "",
        "| threshold | " + " | ".join(f"{t:.2f}" for t in THRESHOLDS) + " |",
        "| --- | " + " | ".join("---:" for _ in THRESHOLDS) + " |",
        "| served | " + " | ".join(str(hits[t]) for t in THRESHOLDS) + " |",
        *(["", f"Served at {threshold:.2f}:", *listed] if listed else []),
    ]


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
    ap.add_argument("--parts", default="tune,holdout", help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="the default being judged")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "eval-embeddings.json", help="embeddings kept here")
    ap.add_argument("--json", type=Path, default=None, help="also write every pair's scores and verdict")
    ap.add_argument("--examples", action="store_true", help="list the verifier's mistakes")
    ap.add_argument("--pool", action="store_true", help="also match every prompt against every other one")
    ap.add_argument("--judge", action="store_true", help="what a stand-in judge of a given error rate changes")
    ap.add_argument("--judge-verdicts", type=Path, default=None, help="a real judge's verdicts (judge_semantic.py)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()

    names = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    normalise.warm_up()
    rules = verifier.RuleVerifier()
    rules.verify(text.analyse("warm up"), text.analyse("warm up"))  # load the word lists before timing
    sets = {name: load(PARTS[name]) for name in names}
    texts = {t for rows in sets.values() for r in rows for t in (r["a"], r["b"])}
    texts |= {normalise.normalise(t) for t in texts}
    vectors = embed_all(sorted(texts), args.cache, args.threads)
    real = None
    if args.judge_verdicts is not None:
        data = json.loads(args.judge_verdicts.read_text(encoding="utf-8"))
        real = {(v["a"], v["b"]): v["verdict"] for v in data["verdicts"]}
    out: list[str] = []
    for name, rows in sets.items():
        cpu = score(rows, vectors, rules)
        n_para = sum(r["label"] == "paraphrase" for r in rows)
        out += [
            f"## {name}: {n_para} paraphrases, {len(rows) - n_para} near-misses "
            f"(verifier: {1000 * cpu:.3f} ms CPU per pair, text analysis included)",
            "",
            f"Per kind at threshold {args.threshold:.2f}:",
            "",
            *per_kind(rows, args.threshold),
            "",
            "Trade-off as the threshold moves (matcher):",
            "",
            *curve(rows),
            "",
            "Verifier rejections by reason (first failing rule, any cosine):",
            "",
            *reasons(rows),
            "",
        ]
        if args.judge or real is not None:
            out += [
                f"With a judge after the verifier (threshold {args.threshold:.2f}):",
                "",
                *judge_tables(rows, args.threshold, real if args.judge_verdicts else None),
            ]
        if args.pool:
            out += [*pool(rows, vectors, rules, args.threshold), ""]
        if args.examples:
            out += [*examples(rows, args.threshold), ""]
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps(sets, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

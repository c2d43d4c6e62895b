#!/usr/bin/env python3
"""Validate tests/data/semantic_pairs.jsonl and print its counts by label and kind.

Usage: python3 scripts/semantic_pairs_stats.py [PATH] [--markdown]

Exits non-zero if a line is malformed, a label or kind is unknown, a pair is
duplicated (in either order), a pair's two sides are identical, or the
near-miss share is below 45%.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "semantic_pairs.jsonl"

NEAR_MISS_KINDS = (
    "negation",
    "direction",
    "number",
    "datetime",
    "entity",
    "role",
    "format",
    "language",
    "code",
)
PARAPHRASE_KINDS = (
    "paraphrase",
    "paraphrase_casual",
    "paraphrase_typo",
    "paraphrase_reorder",
)
MIN_NEAR_MISS_SHARE = 0.45


def load(path: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                raise ValueError(f"{path}:{lineno}: blank line")
            obj = json.loads(line)
            if set(obj) != {"a", "b", "label", "kind"}:
                raise ValueError(f"{path}:{lineno}: keys {sorted(obj)}")
            if not all(isinstance(obj[k], str) and obj[k] for k in obj):
                raise ValueError(f"{path}:{lineno}: every field must be a non-empty string")
            rows.append(obj)
    return rows


def validate(rows: list[dict[str, str]]) -> list[str]:
    errors: list[str] = []
    seen: set[frozenset[str]] = set()
    for i, r in enumerate(rows, start=1):
        label, kind = r["label"], r["kind"]
        if label == "paraphrase" and kind not in PARAPHRASE_KINDS:
            errors.append(f"line {i}: paraphrase with kind {kind!r}")
        elif label == "near_miss" and kind not in NEAR_MISS_KINDS:
            errors.append(f"line {i}: near_miss with kind {kind!r}")
        elif label not in ("paraphrase", "near_miss"):
            errors.append(f"line {i}: unknown label {label!r}")
        if r["a"].strip() == r["b"].strip():
            errors.append(f"line {i}: both sides identical")
        key = frozenset((r["a"], r["b"]))
        if key in seen:
            errors.append(f"line {i}: duplicate pair")
        seen.add(key)
    n_nm = sum(r["label"] == "near_miss" for r in rows)
    if rows and n_nm / len(rows) < MIN_NEAR_MISS_SHARE:
        errors.append(f"near-miss share {n_nm / len(rows):.1%} < {MIN_NEAR_MISS_SHARE:.0%}")
    return errors


def counts_markdown(rows: list[dict[str, str]]) -> str:
    by_label = Counter(r["label"] for r in rows)
    by_kind = Counter((r["label"], r["kind"]) for r in rows)
    total = len(rows)
    out = ["| label | kind | pairs |", "| --- | --- | ---: |"]
    for label, kinds in (("paraphrase", PARAPHRASE_KINDS), ("near_miss", NEAR_MISS_KINDS)):
        for kind in kinds:
            out.append(f"| {label} | {kind} | {by_kind[(label, kind)]} |")
        share = by_label[label] / total if total else 0.0
        out.append(f"| **{label}** | *all* | **{by_label[label]}** ({share:.1%}) |")
    out.append(f"| **total** | | **{total}** |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--markdown", action="store_true", help="print the counts as a markdown table")
    args = ap.parse_args()
    rows = load(args.path)
    errors = validate(rows)
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if args.markdown:
        print(counts_markdown(rows))
    else:
        by = Counter((r["label"], r["kind"]) for r in rows)
        for (label, kind), n in sorted(by.items()):
            print(f"{label:11s} {kind:20s} {n:4d}")
        print(f"{'total':32s} {len(rows):4d}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Split the issue-18 pair set once into a tuning part and a held-out part, by a fixed rule.

A pair goes to the held-out part when the SHA-256 of `SEED|a|b` read as a number is
2 or 3 modulo 5 (about 40% of the pairs); the rule depends on nothing but the pair's
own text, so it cannot be steered by looking at results. It was run once, on the pairs
as written, to make `tests/data/semantic_eval_tune.jsonl` and
`tests/data/semantic_eval_holdout.jsonl`; `tests/test_semantic_eval_data.py` checks that
both files still obey it.

Usage: python -m scripts.split_semantic_eval ALL.jsonl
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

SEED = "llmcache-issue-18"
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TUNE = DATA / "semantic_eval_tune.jsonl"
HOLDOUT = DATA / "semantic_eval_holdout.jsonl"


def held_out(a: str, b: str) -> bool:
    digest = hashlib.sha256(f"{SEED}|{a}|{b}".encode()).hexdigest()
    return int(digest, 16) % 5 in (2, 3)


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text(encoding="utf-8").splitlines() if line]
    parts: dict[bool, list[str]] = {True: [], False: []}
    for row in rows:
        parts[held_out(row["a"], row["b"])].append(json.dumps(row, ensure_ascii=False))
    TUNE.write_text("\n".join(parts[False]) + "\n", encoding="utf-8")
    HOLDOUT.write_text("\n".join(parts[True]) + "\n", encoding="utf-8")
    print(f"tuning {len(parts[False])}, held out {len(parts[True])}")


if __name__ == "__main__":
    main()

"""The issue-18 evaluation set stays what it was when it was split: well-formed, large, split by its rule.

The set is the measure of the semantic verifier (`make eval-semantic`). These checks keep
it honest: no pair may move between the tuning and the held-out part (the split is a hash
of the pair's text, `scripts/split_semantic_eval.py`), every kind has pairs on both sides,
and the whole set keeps at least 600 pairs.

The blind set (`semantic_eval_blind.jsonl`) was written by someone who had seen neither the
verifier nor the other pairs; it is checked for the same form, with its own, wider domains.
The final set (`semantic_eval_final.jsonl`) was written the same way, blind to the verifier and
to every other set, for the figures measured once at the end; it gets the same checks.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scripts.split_semantic_eval import HOLDOUT, TUNE, held_out

PARAPHRASE_KINDS = {"synonym", "reword", "voice", "register", "question_imperative", "added_context", "reorder"}
NEAR_MISS_KINDS = {
    "negation", "number", "unit", "entity", "direction", "role", "time", "scope",
    "comparative", "format", "language", "antonym", "audience", "cohyponym",
}  # fmt: skip
DOMAINS = {"coding", "support", "cooking", "travel", "finance", "health", "math", "general"}
BLIND = Path(__file__).parent / "data" / "semantic_eval_blind.jsonl"
BLIND_DOMAINS = DOMAINS | {
    "writing", "hr", "science", "legal", "shopping", "home", "fitness", "pets", "auto",
    "gardening", "education",
}  # fmt: skip
FINAL = Path(__file__).parent / "data" / "semantic_eval_final.jsonl"
FINAL_DOMAINS = BLIND_DOMAINS | {"product", "data"}


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize(("path", "expected_held_out"), [(TUNE, False), (HOLDOUT, True)])
def test_every_pair_is_in_the_part_its_hash_says(path: Path, expected_held_out: bool) -> None:
    rows = _rows(path)
    assert rows
    assert [r["a"] for r in rows if held_out(r["a"], r["b"]) != expected_held_out] == []


def test_the_set_is_large_varied_and_well_formed() -> None:
    rows = _rows(TUNE) + _rows(HOLDOUT)
    assert len(rows) >= 600
    for row in rows:
        assert set(row) == {"a", "b", "label", "kind", "domain"}, row
        assert row["a"].strip() and row["b"].strip() and row["a"] != row["b"]
        kinds = PARAPHRASE_KINDS if row["label"] == "paraphrase" else NEAR_MISS_KINDS
        assert row["label"] in ("paraphrase", "near_miss") and row["kind"] in kinds, row
        assert row["domain"] in DOMAINS, row
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows), "duplicate pairs"
    assert {r["domain"] for r in rows} == DOMAINS


def test_every_kind_has_pairs_in_both_parts() -> None:
    for path in (TUNE, HOLDOUT):
        kinds = Counter(r["kind"] for r in _rows(path))
        assert set(kinds) == PARAPHRASE_KINDS | NEAR_MISS_KINDS, path.name


def test_the_blind_set_is_well_formed_and_covers_every_kind() -> None:
    rows = _rows(BLIND)
    assert len(rows) >= 320
    for row in rows:
        assert set(row) == {"a", "b", "label", "kind", "domain"}, row
        assert row["a"].strip() and row["b"].strip() and row["a"] != row["b"], row
        kinds = PARAPHRASE_KINDS if row["label"] == "paraphrase" else NEAR_MISS_KINDS
        assert row["label"] in ("paraphrase", "near_miss") and row["kind"] in kinds, row
        assert row["domain"] in BLIND_DOMAINS, row
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows), "duplicate pairs"
    assert len({frozenset((r["a"], r["b"])) for r in rows}) == len(rows), "a pair repeated the other way round"
    assert {r["kind"] for r in rows} == PARAPHRASE_KINDS | NEAR_MISS_KINDS
    near_miss_share = sum(r["label"] == "near_miss" for r in rows) / len(rows)
    assert 0.45 <= near_miss_share <= 0.65, near_miss_share


def test_the_final_set_is_well_formed_and_covers_every_kind() -> None:
    rows = _rows(FINAL)
    assert len(rows) >= 350
    for row in rows:
        assert set(row) == {"a", "b", "label", "kind", "domain"}, row
        assert row["a"].strip() and row["b"].strip() and row["a"] != row["b"], row
        kinds = PARAPHRASE_KINDS if row["label"] == "paraphrase" else NEAR_MISS_KINDS
        assert row["label"] in ("paraphrase", "near_miss") and row["kind"] in kinds, row
        assert row["domain"] in FINAL_DOMAINS, row
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows), "duplicate pairs"
    assert len({frozenset((r["a"], r["b"])) for r in rows}) == len(rows), "a pair repeated the other way round"
    assert {r["kind"] for r in rows} == PARAPHRASE_KINDS | NEAR_MISS_KINDS
    near_miss_share = sum(r["label"] == "near_miss" for r in rows) / len(rows)
    assert 0.45 <= near_miss_share <= 0.65, near_miss_share

"""The hand-written pair set stays well-formed: schema, labels, kinds, no duplicates, >= 45% near-misses."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _stats_module() -> ModuleType:
    path = ROOT / "scripts" / "semantic_pairs_stats.py"
    spec = importlib.util.spec_from_file_location("semantic_pairs_stats", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_semantic_pairs_are_valid() -> None:
    stats = _stats_module()
    rows = stats.load(stats.DEFAULT_PATH)
    assert stats.validate(rows) == []
    assert len(rows) >= 320
    kinds = Counter(r["kind"] for r in rows if r["label"] == "near_miss")
    assert set(kinds) == set(stats.NEAR_MISS_KINDS)
    assert min(kinds.values()) >= 15

"""The shipped alerts pass `promtool check rules`, and `promtool test rules` has a case for every one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.monitoring.conftest import RULE_TESTS, RULES


def alert_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    result = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_every_alert_fires_for_a_failing_series_and_stays_silent_for_a_healthy_one(promtool: Path) -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    silent: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == alert_names(), f"no firing case: {sorted(alert_names() - firing)}"
    assert silent == alert_names(), f"no healthy case: {sorted(alert_names() - silent)}"

    result = subprocess.run([promtool, "test", "rules", RULE_TESTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_cover_what_an_operator_of_a_shared_cache_needs() -> None:
    assert alert_names() == {
        "LLMCacheBackendErrors",
        "LLMCacheHitRateCollapse",
        "LLMCacheFailingOpen",
        "LLMCacheBackendNearTimeout",
        "LLMCacheSidecarScrapeFailing",
        "LLMCacheSidecarMetricsAbsent",
        "LLMCacheSemanticJudgeVetoes",
    }

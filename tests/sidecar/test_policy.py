"""Policy rules as data: compiled at load (a bad one refused with its index), decided per request.

The sidecar's start is the real `llmcache-sidecar` command in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.config import policy as config_policy
from llmcache_sidecar.wire.policy import CACHE, Decision, Policy, _body_fields, tool_names


def rules(*raw: dict[str, Any]) -> tuple[config.Rule, ...]:
    return config.parse(config.Settings, {"rules": list(raw)}).rules


def decide(policy: Policy, body: dict[str, Any], endpoint: str = "chat/completions", **extra: str) -> Decision:
    values = {"provider": "openai", "kind": "openai", "model": str(body.get("model", "")), **extra}
    return policy.decide(endpoint=endpoint, body=body, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"when": "bdy.temperature == 0", "action": "bypass"}, "rules[1].when: at 1:4: undeclared reference to 'bdy"),
        ({"when": "endpoint ==", "action": "bypass"}, "rules[1].when: at 1:12: Syntax error"),
        ({"when": 'endpoint + 1 == "x"', "action": "bypass"}, "rules[1].when: at 1:10: found no matching overload"),
        ({"when": "model", "action": "bypass"}, "rules[1].when: a condition must be a bool; this one gives a string"),
        ({"when": "", "action": "bypass"}, "rules[1].when: required: a CEL condition"),
        ({"when": "true"}, "rules[1]: a rule needs an action (cache or bypass) or semantic"),
        ({"when": "true", "action": "bypass", "ttl": "1h"}, "rules[1].ttl: only a rule with action: cache has a ttl"),
        ({"when": "true", "action": "cache", "reason": "x"}, "rules[1].reason: only a rule with action: bypass"),
        ({"when": "true", "action": "bypass", "reason": "Two Words"}, "rules[1].reason: lowercase letters"),
        ({"when": "true", "action": "skip"}, "rules[1].action: must be one of cache, bypass"),
    ],
)
def test_a_rule_that_does_not_compile_is_refused_with_its_index_and_why(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(config.ConfigError) as refused:
        rules({"when": "true", "action": "cache"}, raw)
    assert str(refused.value).startswith(error)


def test_without_the_policy_extra_rules_are_refused_and_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cel_expr_python", None)  # as if not installed
    config_policy._compile.cache_clear()
    config_policy._environment.cache_clear()
    try:
        with pytest.raises(config.ConfigError) as refused:
            rules({"when": "true", "action": "bypass"})
        assert config.parse(config.Settings, {}).rules == ()  # a sidecar without rules does not need it
    finally:
        config_policy._compile.cache_clear()
        config_policy._environment.cache_clear()
    assert str(refused.value) == "rules[0].when: " + config_policy.EXTRA_HINT


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, Decision(ttl=3600.0)),
        ({"temperature": 0.0, "seed": 3}, Decision(ttl=3600.0)),
        ({"temperature": 0.7, "seed": 3}, Decision(ttl=3600.0)),
        ({"temperature": 0.7}, Decision(bypass="not-deterministic")),
        ({}, Decision(bypass="not-deterministic")),
        ({"temperature": 0, "tools": [{"type": "function", "function": {"name": "send_email"}}]},
         Decision(bypass="sends-email")),
        ({"temperature": 0, "n": 3}, Decision(ttl=3600.0, semantic=False)),
    ],
)  # fmt: skip
def test_the_first_matching_rule_decides_each_aspect(body: dict[str, Any], expected: Decision) -> None:
    policy = Policy(
        rules(
            {"when": '"send_email" in tools', "action": "bypass", "reason": "sends-email"},
            {"when": "has(body.n) && body.n > 1", "semantic": False},
            {
                "when": "!(has(body.temperature) && body.temperature == 0) && !has(body.seed)",
                "action": "bypass",
                "reason": "not-deterministic",
            },
            {"when": 'endpoint == "chat/completions"', "action": "cache", "ttl": "1h"},
        )
    )
    assert decide(policy, body) == expected


def test_a_responses_conversation_bypasses_whatever_the_rules_say() -> None:
    policy = Policy(rules({"when": "true", "action": "cache", "ttl": "1h"}))
    assert decide(policy, {"conversation": "conv_1"}, "responses") == Decision(bypass="conversation")
    assert decide(policy, {"conversation": {"id": "conv_1"}}, "responses") == Decision(bypass="conversation")
    assert decide(policy, {"previous_response_id": "resp_1", "store": True}, "responses") == Decision(ttl=3600.0)
    assert decide(Policy(()), {"conversation": "conv_1"}, "responses") == Decision(bypass="conversation")
    assert decide(Policy((), builtin=False), {"conversation": "conv_1"}, "responses") is CACHE  # record, replay


def test_a_condition_that_fails_takes_the_safe_side_of_what_its_rule_decides() -> None:
    failing_action = Policy(rules({"when": "body.temperature > 0.5", "action": "cache"}))
    failing_semantic = Policy(rules({"when": "body.n > 1", "semantic": False}, {"when": "true", "action": "cache"}))
    assert decide(failing_action, {}) == Decision(bypass="rule-0-error")
    assert decide(failing_semantic, {}) == Decision(semantic=False)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"tools": [{"type": "function", "function": {"name": "a"}}], "functions": [{"name": "b"}]}, ["a", "b"]),
        ({"tools": [{"type": "function", "name": "a"}, {"type": "web_search_preview"}]}, ["a", "web_search_preview"]),
        ({"tools": [{"name": "a", "input_schema": {}}, {"type": "web_search_20250305", "name": "web_search"}]},
         ["a", "web_search"]),
        ({"tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}, {"googleSearch": {}}]},
         ["a", "b", "googleSearch"]),
        ({"tools": "nonsense"}, []),
        ({}, []),
    ],
)  # fmt: skip
def test_tools_are_named_in_every_wire_format(body: dict[str, Any], names: list[str]) -> None:
    assert tool_names(body) == names


@pytest.mark.parametrize(
    ("sources", "fields"),
    [
        (["body.temperature == 0 || has(body.seed)"], {"temperature", "seed"}),
        (["body['max_tokens'] > 1", 'body["n"] == 2'], {"max_tokens", "n"}),
        (["body.messages.size() > 2"], {"messages"}),
        (['body.exists(k, k == "x")'], None),
        (["size(body) > 2"], None),
        (["body.?seed.hasValue()"], None),
        (['endpoint == "embeddings"'], set()),
    ],
)
def test_only_the_body_fields_a_condition_names_are_converted(sources: list[str], fields: set[str] | None) -> None:
    assert _body_fields(sources) == (None if fields is None else frozenset(fields))


def test_a_condition_that_reads_the_whole_body_sees_all_of_it() -> None:
    policy = Policy(rules({"when": 'body.exists(k, k == "logprobs")', "action": "bypass"}))
    assert decide(policy, {"logprobs": True, "model": "m"}) == Decision(bypass="rule-0")
    assert decide(policy, {"model": "m"}) is CACHE


def run_sidecar(tmp_path: Path, config_text: str, *preamble: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(textwrap.dedent(config_text))
    code = "; ".join(
        [*preamble, "from llmcache_sidecar.cli import main", f"sys.exit(main(['--config', {str(path)!r}]))"]
    )
    return subprocess.run(
        [sys.executable, "-c", "import sys; " + code], capture_output=True, text=True, timeout=60, check=False
    )


BAD_RULE = """
    listen: 127.0.0.1:0
    admin: 127.0.0.1:0
    rules:
      - when: 'endpoint == "embeddings"'
        action: cache
        ttl: 720h
      - when: body.temperature = 0
        action: bypass
"""


def test_the_sidecar_refuses_to_start_with_a_rule_that_does_not_compile(tmp_path: Path) -> None:
    result = run_sidecar(tmp_path, BAD_RULE)
    assert result.returncode == 2
    assert result.stderr.startswith("llmcache-sidecar: invalid configuration: rules[1].when: at 1:18: Syntax error")


def test_a_sidecar_without_the_policy_extra_refuses_rules_and_names_the_extra(tmp_path: Path) -> None:
    result = run_sidecar(tmp_path, BAD_RULE, "sys.modules['cel_expr_python'] = None")
    assert result.returncode == 2
    assert "rules[0].when: CEL rules need `pip install llmcache-sidecar[policy]`" in result.stderr

"""What the policy decides for one request: cache (for how long), bypass (why), semantic or not.

The built-in rule comes first and no rule can undo it: a Responses API request with a
`conversation` reads and changes state the provider keeps (the conversation's items),
so an answer from the cache would be stale and would leave the conversation without
the new turn; it always bypasses the cache (`detail=conversation`).

Then the configured rules, in order (`config.Rule`): the first matching rule with an
`action` decides whether the answer is cached (and for how long) or bypassed; the
first matching rule that sets `semantic` decides whether the semantic cache is used.
Reading stops once both are decided. A condition that fails while it is evaluated
(`body.temperature` on a body without one, say) takes the safe side of what its rule
could decide: the request bypasses the cache (`detail=rule-<i>-error`) if the rule had
an action still to decide, and the semantic cache is off if it only had `semantic`.
Going upstream is always correct; caching on a rule that could not be read may not be.

A decision is a pure function of the request, so the handler remembers it with the
body's digest (`keys.DigestMemo`): a repeated request, which is every hit, does not
evaluate anything again.

Left to the defaults on purpose (docs/policy.md says why): `store: true` and
`previous_response_id` are cached like any request. Both refer to state that does not
change (a stored response); a hit gives the same answer, and its `id` names the
response that was stored when it was first asked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmcache_sidecar import config
from llmcache_sidecar.config import Rule
from llmcache_sidecar.wire import controls
from llmcache_sidecar.wire.controls import RequestControls

logger = logging.getLogger(__name__)

CONVERSATION = "conversation"
"""The built-in bypass reason: a Responses API request that reads and changes a conversation."""

# `body.name`, `body["name"]` or `body['name']` not followed by a call: one field of the body.
_BODY_WORD = re.compile(r"\bbody\b")
_BODY_FIELD = re.compile(r"\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()|\[\s*(?:\"([^\"\\]*)\"|'([^'\\]*)')\s*\])")
_TOOLS_WORD = re.compile(r"\btools\b")


@dataclass(frozen=True, slots=True)
class Decision:
    bypass: str | None = None
    """Why the request must bypass the cache (its Cache-Status detail); None to cache it."""
    ttl: float | None = None
    """The matching rule's ttl, when it set one."""
    semantic: bool = True
    """False: no semantic lookup or indexing."""
    defaults: RequestControls = field(init=False, repr=False, compare=False)
    """The controls of a request that sent none, under this decision: made once, not per hit."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", controls.DEFAULT.under_policy(self.ttl, self.semantic))

    def applied(self, ctl: RequestControls) -> RequestControls:
        """`ctl` (what the caller asked) under this decision."""
        return self.defaults if ctl is controls.DEFAULT else ctl.under_policy(self.ttl, self.semantic)


CACHE = Decision()
"""What every request gets when no rule says otherwise."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    index: int
    rule: Rule
    program: Any


class Policy:
    """The configured rules, compiled once (at config load), evaluated per new request."""

    __slots__ = ("_builtin", "_fields", "_rules", "_tools", "_warned")

    def __init__(self, rules: tuple[Rule, ...], *, builtin: bool = True) -> None:
        self._builtin = builtin
        self._rules = tuple(
            _Compiled(i, rule, config.compile_condition(rule.when, f"rules[{i}].when")) for i, rule in enumerate(rules)
        )
        self._fields = _body_fields([rule.when for rule in rules])
        self._tools = any(_TOOLS_WORD.search(rule.when) for rule in rules)
        self._warned: set[int] = set()

    def decide(
        self, *, provider: str, kind: str, endpoint: str, model: str | None, body: Mapping[str, Any]
    ) -> Decision:
        if self._builtin and endpoint == "responses" and body.get("conversation") is not None:
            return Decision(bypass=CONVERSATION)
        if not self._rules:
            return CACHE
        fields = self._fields
        values = {
            "provider": provider,
            "kind": kind,
            "endpoint": endpoint,
            "model": model or "",
            "tools": tool_names(body) if self._tools else [],
            "body": body if fields is None else {k: body[k] for k in fields if k in body},
        }
        variables = config.activation(values)
        action: _Compiled | None = None
        semantic: bool | None = None
        for compiled in self._rules:
            rule = compiled.rule
            if (action is not None or rule.action is None) and (semantic is not None or rule.semantic is None):
                continue  # nothing left for this rule to decide
            result = compiled.program.eval(variables).value()
            if result is False:
                continue
            if result is not True:  # an error, or not a bool: the safe outcome of what this rule could decide
                self._warn(compiled, result)
                if action is None and rule.action is not None:
                    return Decision(bypass=f"rule-{compiled.index}-error")
                semantic = False
                continue
            if action is None and rule.action is not None:
                action = compiled
            if semantic is None and rule.semantic is not None:
                semantic = rule.semantic
            if action is not None and semantic is not None:
                break
        keep_semantic = semantic is not False
        if action is None:
            return CACHE if keep_semantic else Decision(semantic=False)
        if action.rule.action == "bypass":
            return Decision(bypass=action.rule.reason or f"rule-{action.index}", semantic=keep_semantic)
        return Decision(ttl=action.rule.ttl, semantic=keep_semantic)

    def _warn(self, compiled: _Compiled, result: object) -> None:
        """Once per rule and configuration: a condition that cannot be read fails alike for many requests."""
        if compiled.index not in self._warned:
            self._warned.add(compiled.index)
            logger.warning(
                "rules[%d] could not be evaluated (%s); such requests bypass the cache", compiled.index, result
            )


def tool_names(body: Mapping[str, Any]) -> list[str]:
    """The tools a request offers, by name, in every wire format (`tools` in conditions).

    OpenAI chat `{"type": "function", "function": {"name"}}` and the legacy `functions`;
    Responses and Anthropic `{"name"}`, or a built-in tool's `type` (`web_search`);
    Gemini `functionDeclarations[].name`, or the built-in tool's key (`googleSearch`).
    """
    names: list[str] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
        elif isinstance(tool.get("name"), str):
            names.append(tool["name"])
        elif isinstance(declared := tool.get("functionDeclarations", tool.get("function_declarations")), list):
            names += [d["name"] for d in declared if isinstance(d, dict) and isinstance(d.get("name"), str)]
        elif isinstance(tool.get("type"), str):
            names.append(tool["type"])
        else:
            names += [str(k) for k in tool]
    functions = body.get("functions")
    for function in functions if isinstance(functions, list) else ():
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _body_fields(sources: list[str]) -> frozenset[str] | None:
    """The top-level body fields the conditions can read, or None when they may read any.

    Converting a body to CEL costs about 3 µs per KiB, and the prompt (`messages`) is
    most of it while conditions rarely read it. A condition that only names fields
    (`body.temperature`, `has(body.seed)`, `body["max_tokens"]`) gets those; any other
    use of `body` (`size(body)`, `body.exists(...)`, a field in a string) gets all of it.
    """
    fields: set[str] = set()
    for source in sources:
        for use in _BODY_WORD.finditer(source):
            found = _BODY_FIELD.match(source, use.end())
            if found is None:
                return None
            fields.add(next(g for g in found.groups() if g is not None))
    return frozenset(fields)

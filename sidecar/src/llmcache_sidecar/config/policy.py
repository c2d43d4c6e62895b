"""Policy rules and recording: what the cache decides per request, as data.

A rule is a CEL condition (`when`) over the request and what to do when it holds: an
`action` (`cache` for its own `ttl`, or `bypass` with a `reason`), and/or `semantic`
(false: no semantic lookup or indexing). `wire.policy` reads the rules in order per
request; this module declares them and compiles each condition once, when the settings
are parsed, so a rule that does not compile is refused then, with its index
(`rules[2].when: ...`), by the sidecar at start and by the operator in the LLMCache's
status.

CEL comes from `cel-expr-python` (Google's cel-cpp), the `policy` extra: it is imported
only when rules are configured. Conditions are type-checked against the declared
variables (`CONDITION_VARIABLES`), so a misspelt name or a string compared with a
number is a compile error, not a surprise on some later request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from llmcache_sidecar.config.fields import ConfigError, setting

if TYPE_CHECKING:
    from cel_expr_python import cel

RuleAction = Literal["cache", "bypass"]
Recording = Literal["live", "record", "replay"]

CONDITION_VARIABLES = {
    "provider": "the provider's name as configured (the /<provider>/ path segment): openai, vllm, ...",
    "kind": "its wire format: openai, azure, anthropic or gemini",
    "endpoint": "chat/completions, completions, embeddings, responses, messages, generateContent, ...",
    "model": "the model the request names (body or path), or an empty string",
    "tools": "the names of the tools (functions) the request offers, in every wire format",
    "body": "the request body, a JSON object",
}
REASON_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
"""A bypass reason goes into `Cache-Status` as `detail=`: a token."""
EXTRA_HINT = "CEL rules need `pip install llmcache-sidecar[policy]` (the llmcache-sidecar image has it)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One policy rule: a condition and what a match decides."""

    when: str = setting(
        "when",
        "CEL condition over provider, kind, endpoint, model, tools (names) and body (the request JSON),"
        ' e.g. endpoint == "embeddings", or "send_email" in tools.',
        default="",
        required=True,
    )
    action: RuleAction | None = setting(
        "action",
        "cache: store the answer for this rule's ttl; bypass: neither look up nor store (the request goes"
        " upstream). The first matching rule with an action decides.",
        default=None,
    )
    ttl: float | None = setting(
        "ttl", "With action cache: how long the answer is kept (default: the cache's ttl).", default=None, duration=True
    )
    reason: str | None = setting(
        "reason",
        "With action bypass: shown in Cache-Status as detail=<reason> (default: rule-<index>).",
        default=None,
    )
    semantic: bool | None = setting(
        "semantic",
        "false: no semantic lookup or indexing for a matching request. The first matching rule that sets it decides.",
        default=None,
    )

    def _check(self, path: str) -> None:
        if not self.when.strip():
            raise ConfigError(f"{path}.when", "required: a CEL condition")
        if self.action is None and self.semantic is None:
            raise ConfigError(path, "a rule needs an action (cache or bypass) or semantic")
        if self.ttl is not None and self.action != "cache":
            raise ConfigError(f"{path}.ttl", "only a rule with action: cache has a ttl")
        if self.reason is not None:
            if self.action != "bypass":
                raise ConfigError(f"{path}.reason", "only a rule with action: bypass has a reason")
            if not REASON_RE.match(self.reason):
                raise ConfigError(f"{path}.reason", "lowercase letters, digits, '.', '_' and '-' (at most 63)")
        compile_condition(self.when, f"{path}.when")


def compile_condition(source: str, path: str = "when") -> cel.Expression:
    """The checked, compiled program of one condition; `ConfigError` with the compiler's message.

    Compiled once per distinct condition text in a process (the settings are parsed
    more than once: by the sidecar at start and on reload, by the operator per spec).
    """
    try:
        return _compile(source)
    except _CompileError as exc:
        raise ConfigError(path, str(exc)) from None


class _CompileError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _compile(source: str) -> cel.Expression:
    try:
        from cel_expr_python import cel
    except ImportError:
        raise _CompileError(EXTRA_HINT) from None
    try:
        program = _environment().compile(source)
    except RuntimeError as exc:  # cel-cpp's status: INVALID_ARGUMENT: ERROR: <input>:1:4: ...
        raise _CompileError(_compiler_message(str(exc))) from None
    result = program.return_type()
    if result != cel.Type.BOOL and result != cel.Type.DYN:
        raise _CompileError(f"a condition must be a bool; this one gives a {result.name().lower()}")
    return program


@lru_cache(maxsize=1)
def _environment() -> Any:
    from cel_expr_python import cel

    string = cel.Type.STRING
    return cel.NewEnv(
        variables={
            "provider": string,
            "kind": string,
            "endpoint": string,
            "model": string,
            "tools": cel.Type.List(string),
            "body": cel.Type.Map(string, cel.Type.DYN),
        }
    )


def activation(values: dict[str, Any]) -> Any:
    """The variables of one request, converted to CEL once for every condition evaluated on it."""
    return _environment().Activation(values)


def _compiler_message(text: str) -> str:
    """cel-cpp's error text on one line: each `ERROR: <input>:L:C: message`, without the source echo."""
    text = text.removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]")
    errors = [
        line.strip().removeprefix("ERROR: ").replace("<input>:", "at ", 1)
        for line in text.splitlines()
        if line.strip().startswith("ERROR:")
    ]
    return "; ".join(errors) if errors else text.strip()

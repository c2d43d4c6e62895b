"""Environment overrides: one setting from one `LLMCACHE_<PATH>` variable.

The path is the key path in upper snake case: `LLMCACHE_TTL=600`,
`LLMCACHE_BACKEND_TYPE=redis`, `LLMCACHE_BACKEND_REDIS_URL=redis://...`,
`LLMCACHE_PROVIDERS_OPENAI_UPSTREAM=http://...`. Values are read as YAML scalars. A
variable with the prefix that names no setting is an error, with the closest name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, get_args, get_origin

import yaml

from llmcache_sidecar.config.fields import ConfigError, is_settings_class, settings_of
from llmcache_sidecar.config.root import BUILTIN_PROVIDERS, Settings

ENV_PREFIX = "LLMCACHE_"
_NOT_SETTINGS = frozenset(
    {
        "LLMCACHE_CONFIG",  # read by the command itself
        "LLMCACHE_LOG_LEVEL",  # read by the command itself
        "LLMCACHE_WORDNET_DIR",  # read by semantic.wordnet; the sidecar image sets it
    }
)


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """`data` (a parsed YAML file) with the `LLMCACHE_*` overrides of `env` applied; `data` is not changed."""
    names = _env_paths(Settings, data, ())
    result: dict[str, Any] = _deep_copy(data)
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _NOT_SETTINGS or var.startswith("LLMCACHE_OPERATOR_"):
            continue
        target = names.get(var)
        if target is None:
            close = difflib.get_close_matches(var, list(names), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(var, "unknown environment setting" + hint)
        node = result
        for part in target[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(".".join(target), "cannot override inside a non-mapping value")
        try:
            node[target[-1]] = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise ConfigError(var, f"not a valid value: {exc}") from exc
    return result


def variable_for(path: str) -> str:
    """The variable that sets key path `path`: `backend.redis.url` -> `LLMCACHE_BACKEND_REDIS_URL`."""
    return _variable(path.split("."))


def _variable(path: tuple[str, ...] | list[str]) -> str:
    return ENV_PREFIX + "_".join(_snake(part) for part in path)


def _env_paths(cls: type, data: Any, prefix: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    data = data if isinstance(data, Mapping) else {}
    for setting in settings_of(cls):
        path = (*prefix, setting.key)
        tp = setting.type
        if is_settings_class(tp):
            out.update(_env_paths(tp, data.get(path[-1]), path))
        elif get_origin(tp) is dict and is_settings_class(get_args(tp)[1]):
            value_cls = get_args(tp)[1]
            names = set(data.get(path[-1]) or ()) | set(BUILTIN_PROVIDERS)
            for name in names:
                out.update(_env_paths(value_cls, (data.get(path[-1]) or {}).get(name), (*path, name)))
        else:
            out[_variable(path)] = path
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).replace("-", "_").upper()


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    return data

"""Reading a mapping into a settings class: keys, types and checks, every error with its path.

`parse` walks the fields `settings_of` gives, so the CRD's schema (which walks the same
fields) and the parser cannot disagree. It maps camelCase keys, rejects unknown ones
with the closest known key (`backend.memory.maxByte: unknown key; did you mean
maxBytes?`), checks types and minimums, reads durations, and then calls the class's own
`_check(path)` for what involves several fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from llmcache_sidecar.config.fields import ConfigError, is_settings_class, parse_duration, settings_of

T = TypeVar("T")


def parse(cls: type[T], data: Any, path: str = "") -> T:
    """Build settings class `cls` from a mapping, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping, got {_type_name(data)}")
    by_key = {s.key: s for s in settings_of(cls)}
    values: dict[str, Any] = {}
    for name, raw in data.items():
        sub = f"{path}.{name}" if path else str(name)
        found = by_key.get(name)
        if found is None:
            close = difflib.get_close_matches(str(name), list(by_key), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(by_key))}"
            raise ConfigError(sub, "unknown key" + hint)
        if raw is None and found.optional:
            values[found.name] = None
        else:
            values[found.name] = _value(found.type, raw, sub, found.meta)
    result = cls(**values)
    check = getattr(result, "_check", None)
    if check is not None:
        check(path)
    return result


def _value(tp: Any, raw: Any, path: str, meta: Mapping[str, Any]) -> Any:
    if raw is None:
        raise ConfigError(path, "must not be null")
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        if raw not in args:
            raise ConfigError(path, f"must be one of {', '.join(map(str, args))}, got {raw!r}")
        return raw
    if is_settings_class(tp):
        return parse(tp, raw, path)
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_type_name(raw)}")
        return {str(k): _value(args[1], v, f"{path}.{k}", {}) for k, v in raw.items()}
    if origin is tuple:
        if not isinstance(raw, list):
            raise ConfigError(path, f"expected a list, got {_type_name(raw)}")
        return tuple(_value(args[0], v, f"{path}[{i}]", {}) for i, v in enumerate(raw))
    value: Any
    if tp is float and meta.get("duration"):
        value = parse_duration(raw, path)
    elif tp is bool:
        if not isinstance(raw, bool):
            raise ConfigError(path, f"expected true or false, got {raw!r}")
        value = raw
    elif tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(path, f"expected an integer, got {raw!r}")
        value = raw
    elif tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ConfigError(path, f"expected a number, got {raw!r}")
        value = float(raw)
    elif tp is str:
        if not isinstance(raw, str):
            raise ConfigError(path, f"expected a string, got {_type_name(raw)}")
        value = raw
    else:  # pragma: no cover - a model type parse() does not know is a bug here
        raise TypeError(f"{path}: unsupported type {tp!r}")
    minimum = meta.get("minimum")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def _type_name(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)

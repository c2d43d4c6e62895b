"""Reading a mapping into a settings class: keys, types and checks, every error with its path.

`parse` walks the fields `settings_of` gives, so the CRD's schema (which walks the same
fields) and the parser cannot disagree. It maps camelCase keys, rejects unknown ones
with the closest known key (`backend.memory.maxByte: unknown key; did you mean
maxBytes?`), checks types and minimums, reads durations, and then calls the class's own
`_check(path)` for what involves several fields. Settings are frozen: a check that fills
in defaults returns the completed copy, which parse returns instead.

With a `View` (the operator's LLMCache spec), the keys and shapes are the view's, and a
check's error is put in the view's words.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from llmcache_sidecar.config.fields import ConfigError, View, is_settings_class, parse_duration, settings_of

T = TypeVar("T")


def parse(cls: type[T], data: Any, path: str = "", view: View | None = None) -> T:
    """Build settings class `cls` from a mapping, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping, got {_type_name(data)}")
    by_key = {s.key: s for s in settings_of(cls, view)}
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
            value = _value(found.type, raw, sub, found.meta, view)
            values[found.name] = found.read(value, sub) if found.read else value
    result = cls(**values)
    check = getattr(result, "_check", None)
    if check is not None:
        try:
            completed = check(path)
        except ConfigError as exc:
            if view is None:
                raise
            raise view.check_error(exc) from exc
        if completed is not None:
            result = completed
    return result


def _value(tp: Any, raw: Any, path: str, meta: Mapping[str, Any], view: View | None) -> Any:
    if raw is None:
        raise ConfigError(path, "must not be null")
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        if raw not in args:
            raise ConfigError(path, f"must be one of {', '.join(map(str, args))}, got {raw!r}")
        return raw
    if is_settings_class(tp):
        return parse(tp, raw, path, view)
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_type_name(raw)}")
        return {str(k): _value(args[1], v, f"{path}.{k}", {}, view) for k, v in raw.items()}
    if origin is tuple:
        if not isinstance(raw, list):
            raise ConfigError(path, f"expected a list, got {_type_name(raw)}")
        return tuple(_value(args[0], v, f"{path}[{i}]", {}, view) for i, v in enumerate(raw))
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

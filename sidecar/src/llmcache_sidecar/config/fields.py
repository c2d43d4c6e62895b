"""How a setting is declared, and the one reading of a settings class's fields.

Each setting is a dataclass field made by `setting(...)`: its camelCase key, its
description (the CRD's `description`), its default, and the few checks the walkers
know (`minimum`, `duration`; the operator adds `schema`, `required` and `column` for the CRD).
`settings_of` reads a class's fields once, with their type hints resolved and
`Optional` unwrapped, for every walker: parse, environment overrides, dump, schema and
the operator's CRD.

A `View` shows the same settings somewhere other than the sidecar's file: the
operator's LLMCache spec hides what the operator sets itself (`operator_owned`) and
shows each secret file as a Secret reference. `parse` and `object_schema` take one.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Protocol, TypeVar, Union, get_args, get_origin, get_type_hints, overload

T = TypeVar("T")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
"""A name that goes into a key or a URL path: a namespace, a provider."""
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIONS = (Union, types.UnionType)


class ConfigError(ValueError):
    """A configuration value is wrong; `path` says which one."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@overload
def setting(
    key: str,
    doc: str,
    *,
    default: T,
    minimum: float | None = None,
    duration: bool = False,
    schema: Mapping[str, Any] | None = None,
    required: bool = False,
    operator_owned: bool = False,
    before: str | None = None,
    column: str | None = None,
) -> T: ...


@overload
def setting(
    key: str,
    doc: str,
    *,
    factory: Callable[[], T],
    minimum: float | None = None,
    duration: bool = False,
    schema: Mapping[str, Any] | None = None,
    required: bool = False,
    operator_owned: bool = False,
    before: str | None = None,
    column: str | None = None,
) -> T: ...


def setting(
    key: str,
    doc: str,
    *,
    default: Any = MISSING,
    factory: Any = MISSING,
    minimum: float | None = None,
    duration: bool = False,
    schema: Mapping[str, Any] | None = None,
    required: bool = False,
    operator_owned: bool = False,
    before: str | None = None,
    column: str | None = None,
) -> Any:
    """One setting: a dataclass field with its key, description and checks in `metadata`.

    `minimum` is checked by parse and written to the schema; `duration` reads a number of
    seconds or a string such as `1h30m`; `schema` (merged into the field's CRD schema),
    `required` and `column` (a `kubectl get` column of that name) are the operator's
    Kubernetes refinements. `operator_owned`: in a pod the operator sets it (ports, the
    interception CA), so the LLMCache spec does not offer it. `before` names a field this
    one is listed before, for a subclass whose own field belongs among its base's (the CRD
    lists the spec's keys in the order users know).

    A key ending in `File` names a file that holds a credential: the LLMCache spec shows
    it as a Secret reference (`passwordFile` -> `passwordSecretRef`), never as a path.
    """
    metadata: dict[str, Any] = {"key": key, "doc": doc}
    if minimum is not None:
        metadata["minimum"] = minimum
    if duration:
        metadata["duration"] = True
    if schema is not None:
        metadata["schema"] = schema
    if required:
        metadata["required"] = True
    if operator_owned:
        metadata["operator_owned"] = True
    if before is not None:
        metadata["before"] = before
    if column is not None:
        metadata["column"] = column
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of a settings class, read once: its key, its type without `None`, its metadata."""

    name: str
    """The attribute name (snake_case)."""
    key: str
    """The key in YAML, the environment path and the CRD (camelCase)."""
    type: Any
    """The field's type, `Optional` unwrapped."""
    optional: bool
    """The field may be null."""
    field: Field[Any]
    read: Callable[[Any, str], Any] | None = None
    """Where a view shows the setting in another shape: the parsed value (and its key path) to the stored one."""

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.field.metadata

    @property
    def operator_owned(self) -> bool:
        return bool(self.meta.get("operator_owned"))


class View(Protocol):
    """How settings appear somewhere other than the sidecar's file (the operator's LLMCache spec)."""

    def settings(self, cls: type) -> tuple[Setting, ...]:
        """`cls`'s settings as this view shows them: some left out, some under another key and type."""
        ...

    def check_error(self, error: ConfigError) -> ConfigError:
        """An error of a class's own check, which names the sidecar's keys, in this view's keys."""
        ...


def settings_of(cls: type, view: View | None = None) -> tuple[Setting, ...]:
    """The fields of settings class `cls` in declaration order (read once per class), or as `view` shows them."""
    if view is not None:
        return view.settings(cls)
    known = _SETTINGS.get(cls)
    if known is None:
        hints = get_type_hints(cls)
        read = [Setting(fld.name, fld.metadata["key"], *unwrap(hints[fld.name]), fld) for fld in fields(cls)]
        known = _SETTINGS[cls] = _placed(read)
    return known


_SETTINGS: dict[type, tuple[Setting, ...]] = {}


def _placed(settings: list[Setting]) -> tuple[Setting, ...]:
    """Declaration order, with each field that says `before=` moved in front of that field."""
    order = [s for s in settings if "before" not in s.meta]
    for moved in (s for s in settings if "before" in s.meta):
        names = [s.name for s in order]
        if moved.meta["before"] not in names:
            raise TypeError(f"{moved.name}: before={moved.meta['before']!r} names no field")
        order.insert(names.index(moved.meta["before"]), moved)
    return tuple(order)


def unwrap(tp: Any) -> tuple[Any, bool]:
    """`(X, True)` for `X | None`, else `(tp, False)`: the one place `Optional` is read."""
    if get_origin(tp) in _UNIONS:
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return inner, True
    return tp, False


def is_settings_class(tp: Any) -> bool:
    """A nested block (a dataclass), as opposed to a value."""
    return isinstance(tp, type) and is_dataclass(tp)


def parse_duration(raw: Any, path: str = "") -> float:
    """Seconds from a number or a duration string: 90, 1.5, "90s", "30m", "1h30m", "500ms"."""
    if isinstance(raw, bool):
        raise ConfigError(path, f"expected a duration, got {raw!r}")
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    elif isinstance(raw, str) and (m := _DURATION_RE.match(raw.strip())) and any(m.groups()):
        h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s + ms / 1000
    else:
        raise ConfigError(path, f"expected seconds or a duration such as 30s, 5m, 1h; got {raw!r}")
    if seconds < 0:
        raise ConfigError(path, f"must not be negative, got {raw!r}")
    return seconds


def check_address(value: str, path: str) -> None:
    """`host:port`, as the listen addresses and Sentinel addresses are written."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(path, f"expected host:port, got {value!r}")

"""OpenAPI v3 schema of the configuration model, for the `LLMCache` CRD.

It walks the same fields that `parse` reads (`settings_of`), so the CRD and the parser
cannot disagree: each field's `doc` becomes its description, a Literal becomes an
enum, a duration accepts a number of seconds or a string such as `1h`
(`x-kubernetes-int-or-string`), defaults are written out. The output is a structural
schema as Kubernetes requires (no `additionalProperties: false`; the API server prunes
unknown fields, and the operator's own parse rejects them with a path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any, Literal, get_args, get_origin

from llmcache_sidecar.config.fields import Setting, View, is_settings_class, settings_of

JSONSchema = dict[str, Any]


def object_schema(cls: type, *, description: str | None = None, view: View | None = None) -> JSONSchema:
    """The schema of one settings class, as `view` (if any) shows it."""
    props: JSONSchema = {s.key: setting_schema(s, view) for s in settings_of(cls, view)}
    schema: JSONSchema = {"type": "object", "properties": props}
    if description:
        schema["description"] = description
    return schema


def setting_schema(setting: Setting, view: View | None = None) -> JSONSchema:
    """The schema of one setting: its type's, with nullable, description, minimum and default."""
    meta = setting.meta
    schema = type_schema(setting.type, meta, view)
    if setting.optional:
        schema["nullable"] = True
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    if "minimum" in meta:
        schema["minimum"] = meta["minimum"]
    default = setting.field.default
    if default is not MISSING and default is not None:
        if meta.get("duration"):
            # Written as users write it: a printer column then shows `1h` whether the value
            # was given or defaulted by the API server.
            schema["default"] = duration_text(default)
        else:
            schema["default"] = list(default) if isinstance(default, tuple) else _plain(default)
    return schema


def duration_text(seconds: float) -> str:
    """A duration as config files write it: 3600 -> "1h", 90 -> "1m30s", 0.25 -> "250ms", 0 -> "0s"."""
    millis = round(seconds * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def type_schema(tp: Any, meta: Mapping[str, Any] | None = None, view: View | None = None) -> JSONSchema:
    """The schema of a value of type `tp` (not `Optional`), without a description."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if is_settings_class(tp):
        return object_schema(tp, view=view)
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1], view=view)}
    if origin is tuple:
        return {"type": "array", "items": type_schema(args[0], view=view)}
    if tp is float and meta is not None and meta.get("duration"):
        return {"x-kubernetes-int-or-string": True, "pattern": r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$|^[0-9]+$"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no schema for {tp!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value

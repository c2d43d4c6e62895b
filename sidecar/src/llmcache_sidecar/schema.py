"""OpenAPI v3 schema of the configuration model, for the `LLMCache` CRD.

It walks the same dataclass fields that `config.parse` reads, so the CRD and the
parser cannot disagree: each field's `metadata["doc"]` becomes its description, a
Literal becomes an enum, a duration accepts a number of seconds or a string such as
`1h` (`x-kubernetes-int-or-string`), defaults are written out. The output is a
structural schema as Kubernetes requires (no `additionalProperties: false`; the API
server prunes unknown fields, and the operator's own parse rejects them with a path).
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from llmcache_sidecar.config import _UNIONS

JSONSchema = dict[str, Any]


def object_schema(cls: type, *, description: str | None = None) -> JSONSchema:
    """The schema of one settings dataclass."""
    hints = get_type_hints(cls)
    props: JSONSchema = {}
    for fld in fields(cls):
        props[fld.metadata["key"]] = field_schema(hints[fld.name], fld)
    schema: JSONSchema = {"type": "object", "properties": props}
    if description:
        schema["description"] = description
    return schema


def field_schema(tp: Any, fld: dataclasses.Field[Any] | None = None) -> JSONSchema:
    meta = fld.metadata if fld is not None else {}
    schema = _type_schema(tp, meta)
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    if "minimum" in meta:
        schema["minimum"] = meta["minimum"]
    if fld is not None and fld.default is not MISSING and fld.default is not None:
        default = fld.default
        schema["default"] = list(default) if isinstance(default, tuple) else _plain(default)
    return schema


def _type_schema(tp: Any, meta: Any) -> JSONSchema:
    origin, args = get_origin(tp), get_args(tp)
    if origin in _UNIONS:
        inner = next(a for a in args if a is not type(None))
        return {**_type_schema(inner, meta), "nullable": True}
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if is_dataclass(tp):
        return object_schema(tp)  # type: ignore[arg-type]
    if origin is dict:
        return {"type": "object", "additionalProperties": field_schema(args[1])}
    if origin is tuple:
        return {"type": "array", "items": field_schema(args[0])}
    if tp is float and meta.get("duration"):
        return {"x-kubernetes-int-or-string": True, "pattern": r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$|^[0-9]+$"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no schema for {tp!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value

"""Settings back to plain data: the inverse of `parse`.

The operator writes the sidecar's file into a ConfigMap with it (defaults left out, so
the file says only what the LLMCache set), and its status the same way.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, is_dataclass
from typing import Any

from llmcache_sidecar.config.fields import settings_of


def to_mapping(obj: Any, *, omit_defaults: bool = False) -> dict[str, Any]:
    """The camelCase mapping `parse` would read back into an equal `obj`."""
    out: dict[str, Any] = {}
    for setting in settings_of(type(obj)):
        value = getattr(obj, setting.name)
        if omit_defaults and _is_default(setting.field, value):
            continue
        out[setting.key] = _plain(value, omit_defaults)
    return out


def _plain(value: Any, omit_defaults: bool) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_mapping(value, omit_defaults=omit_defaults)
    if isinstance(value, tuple | list):
        return [_plain(v, omit_defaults) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, omit_defaults) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_default(fld: Field[Any], value: Any) -> bool:
    if fld.default is not MISSING:
        return bool(value == fld.default)
    if fld.default_factory is not MISSING:
        return bool(value == fld.default_factory())
    return False

"""The sidecar's configuration from its file: YAML, then `LLMCACHE_*` overrides, then parse."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmcache_sidecar.config.env import apply_env, variable_for
from llmcache_sidecar.config.fields import ConfigError
from llmcache_sidecar.config.parsing import parse
from llmcache_sidecar.config.root import Settings


def load(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply `LLMCACHE_*` overrides, and parse."""
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from exc
    return loads(text, f"config file {path}", env)


def loads(text: str, origin: str, env: Mapping[str, str] | None = None) -> Settings:
    """Parse YAML `text` (named `origin` in errors), apply `LLMCACHE_*` overrides, and parse."""
    data: dict[str, Any] = {}
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{origin} is not valid YAML: {exc}") from exc
    if loaded is not None:
        if not isinstance(loaded, dict):
            raise ConfigError("", f"{origin} must hold a mapping")
        data = loaded
    environment = os.environ if env is None else env
    try:
        return parse(Settings, apply_env(data, environment))
    except ConfigError as exc:
        # Name the variable when an environment override is what is wrong.
        variable = variable_for(exc.path)
        if exc.path and variable in environment:
            raise ConfigError(exc.path, f"{exc.message} (set by {variable})") from exc
        raise

"""Secret files: credentials the configuration names by path, read when a part is built.

In a pod each file comes from a Secret volume. The configuration never holds a secret,
only the file's path (the operator turns the LLMCache's Secret references into those
paths), so the ConfigMap and the CRD carry none.
"""

from __future__ import annotations

import re
from pathlib import Path

from llmcache_sidecar.config.fields import ConfigError

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: Unicode category Cc


class SecretFileError(ConfigError):
    """A secret file the configuration names cannot be read.

    Not bad input like the rest of `ConfigError`: in a pod the file comes from a Secret
    volume that is not filled yet, or whose Secret is gone, and may appear later. The
    sidecar runs without the part that needs it (requests pass through) and retries.
    """


def read_secret(path: str | None, key_path: str) -> str | None:
    """The content of the secret file at `path` (None when unset), without surrounding whitespace.

    A value with a control character left inside (`sk-a\nsk-b`, a CR of a CRLF file pasted
    into a password) is refused: it cannot go into an HTTP header (aiohttp raises on every
    request) nor mean what its author meant. The error names the file, never its content.
    """
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(key_path, f"cannot read the secret file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SecretFileError(key_path, f"the secret file {path} is not UTF-8 text") from exc
    if _CONTROL_RE.search(value):
        raise SecretFileError(
            key_path, f"the secret file {path} has a control character (a line break?) inside its value"
        )
    return value

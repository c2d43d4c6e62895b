"""The path below a route, as the app sent it and as the cache reads it: one and the same path.

The data path classifies a request (cacheable endpoint or not, which model) and keys it
by its decoded path, and sends the *raw* path upstream, below the route's upstream URL.
Both readings must name the same resource, so a path whose decoding could change where
it goes is refused (400) instead of being forwarded: `..%2f..%2fadmin` would climb out of
the route's base URL, `v1/models%23/chat/completions` would be classified as a chat call
while a server that decodes `%23` serves `v1/models`. Refused:

- a `.` or `..` segment, raw or percent-encoded (`%2e%2e`);
- an encoded `/`, `\\`, `?` or `#` (`%2F`, `%5C`, `%3F`, `%23`), a NUL (`%00`), and a raw
  `\\` or `#`.

No provider API has such paths; any other percent-encoding is decoded for the cache and
forwarded as it came.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

_ENCODED: Final = re.compile(r"%(?:2f|5c|3f|23|00)", re.IGNORECASE)
_DOT_SEGMENTS: Final = frozenset({".", ".."})


class PathError(ValueError):
    """A path the sidecar will not forward; the message says why, for the 400 answer."""


def decode(raw: str) -> str:
    """The decoded form of `raw` (a path without its query), checked; `PathError` when refused."""
    if "%" in raw:
        if _ENCODED.search(raw):
            raise PathError("an encoded '/', '\\', '?', '#' or NUL (%2F, %5C, %3F, %23, %00) in the path")
        path = unquote(raw, errors="replace")  # classification only: the raw bytes go upstream
    else:
        path = raw
    if "#" in path:  # %23 was refused above: this one was sent raw
        raise PathError("a '#' in the path")
    if "\\" in path:
        raise PathError("a '\\' in the path")
    if "." in path and not _DOT_SEGMENTS.isdisjoint(path.split("/")):
        raise PathError("a '.' or '..' segment in the path")
    return path


def split_query(raw_target: str) -> tuple[str, str]:
    """(raw path, raw query) of an origin-form request target such as `request.raw_path`."""
    path, _, query = raw_target.partition("?")
    return path, query

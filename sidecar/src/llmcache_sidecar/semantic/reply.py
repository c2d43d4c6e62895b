"""Reading the reply of a call the sidecar makes for itself (the judge, the embedder), bounded.

Those replies are small and of a known shape, but the server is not ours to trust: a
misconfigured or broken endpoint can send hundreds of MiB (a reply read whole doubled
the sidecar's memory and held the event loop in the JSON parser for as long). So the
status is checked first (an error body is never read), a declared `Content-Length`
over the bound is refused before reading, and the body is read in chunks only up to
the bound: a longer reply is a failed call, whatever it says.

Any failure of such a call is a miss, never an error to the app. `call_failed` names
it; one of a type the network or the other side cannot cause is a bug here, and is
logged with its traceback so that the miss does not hide it.
"""

from __future__ import annotations

import logging

import aiohttp

logger = logging.getLogger(__name__)

CALL_FAILURES = (aiohttp.ClientError, TimeoutError, OSError, ValueError, RuntimeError)
"""What sending a call and reading its reply raise when the network or the server fails
(ValueError: aiohttp refusing a header value; RuntimeError: the session closed, as
during a shutdown)."""


class ReplyError(Exception):
    """The reply is an error status, or longer than the caller's bound."""


def call_failed(what: str, exc: Exception) -> str:
    """The message of a failed call; an exception of an unexpected type is logged first, with its traceback."""
    if not isinstance(exc, CALL_FAILURES):
        logger.error("%s raised %s: a bug in the sidecar, not a failed call", what, type(exc).__name__, exc_info=exc)
    return f"{what} failed: {type(exc).__name__}"


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of a 200 reply of at most `limit` bytes; `ReplyError` for anything else."""
    if resp.status != 200:
        raise ReplyError(f"answered {resp.status}")
    if resp.content_length is not None and resp.content_length > limit:
        raise ReplyError(f"reply of {resp.content_length} bytes, over the {limit}-byte bound")
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise ReplyError(f"reply over the {limit}-byte bound")
    return bytes(body)

"""Reading the reply of a call the sidecar makes for itself (the judge, the embedder), bounded.

Those replies are small and of a known shape, but the server is not ours to trust: a
misconfigured or broken endpoint can send hundreds of MiB (a reply read whole doubled
the sidecar's memory and held the event loop in the JSON parser for as long). So the
status is checked first (an error body is never read), a declared `Content-Length`
over the bound is refused before reading, and the body is read in chunks only up to
the bound: a longer reply is a failed call, whatever it says.
"""

from __future__ import annotations

import aiohttp


class ReplyError(Exception):
    """The reply is an error status, or longer than the caller's bound."""


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

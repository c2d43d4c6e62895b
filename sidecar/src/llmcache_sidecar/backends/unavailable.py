"""The stand-in for a backend that could not be built, because a secret file is unreadable.

In a pod the file comes from a Secret volume that is not filled yet, or whose Secret is
gone. The sidecar keeps serving, uncached, with this in the backend's place: the data
path passes cacheable requests through (`Runtime.backend_error` says why), and the admin
API answers with the reason: `/readyz` is 503, a flush fails, nothing is ever found.
The reload poll builds the real backend again until it succeeds.
"""

from __future__ import annotations

from llmcache_sidecar.backends.base import BackendError, BackendStats
from llmcache_sidecar.entry import CachedResponse


class Unavailable:
    """Holds nothing and stores nothing; `ping` and `bump_epoch` raise with the reason."""

    self_bounded = True

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def get(self, key: str) -> CachedResponse | None:
        return None

    async def set(self, key: str, value: CachedResponse, ttl: float) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def get_epoch(self, namespace: str) -> int:
        return -1  # unknown: callers retry later

    async def bump_epoch(self, namespace: str) -> int:
        raise BackendError(self.reason)

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        return True  # nobody to coordinate with: go upstream

    async def release_lease(self, key: str) -> None:
        return None

    async def keys(self, prefix: str, limit: int) -> list[str]:
        raise BackendError(self.reason)

    async def stats(self) -> BackendStats:
        return BackendStats(None, None)

    async def ping(self) -> None:
        raise BackendError(self.reason)

    async def aclose(self) -> None:
        return None

"""The per-namespace ACL of docs/security.md on a real Redis Cluster: enough, and a fence (issue 15, finding 5).

Both `ACL SETUSER` lines of docs/security.md (the one every Redis needs and the Cluster's
addition) are applied, as written there, to every node of the session's cluster.
"""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from llmcache_sidecar.backends import BackendError
from llmcache_sidecar.backends.redis import RedisCache
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.wire import keys
from tests.e2e.test_redis_acl import DOCS, DOCUMENTED_USER, documented_acl
from tests.realparts import Servers


def cluster_addition() -> list[str]:
    line = next(
        line
        for line in DOCS.read_text().splitlines()
        if line.startswith(f"ACL SETUSER {DOCUMENTED_USER} ") and " on " not in line
    )
    return line.split()[3:]  # the rules after "ACL SETUSER <user>"


async def test_the_documented_acl_lets_a_cluster_client_do_its_work_in_its_namespace_only(
    redis_cluster: Servers,
) -> None:
    namespace = f"acl-cluster-{int(time.time() * 1000) % 10**8}"
    for port in redis_cluster.ports:
        async with aioredis.Redis(port=port) as node:
            await node.execute_command("ACL", *documented_acl(namespace, "pw"), *cluster_addition())
    url = f"redis://llmcache-{namespace}@127.0.0.1:{redis_cluster.port}/0"
    cache = RedisCache.cluster(url, password="pw", timeout=2.0, max_connections=8)
    entry = CachedResponse(status=200, headers=(), body=b"{}", created_at=time.time())
    try:
        await cache.ping()
        for i in range(8):  # over several shards
            key = keys.compose(namespace, "e0", "shared", f"{i:064x}")
            await cache.set(key, entry, 10)
            assert await cache.get(key) == entry
            assert await cache.acquire_lease(key, 5)
            await cache.release_lease(key)
        assert await cache.bump_epoch(namespace) == 1
        assert await cache.get_epoch(namespace) == 1
        assert (await cache.stats()).entries is not None
        other = keys.compose(f"{namespace}-other", "e0", "shared", "0" * 64)
        with pytest.raises(BackendError) as denied:
            await cache.get(other)
        assert isinstance(denied.value.__cause__, NoPermissionError)
    finally:
        await cache.aclose()

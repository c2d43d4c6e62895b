"""Get and set latency of each cache backend, against the same real servers the tests use.

    python -m bench.backends [--ops 1000] [--backends memory,redis,...]

Each backend is built by `build_backend` (so FailOpen is in the path, as in the
sidecar), then timed one call at a time: `--ops` sets, then `--ops` gets of the keys
just written, at 1 KiB and at 100 KiB bodies of text-like (compressible) bytes. The
table shows p50 and p99 in milliseconds, and the misses and FailOpen errors seen
(both should be 0). Numbers from emulators (moto, azurite,
gcp-storage-emulator) say what our code adds, not what the cloud service would take.
This is a benchmark: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmcache_sidecar import config
from llmcache_sidecar.backends import CacheBackend, build_backend
from llmcache_sidecar.entry import CachedResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import realparts  # noqa: E402  (the test servers, reused)

BACKENDS = ["memory", "disk", "redis", "redis-cluster", "s3", "gcs", "azureBlob", "dual-redis"]
SIZES = {"1KiB": 1024, "100KiB": 100 * 1024}
BUCKET = "llmcache-bench"
WORDS = [b"the", b"a", b"model", b"answer", b"token", b"cache", b"prompt", b"stream", b"of", b"to", b"and", b"with"]


def text(size: int, rng: random.Random) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.choice(WORDS) + b" "
    return bytes(out[:size])


@contextlib.contextmanager
def settings_for(name: str, workdir: Path) -> Iterator[dict[str, Any]]:
    timeout = 2000
    if name == "memory":
        yield {"type": "memory"}
    elif name == "disk":
        yield {"type": "disk", "disk": {"path": str(workdir / "disk")}}
    elif name in ("redis", "dual-redis"):
        with realparts.redis(workdir) as srv:
            block = {"url": f"redis://127.0.0.1:{srv.port}/0", "timeoutMs": timeout}
            yield {"type": "dual", "dual": {"l2": "redis"}, "redis": block} if name == "dual-redis" else {
                "type": "redis", "redis": block}  # fmt: skip
    elif name == "redis-cluster":
        with realparts.redis_cluster(workdir) as srv:
            yield {"type": "redis", "redis": {"url": f"redis://127.0.0.1:{srv.port}/0", "cluster": True,
                                              "timeoutMs": timeout}}  # fmt: skip
    elif name == "s3":
        from botocore.session import get_session

        with realparts.moto_s3(workdir) as srv:
            endpoint = f"http://127.0.0.1:{srv.port}"
            client = get_session().create_client("s3", region_name="us-east-1", endpoint_url=endpoint,
                                                 aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
            client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]  # made at run time
            client.close()
            keys = workdir / "key-id", workdir / "secret"
            for path in keys:
                path.write_text("bench")
            block = {
                "bucket": BUCKET,
                "endpointUrl": endpoint,
                "region": "us-east-1",
                "addressingStyle": "path",
                "timeoutMs": timeout,
                "accessKeyIdFile": str(keys[0]),
                "secretAccessKeyFile": str(keys[1]),
            }
            yield {"type": "s3", "s3": block}
    elif name == "gcs":
        with realparts.gcs_emulator(workdir, BUCKET) as srv:
            yield {"type": "gcs", "gcs": {"bucket": BUCKET, "endpointUrl": f"http://127.0.0.1:{srv.port}",
                                          "timeoutMs": timeout}}  # fmt: skip
    elif name == "azureBlob":
        from azure.storage.blob import ContainerClient

        with realparts.azurite(workdir) as srv:
            conn = realparts.azurite_connection_string(srv.port)
            with ContainerClient.from_connection_string(conn, BUCKET) as container:
                container.create_container()
            conn_file = workdir / "azure"
            conn_file.write_text(conn)
            yield {"type": "azureBlob", "azureBlob": {"container": BUCKET, "connectionStringFile": str(conn_file),
                                                      "timeoutMs": timeout}}  # fmt: skip
    else:
        raise SystemExit(f"unknown backend {name}; known: {', '.join(BACKENDS)}")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def measure(backend: CacheBackend, size: int, ops: int) -> dict[str, Any]:
    rng = random.Random(size)
    values = [CachedResponse(200, (("content-type", "application/json"),), text(size, rng), 0.0) for _ in range(50)]
    keys = [f"llmc:1:bench:0:t:{size}:{i}" for i in range(ops)]
    set_times, get_times, misses = [], [], 0
    for i, key in enumerate(keys):
        t = time.perf_counter()
        await backend.set(key, values[i % len(values)], 600)
        set_times.append(time.perf_counter() - t)
    for key in keys:
        t = time.perf_counter()
        got = await backend.get(key)
        get_times.append(time.perf_counter() - t)
        misses += got is None
    return {
        "set_p50": pct(set_times, 0.5), "set_p99": pct(set_times, 0.99),
        "get_p50": pct(get_times, 0.5), "get_p99": pct(get_times, 0.99),
        "misses": misses,
    }  # fmt: skip


async def run_one(data: dict[str, Any], ops: int) -> dict[str, dict[str, Any]]:
    errors: list[str] = []
    settings = config.parse(config.BackendSettings, data, "backend")
    backend = build_backend(settings, on_error=lambda op, reason: errors.append(f"{op}:{reason}"))
    try:
        await backend.set("warm-up", CachedResponse(200, (), b"x", 0.0), 60)  # connect, create clients
        results = {label: await measure(backend, size, ops) for label, size in SIZES.items()}
    finally:
        await backend.aclose()
    for result in results.values():
        result["errors"] = len(errors)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    columns = ("set p50", "set p99", "get p50", "get p99")
    header = f"{'backend':<14}{'value':>8}" + "".join(f"{c:>10}" for c in columns) + f"{'misses':>8}{'errors':>8}"
    print(f"{args.ops} sequential ops per cell, milliseconds")
    print(header)
    print("-" * len(header))
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, settings_for(name, Path(tmp)) as data:
            results = asyncio.run(run_one(data, args.ops))
        for label, r in results.items():
            print(f"{name:<14}{label:>8}{r['set_p50']:>10.3f}{r['set_p99']:>10.3f}{r['get_p50']:>10.3f}"
                  f"{r['get_p99']:>10.3f}{r['misses']:>8}{r['errors']:>8}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

"""Object-storage servers that speak the real protocols: moto's S3 server,
gcp-storage-emulator, and Microsoft's azurite. `scripts/install-test-servers.sh`
installs what pip does not."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.realparts.ports import free_port
from tests.realparts.processes import ROOT, Servers, binary, http_answers, spawn, wait_ready

BUCKET = "llmcache-test"
"""The bucket (S3, GCS) or container (Azure) the session's servers are started with."""


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"moto-{port}.log"
    servers = Servers([spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)], [port])
    try:
        wait_ready("moto server", lambda: http_answers(port, "/moto-api/"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


# gcp-storage-emulator serves one connection at a time (http.server.HTTPServer) with the standard
# listen backlog of 5. The contract's concurrent cases open more connections than that, and on a
# busy machine the kernel dropped the overflow: a write failed with "Connection reset by peer" in
# about one run of two. A real GCS endpoint accepts them all, so the emulator gets a deeper backlog.
GCS_LAUNCH = (
    "import http.server, sys; http.server.HTTPServer.request_queue_size = 128; "
    "from gcp_storage_emulator.__main__ import main; sys.argv[0] = 'gcp-storage-emulator'; sys.exit(main())"
)


@contextlib.contextmanager
def gcs_emulator(workdir: Path, bucket: str) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"gcs-{port}.log"
    args = [sys.executable, "-c", GCS_LAUNCH, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
            "--quiet", "--default-bucket", bucket]  # fmt: skip
    servers = Servers([spawn(args, log, cwd=workdir)], [port])
    try:
        wait_ready("gcp-storage-emulator", lambda: http_answers(port, "/storage/v1/b"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def azurite(workdir: Path) -> Iterator[Servers]:
    port = free_port()
    log = workdir / f"azurite-{port}.log"
    exe = binary("azurite-blob", ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob")
    args = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
            "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"]  # fmt: skip
    servers = Servers([spawn(args, log, cwd=workdir)], [port])
    try:
        wait_ready("azurite", lambda: http_answers(port, "/devstoreaccount1?comp=list"), servers.processes, log)
        yield servers
    finally:
        servers.stop()


# The well-known development account of azurite and the Azure storage emulator:
# public, documented, and accepted by nothing but an emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )

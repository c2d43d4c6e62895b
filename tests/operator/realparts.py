"""Real parts that tests start for themselves: a redis-server on a free port, and a TLS CA
(issued by the operator's own webhook_tls, itself tested in test_webhook_tls.py).

Shared by the operator's component tests and the end-to-end tests against a real
API server. Nothing here talks to Kubernetes.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RedisServer:
    port: int
    password: str | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(
    tmp: Path, password: str | None = None, port: int | None = None
) -> tuple[subprocess.Popen[bytes], RedisServer]:
    """A redis-server on `port` (a free one by default), listening when this returns."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    port = port or free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)]
    if password:
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, RedisServer(port, password)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server did not listen on {port} within {REDIS_START_TIMEOUT_S}s")


@dataclass(frozen=True)
class TLS:
    ca_pem: bytes
    certfile: Path
    keyfile: Path


def make_tls(folder: Path) -> TLS:
    """A CA and a server certificate for 127.0.0.1 and localhost (files in `folder`), as the operator issues them."""
    # Imported here: the sidecar's tests use this module's Redis launcher in the lowest-versions
    # environment (make test-lowest), which does not install the operator.
    from llmcache_operator import webhook_tls

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_pem, ca_key_pem = webhook_tls.issue_ca(now, days=1)
    cert_pem, key_pem = webhook_tls.issue_serving(ca_pem, ca_key_pem, ["localhost", "127.0.0.1"], now, days=1)
    certfile, keyfile = folder / "tls.crt", folder / "tls.key"
    certfile.write_bytes(cert_pem)
    keyfile.write_bytes(key_pem)
    return TLS(ca_pem=ca_pem, certfile=certfile, keyfile=keyfile)

"""A TLS CA and a server certificate for loopback, issued by the operator's own
`webhook_tls` (itself tested in tests/operator/test_webhook_tls.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TLS:
    ca_pem: bytes
    certfile: Path
    keyfile: Path


def make_tls(folder: Path) -> TLS:
    """A CA and a server certificate for 127.0.0.1 and localhost (files in `folder`), as the operator issues them."""
    # Imported here: the sidecar's tests use this package in the lowest-versions environment
    # (make test-lowest), which does not install the operator.
    from llmcache_operator import webhook_tls

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_pem, ca_key_pem = webhook_tls.issue_ca(now, days=1)
    cert_pem, key_pem = webhook_tls.issue_serving(ca_pem, ca_key_pem, ["localhost", "127.0.0.1"], now, days=1)
    certfile, keyfile = folder / "tls.crt", folder / "tls.key"
    certfile.write_bytes(cert_pem)
    keyfile.write_bytes(key_pem)
    return TLS(ca_pem=ca_pem, certfile=certfile, keyfile=keyfile)

"""`llmcache-trust-bundle`, the init container's command: run as installed, judged by real TLS handshakes.

An app using `ca-bundle.crt` (SSL_CERT_FILE) must reach both ordinary HTTPS sites, signed
by the system roots, and intercepted hosts, signed by the namespace CA; `ca.crt`
(NODE_EXTRA_CA_CERTS, which adds to Node's own roots) holds the namespace CA alone. The
system roots here are `pki.public_ca`, standing in for the image's
/etc/ssl/certs/ca-certificates.crt.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.transparent.conftest import Pki, server_context

SCRIPT = Path(sys.executable).with_name("llmcache-trust-bundle")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False)


async def handshake(ca: trustme.CA, name: str, client: ssl.SSLContext) -> bool:
    """Whether a client with `client` completes TLS with a server whose leaf `ca` signed for `name`."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context(ca, name))
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=name)
    except ssl.SSLCertVerificationError:
        return False
    finally:
        server.close()
    writer.close()
    return True


async def test_the_bundle_lets_an_app_reach_public_sites_and_intercepted_hosts(pki: Pki, tmp_path: Path) -> None:
    out = tmp_path / "trust"
    result = run("--trust", str(pki.ca_cert_file), "--out", str(out), "--system", str(pki.public_file))
    assert result.returncode == 0, result.stderr
    bundle = ssl.create_default_context(cafile=str(out / "ca-bundle.crt"))
    ours_only = ssl.create_default_context(cafile=str(out / "ca.crt"))

    assert await handshake(pki.public_ca, "example.org", bundle)
    assert await handshake(pki.intercept_ca, "api.openai.com", bundle)
    assert await handshake(pki.intercept_ca, "api.openai.com", ours_only)
    assert not await handshake(pki.public_ca, "example.org", ours_only)
    assert not await handshake(trustme.CA(), "example.org", bundle)  # nothing else slipped in
    assert (out / "ca.crt").stat().st_mode & 0o777 == 0o444


@pytest.mark.parametrize(
    ("trust", "system", "error"),
    [
        ("missing", "public", "No such file"),
        ("empty", "public", "the trust file holds no PEM certificate"),
        ("intercept", "missing", "no system CA bundle found"),
    ],
)
def test_it_refuses_rather_than_write_a_bundle_missing_either_half(
    pki: Pki, tmp_path: Path, trust: str, system: str, error: str
) -> None:
    files = {"public": pki.public_file, "intercept": pki.ca_cert_file, "missing": tmp_path / "nope.crt"}
    (tmp_path / "empty.crt").write_text("")
    files["empty"] = tmp_path / "empty.crt"
    out = tmp_path / "trust"
    result = run("--trust", str(files[trust]), "--out", str(out), "--system", str(files[system]))
    assert result.returncode == 1
    assert error in result.stderr
    assert not (out / "ca-bundle.crt").exists()

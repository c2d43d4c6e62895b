"""`llmcache-trust-bundle`: the CA bundle of transparent mode, written by an init container.

Apps in a transparent pod must trust the cache's interception CA as well as the public
roots. `SSL_CERT_FILE` and its kin *replace* a client's store, so the bundle holds both:

- `OUT/ca-bundle.crt`: the image's system roots, then the CA certificate(s) of `--trust`;
- `OUT/ca.crt`: the CA certificate(s) alone (for `NODE_EXTRA_CA_CERTS`, which adds).

It refuses (exit 1, a message on stderr) rather than write a bundle without system roots
or without a CA: a pod whose bundle lacks either would fail TLS everywhere or silently.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

SYSTEM_ROOTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)


class BundleError(Exception):
    pass


def certificates(pem: bytes, what: str) -> list[bytes]:
    """The PEM certificates in `pem`, each checked to decode; BundleError when there is none."""
    found = _PEM_RE.findall(pem)
    if not found:
        raise BundleError(f"{what} holds no PEM certificate")
    for block in found:
        try:
            ssl.PEM_cert_to_DER_cert(block.decode("ascii"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{what} holds a certificate that does not decode: {exc}") from exc
    return found


def default_roots() -> list[str]:
    """Where distributions keep the system roots, then wherever this Python's OpenSSL looks."""
    default = ssl.get_default_verify_paths().cafile
    return [*SYSTEM_ROOTS, *([default] if default else [])]


def system_roots(candidates: Sequence[str]) -> Path:
    for name in candidates:
        if Path(name).is_file():
            return Path(name)
    raise BundleError(f"no system CA bundle found (looked at {', '.join(candidates)})")


def write(out: Path, roots: bytes, trust: bytes) -> None:
    """Both files, each replaced at once."""
    ours = b"\n".join(certificates(trust, "the trust file")) + b"\n"
    bundle = b"\n".join(certificates(roots, "the system bundle")) + b"\n" + ours
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (("ca-bundle.crt", bundle), ("ca.crt", ours)):
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(content)
        os.chmod(tmp, 0o444)
        os.replace(tmp, out / name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcache-trust-bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--trust", required=True, type=Path, help="PEM file with the CA certificate(s) to add")
    parser.add_argument("--out", required=True, type=Path, help="directory for ca-bundle.crt and ca.crt")
    parser.add_argument("--system", action="append", help="system roots to use (default: the usual paths)")
    args = parser.parse_args(argv)
    try:
        roots = system_roots(args.system or default_roots())
        write(args.out, roots.read_bytes(), args.trust.read_bytes())
    except (BundleError, OSError) as exc:
        print(f"llmcache-trust-bundle: {exc}", file=sys.stderr)
        return 1
    print(f"llmcache-trust-bundle: wrote {args.out}/ca-bundle.crt ({roots} + {args.trust}) and {args.out}/ca.crt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

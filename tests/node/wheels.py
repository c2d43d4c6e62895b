"""A package index on 127.0.0.1 for image builds: wheels downloaded on the host, no TLS inside builds.

HTTPS from inside a build container is re-signed by this network's proxy, whose CA the
host trusts and a container does not. So the host's pip (with the host's own config)
downloads every wheel the images need into the cache, this module writes a PEP 503
"simple" index over them, and builds get `PIP_INDEX_URL=http://127.0.0.1:<port>/simple`
and `PIP_TRUSTED_HOST=127.0.0.1` (builds run with the host's network). That is also how
a user behind a corporate mirror builds the images; nothing test-only goes into them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.node.layout import Layout

DOWNLOAD_TIMEOUT_S = 1800
PREFERRED_PORT = 38471
"""The same index URL every run: it is a build argument, and a new one would miss docker's layer cache."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename: str) -> str:
    """The project name of a wheel (`name-version-...whl`) or sdist (`name-version.tar.gz`)."""
    if filename.endswith(".whl"):
        return normalize(filename.split("-", 1)[0])
    return normalize(filename.rsplit("-", 1)[0])


def collect(layout: Layout, specs: Sequence[str], *, log: Path, stamp_name: str = "specs") -> Path:
    """Download `specs` (pip download arguments) unless the same were downloaded last; (re)write the index."""
    root = layout.cache / "wheels"
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    stamp = root / f".{stamp_name}.sha256"
    wanted = hashlib.sha256("\n".join(specs).encode()).hexdigest()
    for spec in specs:  # a requirement file's content counts, not just its name
        if Path(spec).is_file():
            wanted = hashlib.sha256((wanted + Path(spec).read_text()).encode()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == wanted):
        with open(log, "ab") as out:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "--dest",
                    str(files),
                    *specs,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=DOWNLOAD_TIMEOUT_S,
                check=True,
            )
        stamp.write_text(wanted)
    write_index(root)
    return root


def write_index(root: Path) -> None:
    """`root/simple/<project>/index.html` linking every file of that project, with its sha256."""
    by_project: dict[str, list[Path]] = {}
    for path in sorted((root / "files").iterdir()):
        if path.suffix == ".whl" or path.name.endswith(".tar.gz"):
            by_project.setdefault(project_of(path.name), []).append(path)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    for project, paths in by_project.items():
        links = []
        for path in paths:
            digest = _sha256(path)
            links.append(f'<a href="../../files/{html.escape(path.name)}#sha256={digest}">{html.escape(path.name)}</a>')
        (simple / project).mkdir(exist_ok=True)
        (simple / project / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n"
        )
    index = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{index}</body></html>\n")


@functools.cache
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (a free port) for as long as the block runs; yields the index URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", PREFERRED_PORT), handler)
    except OSError:  # taken: any port works, but the builds' layer cache misses (the URL is a build arg)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheel-index", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

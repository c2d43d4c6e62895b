"""A throwaway Kubernetes control plane (etcd + kube-apiserver) on loopback.

The apiserver is v1.20.2 built by ``scripts/build-kube-apiserver.sh`` (see
K8S-TESTING.md, section 1); etcd comes from Debian's ``etcd-server``. There is
no scheduler, kubelet or controller-manager: pods stay Pending and namespaces
are never finalized after deletion.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.realparts import free_ports

APISERVER_VERSION = "1.20.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
KUBECTL_TIMEOUT_S = 60.0


def cache_dir() -> Path:
    """Where build-kube-apiserver.sh caches its output (same env override)."""
    override = os.environ.get("LLMCACHE_K8S_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "llmcache-k8s"


def apiserver_binary() -> Path | None:
    """The cached kube-apiserver binary, or None when it has not been built."""
    binary = cache_dir() / APISERVER_VERSION / "kube-apiserver"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def etcd_binary() -> Path | None:
    found = shutil.which("etcd")
    return Path(found) if found else None


def kubectl_binary() -> Path | None:
    """The pinned ``.tools/kubectl`` (scripts/fetch-tools.sh) first, else PATH."""
    pinned = REPO_ROOT / ".tools" / "kubectl"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return pinned
    found = shutil.which("kubectl")
    return Path(found) if found else None


def missing_prerequisites() -> list[str]:
    """Human-readable reasons why a control plane cannot start here (empty if it can)."""
    missing = []
    if apiserver_binary() is None:
        missing.append(f"kube-apiserver {APISERVER_VERSION} (not in {cache_dir() / APISERVER_VERSION})")
    if etcd_binary() is None:
        missing.append("etcd (apt-get install etcd-server)")
    if kubectl_binary() is None:
        missing.append("kubectl (scripts/fetch-tools.sh)")
    if shutil.which("openssl") is None:
        missing.append("openssl")
    return missing


@dataclass(frozen=True)
class ControlPlane:
    kubeconfig: Path
    server: str
    token: str

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = KUBECTL_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; the caller checks returncode."""
        binary = kubectl_binary()
        if binary is None:
            raise FileNotFoundError("kubectl not found: run scripts/fetch-tools.sh")
        # A private discovery cache keeps ~/.kube/cache free of per-port junk.
        cmd = [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.kubeconfig.parent / 'kubectl-cache'}",
            *args,
        ]
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)


def _write_kubeconfig(path: Path, server: str, token: str) -> None:
    # JSON is valid YAML, so no YAML library is needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _get_status(url: str, token: str) -> int | None:
    """HTTP status of a GET with the bearer token, or None when unreachable."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed serving cert from --cert-dir
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()  # an unclosed error body is a ResourceWarning
        return error.code
    except (OSError, ssl.SSLError):
        return None


def _wait_ready(server: str, token: str, procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    """Poll until /readyz is ok and the bootstrap controller made `default`."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    checks = [f"{server}/readyz", f"{server}/api/v1/namespaces/default"]
    while checks:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log tail:\n{_tail(logs[name])}")
        if _get_status(checks[0], token) == 200:
            checks.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"control plane not ready after {READY_TIMEOUT_S:.0f} s ({checks[0]});"
                f" apiserver log tail:\n{_tail(logs['kube-apiserver'])}"
            )
        time.sleep(0.2)


def stop_process(
    proc: subprocess.Popen[bytes], term_timeout: float = STOP_TIMEOUT_S, kill_timeout: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM, then SIGKILL if it does not end in time (both waits bounded)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=term_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=kill_timeout)


@contextlib.contextmanager
def running_control_plane(workdir: Path) -> Iterator[ControlPlane]:
    """Start etcd + kube-apiserver on free loopback ports; stop and clean up on exit.

    ``workdir`` keeps the logs (etcd.log, kube-apiserver.log) and the kubeconfig;
    the etcd data directory is removed on exit.
    """
    apiserver, etcd = apiserver_binary(), etcd_binary()
    if apiserver is None or etcd is None:
        raise FileNotFoundError("missing: " + ", ".join(missing_prerequisites()))

    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    sa_key = workdir / "sa.key"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(sa_key), "2048"],
        check=True,
        capture_output=True,
        timeout=30,
    )

    client_port, peer_port, secure_port = free_ports(3)
    client_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    server = f"https://{LOOPBACK}:{secure_port}"
    etcd_data = workdir / "etcd"
    etcd_cmd = [
        str(etcd), "--name=cp", f"--data-dir={etcd_data}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=cp={peer_url}", "--logger=zap",
    ]  # fmt: skip
    apiserver_cmd = [
        str(apiserver), f"--etcd-servers={client_url}",
        f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}",
        f"--secure-port={secure_port}",
        f"--cert-dir={workdir / 'certs'}",
        f"--token-auth-file={workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
        "--service-cluster-ip-range=10.96.0.0/24",
        # no controller-manager creates the default ServiceAccount or its tokens
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
    ]  # fmt: skip

    logs = {"etcd": workdir / "etcd.log", "kube-apiserver": workdir / "kube-apiserver.log"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cmd in (("etcd", etcd_cmd), ("kube-apiserver", apiserver_cmd)):
            with logs[name].open("wb") as log:
                procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _wait_ready(server, token, procs, logs)
        kubeconfig = workdir / "kubeconfig"
        _write_kubeconfig(kubeconfig, server, token)
        yield ControlPlane(kubeconfig=kubeconfig, server=server, token=token)
    finally:
        # apiserver first, so it does not log a storm of etcd connection errors
        for name in ("kube-apiserver", "etcd"):
            if name in procs:
                stop_process(procs[name])
        shutil.rmtree(etcd_data, ignore_errors=True)

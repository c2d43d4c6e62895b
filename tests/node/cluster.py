"""A single-node Kubernetes 1.20 cluster on this machine: `up` and `down`.

What runs (every process by pid file, every log under the log folder):
etcd and kube-apiserver, kube-controller-manager, kube-scheduler, the node's private
dockerd, the kubelet (dockershim, patched for this sandbox: scripts/node/kubelet-oom.patch),
kube-proxy (iptables) and dnsmasq answering cluster names (fed by `dnssync`).

Network: the node IP sits on a bridge with no ports (`llmc-node0`); pods live on the CNI
bridge `llmc-cni0` (Debian's containernetworking-plugins). IP forwarding stays off, so a
pod can reach the node, other pods and Services, and nothing beyond this machine; DNS has
no upstream. Provider names used by tests resolve to the tier's fake origins.

`down` stops everything by pid, removes the containers, the bridges, the KUBE-/CNI-
iptables chains, the kubelet's mounts and cgroups, and restores the sysctls that the
kubelet and kube-proxy changed. It is safe to run at any time, also after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.node import docker, pki, procs
from tests.node.layout import (
    APISERVER_PORT,
    CLUSTER_DOMAIN,
    DOCKER_CGROUP_PARENT,
    KUBE_CGROUP_ROOT,
    KUBERNETES_SERVICE_IP,
    NODE_BRIDGE,
    NODE_IP,
    NODE_NAME,
    PAUSE_IMAGE,
    POD_BRIDGE,
    POD_CIDR,
    POD_GATEWAY,
    REPO_ROOT,
    SAVED_SYSCTLS,
    SERVICE_CIDR,
    Layout,
)
from tests.realparts import free_ports

READY_TIMEOUT_S = 120.0
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "pause")
TOOLS = ("etcd", "dnsmasq", "iptables", "iptables-save", "iptables-restore", "ip", "debootstrap", "dockerd")
CNI_PLUGINS = Path("/usr/lib/cni")
USERS = {  # kubeconfig name -> (user, groups), covered by the default RBAC bindings
    "admin": ("admin", "system:masters"),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "kcm": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "proxy": ("system:kube-proxy", ""),
}
# Stopped in this order: controllers first (no new pods), the kubelet before docker.
STOP_ORDER = ("kcm", "scheduler", "kubelet", "proxy", "dnssync", "dnsmasq", "apiserver", "etcd")
EXTRA_HOSTS_FILE = "extra-hosts"
OWN_RULE_MARK = "LLMC-NODE"
"""In the comment of the node's own iptables rules; `down` removes them with the KUBE-/CNI- ones."""
REMOVED_RULES = ("KUBE-", "CNI-", OWN_RULE_MARK)


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    layout: Layout

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig("admin")

    @property
    def docker_host(self) -> str:
        return self.layout.docker_host


def missing_prerequisites(layout: Layout) -> list[str]:
    """Why a node cannot start here (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the node changes bridges, iptables, mounts and cgroups)")
    for name in BINARIES:
        if not os.access(layout.binary(name), os.X_OK):
            missing.append(f"{name} (scripts/build-kubernetes.sh node)")
    for tool in TOOLS:
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(f"{tool} (scripts/node/install-deps.sh)")
    if not (CNI_PLUGINS / "bridge").exists():
        missing.append("containernetworking-plugins (scripts/node/install-deps.sh)")
    return missing


# ---------------------------------------------------------------- up


def up(layout: Layout, extra_hosts: dict[str, str] | None = None) -> Cluster:
    """Start the node (about 30 s when the images exist); `down` on any failure."""
    missing = missing_prerequisites(layout)
    if missing:
        raise NodeError("cannot start the node: missing " + "; ".join(missing))
    running = [p.name for p in procs.tracked(layout.pids) if procs.alive(p)]
    if running:
        raise NodeError(f"a node is already up ({', '.join(running)}): `python -m tests.node down` first")
    down(layout, quiet=True)  # whatever a crashed run left behind
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    try:
        _save_sysctls(layout)
        _bridge(NODE_BRIDGE, f"{NODE_IP}/32")
        for ip in sorted(set((extra_hosts or {}).values())):
            if ip != NODE_IP:
                _sh("ip", "addr", "add", f"{ip}/32", "dev", NODE_BRIDGE)
        _contain_pods()
        _pki(layout)
        _cni_config(layout)
        docker.start_daemon(layout)
        docker.ensure_pause(layout, PAUSE_IMAGE)
        _start_control_plane(layout)
        _start_dns(layout, extra_hosts or {})
        _start_node(layout)
        _wait_node_ready(layout)
    except BaseException:
        down(layout, quiet=True)
        raise
    return Cluster(layout)


def _sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def _bridge(name: str, address: str) -> None:
    _sh("ip", "link", "add", name, "type", "bridge")
    _sh("ip", "addr", "add", address, "dev", name)
    _sh("ip", "link", "set", name, "up")


def _contain_pods() -> None:
    """Pods may reach each other, Services and the node, and nothing beyond: even where the host
    forwards packets (net.ipv4.ip_forward is the host's, and others may turn it on), nothing
    routed out of the pod bridge leaves. Bridged traffic (pod to pod, through Services) stays."""
    _sh("iptables", "-I", "FORWARD", "1", "-i", POD_BRIDGE, "!", "-o", POD_BRIDGE, "-m", "comment",
        "--comment", f"{OWN_RULE_MARK}: pods never leave this machine", "-j", "DROP")  # fmt: skip


def _save_sysctls(layout: Layout) -> None:
    if layout.saved_sysctls.exists():  # a crashed run's values are the original ones
        return
    values = {key: _sh("sysctl", "-n", key).stdout.strip() for key in SAVED_SYSCTLS}
    layout.saved_sysctls.write_text(json.dumps(values))


def _pki(layout: Layout) -> None:
    d = layout.pki
    ca = pki.make_ca(d, "ca", "llmcache-test-node-ca")
    pki.issue(
        ca,
        d,
        "apiserver",
        "kube-apiserver",
        hosts=[
            NODE_IP,
            KUBERNETES_SERVICE_IP,
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "localhost",
        ],
    )
    pki.issue(
        ca, d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters", client=True
    )
    pki.make_rsa_pair(d, "sa")
    tokens = {name: secrets.token_hex(16) for name in USERS}
    lines = []
    for name, (user, groups) in USERS.items():
        lines.append(f"{tokens[name]},{user},{user}" + (f',"{groups}"' if groups else ""))
        _write_kubeconfig(layout.kubeconfig(name), layout.server, ca.cert, user, tokens[name])
    tokens_file = layout.run / "tokens.csv"
    tokens_file.write_text("\n".join(lines) + "\n")
    tokens_file.chmod(0o600)


def _write_kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "llmcache-node", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "llmcache-node", "context": {"cluster": "llmcache-node", "user": user}}],
        "current-context": "llmcache-node",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _cni_config(layout: Layout) -> None:
    conf_dir = layout.run / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "0.4.0",
        "name": "llmcache-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.run / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf_dir / "10-llmcache-node.conflist").write_text(json.dumps(config, indent=2))


def _start(layout: Layout, name: str, argv: list[str]) -> None:
    procs.start(name, argv, pids=layout.pids, logs=layout.logs)


def _start_control_plane(layout: Layout) -> None:
    r, k = layout.run, layout.pki
    client, peer = free_ports(2)
    etcd_url = f"http://127.0.0.1:{client}"
    _start(
        layout,
        "etcd",
        [
            shutil.which("etcd") or "etcd",
            "--name=llmcache-node",
            f"--data-dir={r / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=llmcache-node=http://127.0.0.1:{peer}",
        ],
    )
    _start(
        layout,
        "apiserver",
        [
            str(layout.binary("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={NODE_IP}",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={APISERVER_PORT}",
            "--insecure-port=0",
            f"--tls-cert-file={k / 'apiserver.crt'}",
            f"--tls-private-key-file={k / 'apiserver.key'}",
            f"--client-ca-file={k / 'ca.crt'}",
            f"--token-auth-file={r / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,ServiceAccount",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={k / 'sa.pub'}",
            f"--service-account-signing-key-file={k / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=false",
        ],
    )
    _wait(lambda: _get(layout, "/readyz") == "ok", "the API server's /readyz", layout, "apiserver")
    kube_auth = ["--authentication-kubeconfig", "--authorization-kubeconfig", "--kubeconfig"]
    _start(
        layout,
        "kcm",
        [
            str(layout.binary("kube-controller-manager")),
            *(f"{flag}={layout.kubeconfig('kcm')}" for flag in kube_auth),
            f"--bind-address={NODE_IP}",
            "--port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={k / 'sa.key'}",
            f"--root-ca-file={k / 'ca.crt'}",
            f"--cluster-signing-cert-file={k / 'ca.crt'}",
            f"--cluster-signing-key-file={k / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-cloud-node-lifecycle",
        ],
    )
    _start(
        layout,
        "scheduler",
        [
            str(layout.binary("kube-scheduler")),
            *(f"{flag}={layout.kubeconfig('scheduler')}" for flag in kube_auth),
            f"--bind-address={NODE_IP}",
            "--port=0",
            "--leader-elect=false",
        ],
    )


def _start_dns(layout: Layout, extra_hosts: dict[str, str]) -> None:
    hosts = layout.dns_hosts
    hosts.parent.mkdir(parents=True, exist_ok=True)
    (hosts.parent / EXTRA_HOSTS_FILE).write_text("".join(f"{ip} {name}\n" for name, ip in sorted(extra_hosts.items())))
    hosts.write_text("")
    _start(
        layout,
        "dnsmasq",
        [
            shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
            "--keep-in-foreground",
            "--log-facility=-",
            "--no-resolv",  # no upstream: a name the node does not know resolves to nothing
            "--no-hosts",
            "--no-poll",
            f"--listen-address={NODE_IP}",
            "--bind-interfaces",
            f"--addn-hosts={hosts}",
            f"--local=/{CLUSTER_DOMAIN}/",
            "--domain-needed",
            "--user=root",  # it reads the hosts file under the cache, which only root can traverse
            f"--pid-file={layout.run / 'dnsmasq.pid'}",
        ],
    )
    _start(
        layout,
        "dnssync",
        [
            sys.executable,
            "-m",
            "tests.node.dnssync",
            f"--kubeconfig={layout.kubeconfig('admin')}",
            f"--hosts={hosts}",
            f"--extra={hosts.parent / EXTRA_HOSTS_FILE}",
            f"--dnsmasq-pid-file={layout.pids / 'dnsmasq.json'}",
        ],
    )


def _start_node(layout: Layout) -> None:
    r, k = layout.run, layout.pki
    _start(
        layout,
        "kubelet",
        [
            str(layout.binary("kubelet")),
            f"--kubeconfig={layout.kubeconfig('kubelet')}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--address={NODE_IP}",
            "--port=10250",
            "--read-only-port=0",
            f"--healthz-bind-address={NODE_IP}",
            "--anonymous-auth=false",
            f"--client-ca-file={k / 'ca.crt'}",
            "--authorization-mode=Webhook",
            "--container-runtime=docker",
            f"--docker-endpoint={layout.docker_host}",
            "--cgroup-driver=cgroupfs",
            "--cgroup-root=/",
            "--network-plugin=cni",
            f"--cni-bin-dir={CNI_PLUGINS}",
            f"--cni-conf-dir={r / 'cni' / 'net.d'}",
            f"--cni-cache-dir={r / 'cni' / 'cache'}",
            f"--pod-infra-container-image={PAUSE_IMAGE}",
            "--fail-swap-on=false",
            f"--root-dir={layout.kubelet_root}",
            f"--cert-dir={r / 'kubelet-pki'}",
            f"--experimental-dockershim-root-directory={r / 'dockershim'}",
            f"--volume-plugin-dir={r / 'volume-plugins'}",
            "--resolv-conf=",
            f"--cluster-dns={NODE_IP}",
            f"--cluster-domain={CLUSTER_DOMAIN}",
            # Images exist only here (no registry): never garbage-collect them.
            "--image-gc-high-threshold=100",
            "--image-gc-low-threshold=99",
            "--eviction-hard=memory.available<100Mi,nodefs.available<2%,imagefs.available<2%",
            "--v=2",
        ],
    )
    _start(
        layout,
        "proxy",
        [
            str(layout.binary("kube-proxy")),
            f"--kubeconfig={layout.kubeconfig('proxy')}",
            f"--hostname-override={NODE_NAME}",
            "--proxy-mode=iptables",
            f"--cluster-cidr={POD_CIDR}",
            f"--bind-address={NODE_IP}",
            f"--metrics-bind-address={NODE_IP}:10249",
            f"--healthz-bind-address={NODE_IP}:10256",
            "--conntrack-max-per-core=0",  # leave the host's conntrack sysctls alone
            f"--nodeport-addresses={NODE_IP}/32",
            "--v=2",
        ],
    )


def _wait_node_ready(layout: Layout) -> None:
    def ready() -> bool:
        node = _get_json(layout, f"/api/v1/nodes/{NODE_NAME}")
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    _wait(ready, f"node {NODE_NAME} Ready", layout, "kubelet")
    _wait(
        lambda: _get_json(layout, "/api/v1/namespaces/default/serviceaccounts/default") is not None,
        "the default ServiceAccount",
        layout,
        "kcm",
    )
    _wait(lambda: "kubernetes.default" in layout.dns_hosts.read_text(), "DNS for Services", layout, "dnssync")


def _wait(check: object, what: str, layout: Layout, log: str, timeout: float = READY_TIMEOUT_S) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        for proc in procs.tracked(layout.pids):
            if not procs.alive(proc):
                raise NodeError(
                    f"{proc.name} exited while waiting for {what}: see {layout.logs / (proc.name + '.log')}"
                )
        if time.monotonic() > deadline:
            raise NodeError(f"no {what} after {timeout:.0f} s: see {layout.logs / (log + '.log')}")
        time.sleep(0.5)


def _admin_token(layout: Layout) -> str:
    config = json.loads(layout.kubeconfig("admin").read_text())
    return str(config["users"][0]["user"]["token"])


def _get(layout: Layout, path: str) -> str | None:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    request = urllib.request.Request(layout.server + path, headers={"Authorization": f"Bearer {_admin_token(layout)}"})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        error.close()
        return None
    except (OSError, ssl.SSLError):
        return None


def _get_json(layout: Layout, path: str) -> dict[str, object] | None:
    text = _get(layout, path)
    return json.loads(text) if text else None


# ---------------------------------------------------------------- down


def down(layout: Layout, *, quiet: bool = False) -> list[str]:
    """Stop and remove everything `up` made; returns what was done (for the log)."""
    done: list[str] = []
    say = done.append
    for name in STOP_ORDER:
        if procs.stop(name, layout.pids):
            say(f"stopped {name}")
    if (layout.pids / "dockerd.json").exists():
        with contextlib.suppress(docker.DockerError, subprocess.TimeoutExpired):
            if docker.answers(layout):
                ids = docker.container_ids(layout)
                if ids:
                    docker.run(layout, "rm", "-f", *ids, check=False, timeout=180)
                    say(f"removed {len(ids)} containers")
        docker.stop_daemon(layout)
        say("stopped dockerd")
    for other in procs.tracked(layout.pids):  # anything started that is not listed above
        procs.stop(other.name, layout.pids)
        say(f"stopped {other.name}")
    removed = _remove_iptables_chains()
    if removed:
        say(f"removed {removed} iptables rules and chains")
    unmounted = _unmount_under(layout.run)
    if unmounted:
        say(f"unmounted {unmounted} mounts")
    for link in (POD_BRIDGE, NODE_BRIDGE):
        if _sh("ip", "link", "show", link, check=False).returncode == 0:
            _sh("ip", "link", "del", link, check=False)
            say(f"deleted {link}")
    cgroups = _remove_cgroups()
    if cgroups:
        say(f"removed {cgroups} cgroups")
    if layout.saved_sysctls.exists():
        for key, value in json.loads(layout.saved_sysctls.read_text()).items():
            _sh("sysctl", "-qw", f"{key}={value}", check=False)
        layout.saved_sysctls.unlink()
        say("restored sysctls")
    for state in ("etcd", "kubelet", "dockershim", "cni", "kubelet-pki", "volume-plugins", "dns", "pki", "kubeconfigs"):
        path = layout.run / state
        if path.exists() and not _mounts_under(path):
            shutil.rmtree(path, ignore_errors=True)
    if not quiet:
        for line in done or ["nothing to clean up"]:
            print(f"[node down] {line}", flush=True)
    return done


def _remove_iptables_chains() -> int:
    """Drop every KUBE-* and CNI-* chain and the rules that jump to them (kubelet's, kube-proxy's, CNI's),
    and the node's own rules."""
    removed = 0
    for table in ("filter", "nat", "mangle"):
        saved = _sh("iptables-save", "-t", table, check=False).stdout
        kept = [line for line in saved.splitlines() if not any(mark in line for mark in REMOVED_RULES)]
        dropped = len(saved.splitlines()) - len(kept)
        if dropped:
            subprocess.run(
                ["iptables-restore", "-T", table], input="\n".join(kept) + "\n", text=True, check=True, timeout=60
            )
            removed += dropped
    return removed


def _mounts_under(path: Path) -> list[str]:
    found = _sh("findmnt", "-rn", "-o", "TARGET", check=False).stdout.splitlines()
    prefix = str(path).rstrip("/") + "/"
    return [m.replace("\\x20", " ") for m in found if m == str(path) or m.startswith(prefix)]


def _unmount_under(path: Path) -> int:
    count = 0
    for _ in range(5):  # nested and stacked mounts: deepest first, a few rounds
        mounts = sorted(_mounts_under(path), key=len, reverse=True)
        if not mounts:
            break
        for mount in mounts:
            if _sh("umount", mount, check=False).returncode != 0:
                _sh("umount", "-l", mount, check=False)
            count += 1
    return count


def _remove_cgroups() -> int:
    """rmdir the kubelet's /kubepods and docker's parent in every hierarchy, deepest first."""
    count = 0
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for top in (KUBE_CGROUP_ROOT, DOCKER_CGROUP_PARENT):
            root = hierarchy / top
            if not root.is_dir():
                continue
            for directory in sorted(_subdirs(root), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    directory.rmdir()
                    count += 1
    return count


def _subdirs(root: Path) -> Iterator[Path]:
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            yield Path(dirpath) / name


def leftovers(layout: Layout) -> list[str]:
    """What `down` should have removed and did not (empty after a clean down)."""
    found = []
    if any(procs.alive(p) for p in procs.tracked(layout.pids)):
        found.append("processes: " + ", ".join(p.name for p in procs.tracked(layout.pids) if procs.alive(p)))
    saved = _sh("iptables-save", check=False).stdout.splitlines()
    rules = [line for line in saved if any(mark in line for mark in REMOVED_RULES)]
    if rules:
        found.append(f"{len(rules)} iptables lines of the node (KUBE-, CNI-, {OWN_RULE_MARK})")
    links = _sh("ip", "-o", "link", "show", check=False).stdout
    found += [f"link {name}" for name in (NODE_BRIDGE, POD_BRIDGE) if f" {name}:" in links or f" {name}@" in links]
    mounts = _mounts_under(layout.run) + _mounts_under(layout.docker_root)
    if mounts:
        found.append(f"{len(mounts)} mounts")
    cgroups = [str(h / t) for h in Path("/sys/fs/cgroup").iterdir() for t in (KUBE_CGROUP_ROOT, DOCKER_CGROUP_PARENT)]
    found += [f"cgroup {c}" for c in cgroups if Path(c).exists()]
    return found


__all__ = ["REPO_ROOT", "Cluster", "NodeError", "down", "leftovers", "missing_prerequisites", "up"]

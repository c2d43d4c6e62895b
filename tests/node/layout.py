"""Where the test node keeps its things, and the addresses and names it uses.

One node per machine: its bridges, its cgroups (`/kubepods`) and its node IP are fixed
names, so a second one would collide; `cluster.up` refuses while one is running.
Everything the node owns carries `llmc` in its name, so that `down` can tell it apart.

- Binaries: ~/.cache/llmcache-k8s/1.20.2 (scripts/build-kubernetes.sh node).
- Cache (kept between runs): ~/.cache/llmcache-node: the docker daemon's data root (base
  images and build layers), the debootstrap tarball, downloaded wheels.
- State (wiped by `down`): ~/.cache/llmcache-node/run: PKI, kubeconfigs, pids, etcd.
- Logs (kept): .e2e-node/logs in the checkout, or $LLMCACHE_NODE_LOGS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "1.20.2"
REPO_ROOT = Path(__file__).resolve().parents[2]

NODE_NAME = "llmcache-node"
NODE_IP = "10.201.0.1"
"""The node's address, on a bridge of its own with no ports: nothing outside this machine has it."""
NODE_BRIDGE = "llmc-node0"
POD_BRIDGE = "llmc-cni0"
POD_CIDR = "10.202.0.0/24"
POD_GATEWAY = "10.202.0.1"
SERVICE_CIDR = "10.203.0.0/24"
KUBERNETES_SERVICE_IP = "10.203.0.1"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 6443
DOCKER_CGROUP_PARENT = "llmc-docker"
KUBE_CGROUP_ROOT = "kubepods"
PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"
"""The kubelet 1.20 default sandbox image, built here from the pause binary."""

SAVED_SYSCTLS = (
    # The kubelet and kube-proxy change these; `down` puts them back.
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.conf.all.route_localnet",
)


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


@dataclass(frozen=True)
class Layout:
    bin_dir: Path
    cache: Path
    logs: Path

    @classmethod
    def default(cls) -> Layout:
        k8s_cache = _env_path("LLMCACHE_K8S_CACHE", Path.home() / ".cache" / "llmcache-k8s")
        return cls(
            bin_dir=k8s_cache / K8S_VERSION,
            cache=_env_path("LLMCACHE_NODE_CACHE", Path.home() / ".cache" / "llmcache-node"),
            logs=_env_path("LLMCACHE_NODE_LOGS", REPO_ROOT / ".e2e-node" / "logs"),
        )

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def run(self) -> Path:
        return self.cache / "run"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def pki(self) -> Path:
        return self.run / "pki"

    @property
    def docker_root(self) -> Path:
        return self.cache / "docker"

    @property
    def docker_exec_root(self) -> Path:
        return self.run / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"

    @property
    def kubelet_root(self) -> Path:
        return self.run / "kubelet"

    def kubeconfig(self, user: str = "admin") -> Path:
        return self.run / "kubeconfigs" / f"{user}.kubeconfig"

    @property
    def dns_hosts(self) -> Path:
        return self.run / "dns" / "hosts"

    @property
    def saved_sysctls(self) -> Path:
        return self.run / "sysctls.json"

    @property
    def server(self) -> str:
        return f"https://{NODE_IP}:{APISERVER_PORT}"

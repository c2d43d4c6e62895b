#!/usr/bin/env bash
# Install what the e2e_node tier's test node needs from Debian (idempotent; root):
#   docker.io (dockerd, containerd, runc; the kubelet 1.20's runtime through dockershim),
#   containernetworking-plugins (the pod bridge), dnsmasq-base (cluster DNS from a hosts file),
#   debootstrap (the local Debian base image), iptables (kube-proxy), etcd-server, conntrack.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
want=(docker.io containernetworking-plugins dnsmasq-base debootstrap iptables etcd-server conntrack)
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "node-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "node-deps: $(dpkg-query -W -f='${Package} ${Version}, ' "${want[@]}")"

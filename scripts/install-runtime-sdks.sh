#!/usr/bin/env bash
# Installs the AWS SDKs that Lamina's managed runtimes offer to functions, as AWS's runtimes do:
# boto3 for python3.N and the AWS SDK for JavaScript v3 (@aws-sdk/client-s3, @aws-sdk/client-lambda)
# for nodejsN.x, at the versions pinned in runtimes/sdk-requirements.txt (with wheel hashes) and
# runtimes/sdk-package-lock.json (with integrity hashes).
#
#   scripts/install-runtime-sdks.sh [DIR]
#
# DIR defaults to $LAMINA_RUNTIME_SDK_DIR, else runtime-sdks in cargo's target directory
# (<repo>/target/runtime-sdks, or $CARGO_TARGET_DIR/runtime-sdks), where the execution host built
# there finds it by itself (docs/runtimes.md). It receives python/ (pip --target) and nodejs/node_modules/.
# Nothing is done when DIR/.stamp already names these pins. A new install is built beside DIR and
# swapped in whole; restart the execution host afterwards (sandboxes mount DIR when they are made,
# and keep the tree they mounted).
#
# Environment: LAMINA_SDK_PYTHON (interpreter whose pip installs, default /usr/bin/python3.11, else
# python3), LAMINA_SDK_NPM (default npm).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${LAMINA_RUNTIME_SDK_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/runtime-sdks}}
REQUIREMENTS=$REPO/runtimes/sdk-requirements.txt
PACKAGE=$REPO/runtimes/sdk-package.json
LOCK=$REPO/runtimes/sdk-package-lock.json

log() { printf '==> %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The interpreters sandboxes run (the exec-host registers every /usr/bin/python3.N): the installed
# packages are byte-compiled for each, since sandboxes see the directory read-only.
SANDBOX_PYTHONS=()
for p in /usr/bin/python3.*; do
    [[ $p =~ /python3\.[0-9]+$ ]] && [ -x "$p" ] && SANDBOX_PYTHONS+=("$p")
done

want=$(
    cat "$REQUIREMENTS" "$PACKAGE" "$LOCK" "$0" | sha256sum | cut -d' ' -f1
    printf '%s\n' "${SANDBOX_PYTHONS[@]}"
)
if [ -f "$DIR/.stamp" ] && [ "$(cat "$DIR/.stamp")" = "$want" ]; then
    log "runtime SDKs already installed in $DIR"
    exit 0
fi

PYTHON=${LAMINA_SDK_PYTHON:-}
if [ -z "$PYTHON" ]; then
    PYTHON=/usr/bin/python3.11
    "$PYTHON" -m pip --version >/dev/null 2>&1 || PYTHON=$(command -v python3 || true)
fi
[ -n "$PYTHON" ] && "$PYTHON" -m pip --version >/dev/null 2>&1 ||
    die "no pip for ${PYTHON:-python3}: install python3-pip or set LAMINA_SDK_PYTHON"
NPM=${LAMINA_SDK_NPM:-npm}
command -v "$NPM" >/dev/null || die "npm not found: install npm or set LAMINA_SDK_NPM"

mkdir -p "$(dirname "$DIR")"
STAGE=$(mktemp -d "$DIR.partial.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"

log "installing boto3 into $DIR/python"
# Only hashed wheels, no dependency resolution (every dependency is pinned), no byte-compiling by
# pip's interpreter: the sandboxes' interpreters do that below.
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet \
    --target "$STAGE/python" --no-deps --require-hashes --only-binary=:all: --no-compile \
    -r "$REQUIREMENTS"
# Console scripts (jmespath's jp.py) are of no use in a sandbox.
rm -rf "$STAGE/python/bin"
for p in "${SANDBOX_PYTHONS[@]}"; do
    "$p" -m compileall -q -j 0 "$STAGE/python" >/dev/null
done

log "installing the AWS SDK for JavaScript v3 into $DIR/nodejs"
mkdir -p "$STAGE/nodejs"
cp "$PACKAGE" "$STAGE/nodejs/package.json"
cp "$LOCK" "$STAGE/nodejs/package-lock.json"
# --ignore-scripts: no package's install hooks run on this host.
"$NPM" ci --prefix "$STAGE/nodejs" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

{
    echo "# Installed by scripts/install-runtime-sdks.sh"
    "$PYTHON" - "$STAGE/python" <<'EOF'
import pathlib, sys
for d in sorted(pathlib.Path(sys.argv[1]).glob("*.dist-info")):
    name, version = d.name[: -len(".dist-info")].rsplit("-", 1)
    print(f"python {name} {version}")
EOF
    node -e '
        const lock = require(process.argv[1]);
        for (const [p, v] of Object.entries(lock.packages))
            if (p) console.log(`nodejs ${p.replace(/^node_modules\//, "")} ${v.version}`);
    ' "$STAGE/nodejs/package-lock.json"
} >"$STAGE/VERSIONS"
printf '%s\n' "$want" >"$STAGE/.stamp"

# The previous tree stays as DIR.old until the next install: sandboxes that mounted it (warm ones,
# pre-mounted spares) keep working until the host restarts.
if [ -e "$DIR" ]; then
    rm -rf "$DIR.old"
    mv "$DIR" "$DIR.old"
fi
mv "$STAGE" "$DIR"
trap - EXIT
log "runtime SDKs installed in $DIR ($(du -sh "$DIR" | cut -f1)); see $DIR/VERSIONS"

#!/usr/bin/env bash
# Installs the self-hosted servers that the event-source tests and benchmarks run in place of AWS
# (and, in the same virtualenv, the AWS CLI v1 the observability tests drive):
# kinesalite (Kinesis, npm) and moto's server (SQS, PyPI), at the versions pinned in
# scripts/event-source-servers/ (package-lock.json with integrity hashes, requirements.txt with
# wheel hashes).
#
#   scripts/install-event-source-servers.sh [DIR]
#
# DIR defaults to event-source-servers in cargo's target directory (<repo>/target/event-source-servers,
# or $CARGO_TARGET_DIR/event-source-servers). It receives node_modules/ (kinesalite) and venv/ (a
# virtualenv of /usr/bin/python3.11 holding moto[server]). Nothing is done, and nothing is
# downloaded, when DIR/.stamp already names these pins. A new install is built beside DIR and
# swapped in whole.
#
# Starting them (scripts/test.sh does this when they are not answering):
#   node scripts/event-source-servers/kinesalite.js 4567 DIR/node_modules
#   DIR/venv/bin/python -m moto.server -H 127.0.0.1 -p 5000
#
# Environment: LAMINA_SERVERS_PYTHON (interpreter of the venv, default /usr/bin/python3.11),
# LAMINA_SERVERS_NPM (default npm).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${CARGO_TARGET_DIR:-$REPO/target}/event-source-servers}
# Absolute: node's require() reads a relative path as a package name.
DIR=$(realpath -m "$DIR")
PINS=$REPO/scripts/event-source-servers
PYTHON=${LAMINA_SERVERS_PYTHON:-/usr/bin/python3.11}
NPM=${LAMINA_SERVERS_NPM:-npm}

log() { printf '==> %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

want=$(
    cat "$PINS/requirements.txt" "$PINS/package.json" "$PINS/package-lock.json" "$0" | sha256sum | cut -d' ' -f1
    printf '%s\n' "$PYTHON"
)
if [ -f "$DIR/.stamp" ] && [ "$(cat "$DIR/.stamp")" = "$want" ]; then
    log "event-source test servers already installed in $DIR"
    exit 0
fi

[ -x "$PYTHON" ] || die "$PYTHON not found: install python3.11 or set LAMINA_SERVERS_PYTHON"
command -v "$NPM" >/dev/null || die "npm not found: install npm or set LAMINA_SERVERS_NPM"

mkdir -p "$(dirname "$DIR")"
STAGE=$(mktemp -d "$DIR.partial.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"

log "installing kinesalite into $DIR/node_modules"
cp "$PINS/package.json" "$PINS/package-lock.json" "$STAGE/"
# --ignore-scripts: no package's install hooks run on this host. leveldown (optional) only serves
# kinesalite's on-disk mode; the servers run in memory.
"$NPM" ci --prefix "$STAGE" --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

log "installing moto[server] into $DIR/venv"
if ! "$PYTHON" -m venv "$STAGE/venv" >/dev/null 2>&1; then
    # Debian ships ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$STAGE/venv"
        "$PYTHON" -m venv "$STAGE/venv"
    else
        die "$PYTHON -m venv failed: install python3-venv"
    fi
fi
# Every dependency is pinned with its hash: no resolution, nothing unpinned.
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$STAGE/venv/bin/python" -m pip install --quiet \
    --no-deps --require-hashes --only-binary=:all: -r "$PINS/requirements.txt"
# The venv is moved into place below: only `venv/bin/python -m ...` is used, never the console
# scripts, whose shebangs name the staging path.
"$STAGE/venv/bin/python" -c 'import moto.server, flask' || die "moto's server does not import"

{
    echo "# Installed by scripts/install-event-source-servers.sh"
    node -e 'console.log(`kinesalite ${require(process.argv[1]).version}`)' "$STAGE/node_modules/kinesalite/package.json"
    "$STAGE/venv/bin/python" -c 'import importlib.metadata as m; print("moto", m.version("moto"))'
} >"$STAGE/VERSIONS"
printf '%s\n' "$want" >"$STAGE/.stamp"

if [ -e "$DIR" ]; then
    rm -rf "$DIR.old"
    mv "$DIR" "$DIR.old"
fi
mv "$STAGE" "$DIR"
rm -rf "$DIR.old"
trap - EXIT
log "event-source test servers installed in $DIR ($(du -sh "$DIR" | cut -f1)); see $DIR/VERSIONS"

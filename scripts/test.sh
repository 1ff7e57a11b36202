#!/usr/bin/env bash
# Runs Lamina's whole test suite. Provides what the tests need: PostgreSQL on 127.0.0.1:5432
# (trust auth, user postgres), Redis on 127.0.0.1:6379 and nftables (sandbox networking).
# Where they are not running it starts throwaway instances from the installed binaries,
# installing Debian's packages first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=5432
REDIS_PORT=6379
RUN_DIR="${TMPDIR:-/tmp}/lamina-test-services"

log() { printf '==> %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
    command -v apt-get >/dev/null || { log "apt-get not available; cannot install $*"; return 1; }
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_pg_bin() {
    local name=$1
    command -v "$name" 2>/dev/null && return 0
    ls /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
    if port_open "$PG_PORT"; then return 0; fi
    log "PostgreSQL is not running on $PG_PORT: starting a throwaway instance"
    [ -n "$(find_pg_bin initdb)" ] || apt_install postgresql
    local initdb pg_ctl
    initdb=$(find_pg_bin initdb); pg_ctl=$(find_pg_bin pg_ctl)
    local data="$RUN_DIR/pg"
    rm -rf "$data"; mkdir -p "$RUN_DIR"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd -r -m postgres
        chown -R postgres "$RUN_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$initdb" -D "$data" -U postgres --auth=trust >/dev/null
    "${as[@]}" "$pg_ctl" -D "$data" -o "-p $PG_PORT -k $RUN_DIR -c listen_addresses=127.0.0.1" -l "$RUN_DIR/pg.log" -w start >/dev/null
}

ensure_redis() {
    if port_open "$REDIS_PORT"; then return 0; fi
    log "Redis is not running on $REDIS_PORT: starting a throwaway instance"
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p "$RUN_DIR"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --logfile "$RUN_DIR/redis.log" >/dev/null
    for _ in $(seq 50); do port_open "$REDIS_PORT" && return 0; sleep 0.1; done
    log "Redis did not start"; return 1
}

# The execution host gives each sandbox its own network namespace with NAT egress installed
# through nftables (docs/security.md); without `nft` it refuses to start sandboxes.
ensure_nftables() {
    if [ -x /usr/sbin/nft ] || command -v nft >/dev/null; then return 0; fi
    if [ "$(id -u)" != 0 ]; then log "nft not installed (sandboxes need it; run as root)"; return 0; fi
    apt_install nftables
}

ensure_postgres
ensure_redis
ensure_nftables
# Leftover databases of interrupted runs.
if command -v psql >/dev/null; then
    psql -h 127.0.0.1 -U postgres -At -c "select datname from pg_database where datname like 'lamina_test_%'" postgres 2>/dev/null |
        while read -r db; do psql -h 127.0.0.1 -U postgres -q -c "drop database if exists \"$db\" with (force)" postgres >/dev/null 2>&1 || true; done
fi

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
log "runtime bootstrap tests"
"$PYTHON" runtimes/test_bootstraps.py

log "AWS SDKs of the managed runtimes (boto3, AWS SDK for JavaScript v3): installed unless up to date"
command -v npm >/dev/null || apt_install npm
/usr/bin/python3.11 -m pip --version >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
scripts/install-runtime-sdks.sh

log "building binaries the tests run (lamina, the Rust lambda_runtime fixture, lamina-load for the crash test)"
cargo build -p lamina -p lamina-fixture-rust-runtime -p lamina-load-tests

log "cargo tests"
# Bounded parallelism: integration tests start real servers and real runtime processes.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo test --workspace --all-targets "$@"

log "fuzz smoke: every fuzz target 20 s on its seed corpus (nightly + cargo-fuzz)"
scripts/fuzz-smoke.sh

log "invoke suite again, against 'lamina cluster' (every service its own process, Postgres + Redis)"
# --workspace keeps the feature set of the run above (no rebuild of the crates).
LAMINA_TEST_TARGET=cluster cargo test --workspace --test invoke "$@"

log "boto3 smoke test against a real 'lamina serve'"
PY=$(command -v python3)
"$PY" -c 'import boto3' 2>/dev/null || "$PY" -m pip install -q boto3
SMOKE_DIR=$(mktemp -d)
SMOKE_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SMOKE_S3_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/lamina serve --data-dir "$SMOKE_DIR/data" --listen "127.0.0.1:$SMOKE_PORT" --admin-listen 127.0.0.1:0 \
    --s3-listen "127.0.0.1:$SMOKE_S3_PORT" >"$SMOKE_DIR/serve.log" 2>&1 &
SMOKE_PID=$!
trap 'kill $SMOKE_PID 2>/dev/null || true; rm -rf "$SMOKE_DIR"' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$SMOKE_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
"$PY" scripts/smoke-boto3.py "http://127.0.0.1:$SMOKE_PORT" "$SMOKE_DIR/data/credentials" "http://127.0.0.1:$SMOKE_S3_PORT" || { cat "$SMOKE_DIR/serve.log"; exit 1; }

#!/usr/bin/env bash
# Runs Lamina's whole test suite. Provides what the tests need: PostgreSQL on 127.0.0.1:5432
# (trust auth, user postgres), Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672 (guest/guest)
# and nftables (sandbox networking). Where they are not running it starts throwaway instances from
# the installed binaries, installing Debian's packages first if needed. The event-source tests also
# get kinesalite (Kinesis) and moto's server (SQS), installed by scripts/install-event-source-servers.sh
# and started here for the run unless already answering on their ports; the variables the AWS SDKs
# read lead there (see "event-source servers" below).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=5432
REDIS_PORT=6379
AMQP_PORT=5672
# Fixed, below the ephemeral range the tests' own servers bind in; the servers' usual ports, so
# ones a developer started by hand are reused.
KINESIS_PORT=${LAMINA_TEST_KINESIS_PORT:-4567}
SQS_PORT=${LAMINA_TEST_SQS_PORT:-5000}
RUN_DIR="${TMPDIR:-/tmp}/lamina-test-services"
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")

log() { printf '==> %s\n' "$*" >&2; }

in_ci() { [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; }

# Commands run when the script exits, however it exits (last registered first).
CLEANUP=()
cleanup() {
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
}
trap cleanup EXIT

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

# RabbitMQ runs on the machine; a throwaway instance otherwise (it keeps running after the suite,
# like the Redis above: a broker takes seconds to boot).
ensure_rabbitmq() {
    if port_open "$AMQP_PORT"; then return 0; fi
    log "RabbitMQ is not running on $AMQP_PORT: starting it"
    [ -x /usr/sbin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server || true
    # The package's install may have started it.
    for _ in $(seq 20); do port_open "$AMQP_PORT" && return 0; sleep 0.5; done
    local server
    server=$(command -v rabbitmq-server || echo /usr/sbin/rabbitmq-server)
    if [ -x "$server" ]; then
        RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
            ERL_EPMD_ADDRESS=127.0.0.1 "$server" -detached >/dev/null 2>&1 || true
        for _ in $(seq 120); do port_open "$AMQP_PORT" && return 0; sleep 0.5; done
    fi
    if in_ci; then
        log "RabbitMQ is required under CI and is not answering on 127.0.0.1:$AMQP_PORT"
        return 1
    fi
    log "WARNING: RabbitMQ is not answering on 127.0.0.1:$AMQP_PORT; the RabbitMQ poller tests will fail"
}

ensure_postgres
ensure_redis
ensure_rabbitmq
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

log "event-source servers: kinesalite (Kinesis) on $KINESIS_PORT, moto (SQS) on $SQS_PORT"
SERVERS_DIR=$TARGET_DIR/event-source-servers
SERVERS_LOGS=$TARGET_DIR/event-source-servers-logs
scripts/install-event-source-servers.sh "$SERVERS_DIR"
mkdir -p "$SERVERS_LOGS"
# Any well-formed SigV4 header does: neither server checks signatures.
PROBE_AUTH='AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/SERVICE/aws4_request, SignedHeaders=host, Signature=0'
kinesis_answers() {
    curl -s -m 2 -X POST "http://127.0.0.1:$KINESIS_PORT/" -H "Authorization: ${PROBE_AUTH/SERVICE/kinesis}" \
        -H 'X-Amz-Date: 20240101T000000Z' -H 'Content-Type: application/x-amz-json-1.1' \
        -H 'X-Amz-Target: Kinesis_20131202.ListStreams' -d '{}' 2>/dev/null | grep -q StreamNames
}
sqs_answers() {
    curl -s -m 2 -X POST "http://127.0.0.1:$SQS_PORT/" -H "Authorization: ${PROBE_AUTH/SERVICE/sqs}" \
        -d 'Action=ListQueues&Version=2012-11-05' 2>/dev/null | grep -q ListQueuesResponse
}
# start_server NAME PORT PROBE COMMAND...: runs COMMAND in the background for the rest of the script
# unless PROBE already succeeds, then waits until PROBE does.
start_server() {
    local name=$1 port=$2 probe=$3
    shift 3
    if "$probe"; then
        log "$name already answering on 127.0.0.1:$port: using it"
        return 0
    fi
    if port_open "$port"; then
        log "127.0.0.1:$port is taken by something that is not $name (set LAMINA_TEST_${name^^}_PORT)"
        return 1
    fi
    "$@" >"$SERVERS_LOGS/$name.log" 2>&1 &
    local pid=$!
    CLEANUP+=("kill $pid 2>/dev/null")
    for _ in $(seq 600); do
        "$probe" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not start on 127.0.0.1:$port; its log ($SERVERS_LOGS/$name.log):"
    cat "$SERVERS_LOGS/$name.log" >&2
    return 1
}
start_server kinesis "$KINESIS_PORT" kinesis_answers \
    node scripts/event-source-servers/kinesalite.js "$KINESIS_PORT" "$SERVERS_DIR/node_modules"
start_server sqs "$SQS_PORT" sqs_answers \
    "$SERVERS_DIR/venv/bin/python" -m moto.server -H 127.0.0.1 -p "$SQS_PORT"
# For the whole run: Lamina's pollers (in-process `lamina serve` and `lamina cluster` children read
# the standard AWS chain) and the tests' own clients (lamina_tests::external) reach the servers
# above. Function sandboxes never see these: their environment is built from scratch.
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$SQS_PORT"
export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$KINESIS_PORT"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export LAMINA_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
# A Python with boto3 and the AWS CLI v1 (`$LAMINA_TEST_AWS_PYTHON -m awscli ...`), pinned in
# scripts/event-source-servers/requirements.txt: the observability tests drive `aws logs` and
# `aws cloudwatch` with it.
export LAMINA_TEST_AWS_PYTHON="$SERVERS_DIR/venv/bin/python"
# A profile or session token of the developer's would otherwise win over the keys above, or be sent
# beside them.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE

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
CLEANUP+=("kill $SMOKE_PID 2>/dev/null; rm -rf '$SMOKE_DIR'")
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$SMOKE_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
"$PY" scripts/smoke-boto3.py "http://127.0.0.1:$SMOKE_PORT" "$SMOKE_DIR/data/credentials" "http://127.0.0.1:$SMOKE_S3_PORT" || { cat "$SMOKE_DIR/serve.log"; exit 1; }

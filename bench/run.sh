#!/usr/bin/env bash
# Run a benchmark scenario against Hearth and, where it applies, against the raw-broadcast
# reference server, then print medians and Hearth / raw ratios.
#
#   bench/run.sh [--tiny] [--runs N] [--no-raw] [--out FILE] SCENARIO [hearth-bench args...]
#
# SCENARIO: ingest | fanout | reactions | everyday | idle | history | slow | startup | search |
#           pglog | failover | all
#   (pglog: the PostgreSQL log of cluster mode alone, on a private PostgreSQL server this
#   script starts; needs scripts/install-engines.sh. `all` includes it when PostgreSQL is
#   installed.)
#   --tiny     small sizes, a few seconds per scenario (CI smoke test); fails on any lost,
#              duplicated or reordered delivery
#   --runs N   repeat N times, each on a fresh server and database (summary shows medians)
#   --no-raw   skip the raw-broadcast comparison
#   --out F    append the RESULT lines to F as well
#   --cluster N  for ingest, fanout, everyday and history: run each against one node on SQLite
#              (hearth), one node on PostgreSQL (hearth-pg) and N nodes on PostgreSQL and Redis
#              (hearth-cluster, connections spread over the nodes), all on the server's core
#              with a private PostgreSQL and Redis this script starts (scripts/install-engines.sh);
#              history: the PostgreSQL setups read a copy of the filled history database (hearth
#              migrate-to-postgres, once per invocation and setup), and all page requests go to
#              the first node (hearth-bench history sends its HTTP requests to the first URL);
#              failover needs it: N nodes only, the last one killed (SIGKILL) under load;
#              in ingest the nodes' log positions are sampled every 0.2 s and the largest
#              lag behind the node furthest ahead is printed (not in the latency scenarios:
#              the sampling costs the server core three /metrics renders per tick); every
#              node's /metrics and PostgreSQL's log are kept with KEEP_TMP=1
#   --redis-down with --cluster: also run N nodes whose Redis is stopped after they started
#              (hearth-cluster-noredis), for ingest, fanout and everyday
# Extra arguments go to the scenario (see `target/release/hearth-bench SCENARIO --help`).
#
# Environment:
#   BENCH_DB=PATH          database for history/startup; kept afterwards and reused (filled once)
#   STARTUP_MESSAGES=N     messages in the startup database (default 1,000,000; tiny 2,000)
#   SEARCH_DB=PATH         database for search; kept afterwards and reused (generated once)
#   SEARCH_MESSAGES=N      messages in the search database (default 1,000,000; tiny 20,000)
#   SEARCH_TIME_REBUILD=1  also time a full rebuild of the search index (rolled back)
#   KEEP_TMP=1             keep the temporary directory (server logs, databases, results)
#   BENCH_BIN_DIR=DIR      use the binaries in DIR instead of building (a frozen copy)
#   BENCH_NICE=N           niceness of server and load generator (default -10 as root, else 0)
#   QUIET_WAIT=SECS        before each run, wait up to SECS for the machine to be < 25% busy
#                          (default 120; 0 with --tiny)
#
# The server is pinned to core 0 and the load generator to core 1 (when taskset and two cores
# exist). Everything this script starts is stopped on exit.
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; }

TINY=0
CLUSTER=0
REDIS_DOWN=0
RUNS=1
RAW=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tiny) TINY=1; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --no-raw) RAW=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --cluster) CLUSTER=$2; shift 2 ;;
        --redis-down) REDIS_DOWN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
done
SCENARIO=${1:-}
[[ -n $SCENARIO ]] || { usage >&2; exit 2; }
shift
EXTRA=("$@")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# As many open files as allowed: every connection is a file descriptor on both sides.
HARD=$(ulimit -Hn)
[[ $HARD == unlimited ]] && HARD=1048576
ulimit -n "$HARD" 2>/dev/null || true
echo "run.sh: open file limit $(ulimit -n)"

if [[ -n ${BENCH_BIN_DIR:-} ]]; then
    BIN=$BENCH_BIN_DIR     # prebuilt hearth, hearth-bench and raw-broadcast
else
    cargo build --release -p hearth -p hearth-bench
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
echo "run.sh: hearth binary sha256 $(sha256sum "$BIN/hearth" | cut -c1-16)"

PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_CLIENT=(taskset -c 1)
fi
# On a shared machine, run both sides at the same raised priority (root only) so that other
# tenants' work disturbs them less; BENCH_NICE=0 turns this off.
NICE=${BENCH_NICE:-$([[ $(id -u) == 0 ]] && echo -10 || echo 0)}
if [[ $NICE != 0 ]]; then
    PIN_SERVER=(nice -n "$NICE" "${PIN_SERVER[@]}")
    PIN_CLIENT=(nice -n "$NICE" "${PIN_CLIENT[@]}")
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench.XXXXXX")
RESULTS=$TMP/results.txt
: >"$RESULTS"
SERVER_PID=""
SERVER_URL=""
SERVER_KIND=""
FAILED=0
PROBLEMS=()

PG_DIR=""
PG_AS=()
PG_BIN=""
REDIS_PID=""
SAMPLER_PID=""
SAMPLE_FILE=""
NODE_PIDS=()
LAST_PID=""
LAST_URL=""
PG_URL=""
DB_SEQ=0
cleanup() {
    if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
    for pid in "${NODE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $REDIS_PID ]]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; fi
    if [[ -n $PG_DIR ]]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        cp "$PG_DIR/server.log" "$TMP/postgresql.log" 2>/dev/null || true
        rm -rf "$PG_DIR"
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "run.sh: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

wait_quiet() {
    local secs=${QUIET_WAIT:-$([[ $TINY == 1 ]] && echo 0 || echo 120)}
    [[ $secs == 0 ]] && return 0
    "$BIN/hearth-bench" quiet --max-secs "$secs" || true
}

# start_pg: a private PostgreSQL server (pinned like a Hearth server), once per invocation.
start_pg() {
    [[ -n $PG_DIR ]] && return 0
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z $PG_BIN ]]; then
        echo "run.sh: PostgreSQL is not installed (bash scripts/install-engines.sh)" >&2
        exit 1
    fi
    PG_DIR=$(mktemp -d /tmp/hearth-bench-pg.XXXXXX)
    PG_AS=()
    if [[ $(id -u) == 0 ]]; then
        chown postgres: "$PG_DIR"
        PG_AS=(runuser -u postgres --)
    fi
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 >/dev/null
    "${PIN_SERVER[@]}" "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-k $PG_DIR -c listen_addresses= -c fsync=on -c synchronous_commit=on -c shared_buffers=128MB -c max_connections=200 -c log_lock_waits=on -c log_checkpoints=on -c log_min_duration_statement=250" \
        start >/dev/null
}

# new_pg_db: a fresh database on the private PostgreSQL; sets PG_URL.
new_pg_db() {
    DB_SEQ=$((DB_SEQ + 1))
    "${PG_AS[@]}" "$PG_BIN/createdb" -h "$PG_DIR" -U postgres "hearth$DB_SEQ"
    PG_URL="postgres://postgres@/hearth$DB_SEQ?host=$PG_DIR"
}

# start_redis: a private Redis on a Unix socket (no persistence), once per invocation.
start_redis() {
    [[ -n $REDIS_PID ]] && return 0
    command -v redis-server >/dev/null || { echo "run.sh: redis-server is not installed (bash scripts/install-engines.sh)" >&2; exit 1; }
    "${PIN_SERVER[@]}" redis-server --port 0 --unixsocket "$TMP/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do [[ -S $TMP/redis.sock ]] && break; sleep 0.1; done
    [[ -S $TMP/redis.sock ]] || { echo "run.sh: Redis did not start" >&2; exit 1; }
}

# start_hearth OUT ERR [VAR=VALUE...]: one hearth process with the load test's limits lifted
# (and the given settings); sets LAST_PID.
start_hearth() {
    local out=$1 err=$2
    shift 2
    env CHAT_SERVER__HOST=127.0.0.1 CHAT_SERVER__PORT=0 \
        CHAT_LIMITS__MESSAGES_PER_SECOND=0 CHAT_LIMITS__CHANGES_PER_SECOND=0 \
        CHAT_LIMITS__CONNECTIONS_PER_USER=0 \
        CHAT_LIMITS__CONNECTIONS_PER_ADDRESS=0 CHAT_LIMITS__REGISTRATIONS_PER_HOUR=0 \
        CHAT_LIMITS__HTTP_CONNECTIONS_PER_ADDRESS=0 CHAT_LIMITS__SEARCHES_PER_USER=0 \
        CHAT_LIMITS__TOKENS_PER_USER=0 CHAT_AUTH__PBKDF2_ITERATIONS=1000 CHAT_DATABASE__SYNCHRONOUS=full \
        CHAT_PREVIEWS__ENABLED=false "$@" \
        "${PIN_SERVER[@]}" "$BIN/hearth" --config /nonexistent.toml >"$out" 2>>"$err" &
    LAST_PID=$!
}

# wait_listening OUT PID KIND: set LAST_URL to the URL a server printed.
wait_listening() {
    local out=$1 pid=$2 kind=$3 url=""
    for _ in $(seq 600); do
        url=$(sed -n 's/^listening on //p' "$out" | head -n1)
        [[ -n $url ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: $kind exited before listening; its log:" >&2
            tail -n 30 "$TMP/$kind.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    [[ -n $url ]] || { echo "run.sh: $kind did not print 'listening on'" >&2; exit 1; }
    LAST_URL=$url
}

# start_cluster DB [PG]: CLUSTER nodes of hearth on the PostgreSQL database PG (default: a new
# one) and the Redis.
start_cluster() {
    local db=$1 url=${2:-} urls=() i
    start_pg
    start_redis
    if [[ -z $url ]]; then
        new_pg_db
        url=$PG_URL
    fi
    NODE_PIDS=()
    for i in $(seq "$CLUSTER"); do
        : >"$TMP/hearth-cluster-$i.out"
        start_hearth "$TMP/hearth-cluster-$i.out" "$TMP/hearth-cluster.err" \
            CHAT_DATABASE__PATH="$db-node$i" CHAT_DATABASE__URL="$url" \
            CHAT_CLUSTER__REDIS_URL="unix://$TMP/redis.sock" CHAT_CLUSTER__NODE="node$i" \
            CHAT_METRICS__ENABLED=true
        NODE_PIDS+=("$LAST_PID")
        wait_listening "$TMP/hearth-cluster-$i.out" "$LAST_PID" hearth-cluster
        urls+=("$LAST_URL")
    done
    SERVER_PID=${NODE_PIDS[0]}
    SERVER_KIND=hearth-cluster
    SERVER_URL=$(IFS=,; echo "${urls[*]}")
    echo "run.sh: hearth-cluster pids ${NODE_PIDS[*]} at $SERVER_URL"
}

# stop_redis: stop the private Redis (the next start_cluster starts it again).
stop_redis() {
    [[ -n $REDIS_PID ]] || return 0
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
    rm -f "$TMP/redis.sock"
}

# start_server KIND DB [PG]: start hearth, hearth-pg, hearth-cluster or raw-broadcast, set
# SERVER_PID and SERVER_URL. hearth-pg and hearth-cluster run on the PostgreSQL database PG
# (default: a new one); DB is then only where their uploads folder goes.
start_server() {
    local kind=$1 db=$2 pg=${3:-} out=$TMP/$1.out err=$TMP/$1.err
    : >"$out"
    if [[ $kind == hearth-cluster ]]; then
        start_cluster "$db" "$pg"
        return
    fi
    if [[ $kind == hearth-cluster-noredis ]]; then
        start_cluster "$db" "$pg"
        stop_redis
        SERVER_KIND=$kind
        echo "run.sh: stopped Redis under the running nodes"
        return
    fi
    if [[ $kind == hearth-pg ]]; then
        start_pg
        if [[ -z $pg ]]; then
            new_pg_db
            pg=$PG_URL
        fi
        start_hearth "$out" "$err" CHAT_DATABASE__PATH="$db" CHAT_DATABASE__URL="$pg"
        SERVER_PID=$LAST_PID
    elif [[ $kind == hearth ]]; then
        start_hearth "$out" "$err" CHAT_DATABASE__PATH="$db"
        SERVER_PID=$LAST_PID
    else
        "${PIN_SERVER[@]}" "$BIN/raw-broadcast" --host 127.0.0.1 --port 0 >"$out" 2>>"$err" &
    fi
    [[ $kind == raw ]] && SERVER_PID=$!
    SERVER_KIND=$kind
    for _ in $(seq 600); do
        SERVER_URL=$(sed -n 's/^listening on //p' "$out" | head -n1)
        [[ -n $SERVER_URL ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run.sh: $kind exited before listening; its log:" >&2
            tail -n 30 "$err" >&2
            exit 1
        fi
        sleep 0.1
    done
    [[ -n $SERVER_URL ]] || { echo "run.sh: $kind did not print 'listening on'" >&2; exit 1; }
    echo "run.sh: $kind pid $SERVER_PID at $SERVER_URL"
}

# history_pg KIND SQLITE: set PG_URL to the PostgreSQL database the history scenario's KIND
# (hearth-pg or hearth-cluster) reads: the first time, a new database into which
# `hearth migrate-to-postgres` copies SQLITE (filled by the hearth run before it), then
# VACUUM ANALYZE so that the planner has statistics from the first page on; afterwards the
# same database. The scenario only reads the room (it fills nothing more once the room is
# full) and adds its own accounts under new names, so every run starts on the same rows.
declare -A HISTORY_PG=()
history_pg() {
    local kind=$1 sqlite=$2 t0 t1
    if [[ -n ${HISTORY_PG[$kind]:-} ]]; then
        PG_URL=${HISTORY_PG[$kind]}
        return 0
    fi
    start_pg
    new_pg_db
    echo "run.sh: copying $sqlite into $PG_URL for $kind"
    t0=$(date +%s.%N)
    if ! CHAT_DATABASE__PATH=$sqlite "$BIN/hearth" --config /nonexistent.toml \
        migrate-to-postgres "$PG_URL"; then
        echo "run.sh: hearth migrate-to-postgres of $sqlite failed" >&2
        exit 1
    fi
    "${PG_AS[@]}" "$PG_BIN/vacuumdb" --analyze --quiet --dbname "$PG_URL"
    t1=$(date +%s.%N)
    echo "run.sh: copy and VACUUM ANALYZE took $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
    HISTORY_PG[$kind]=$PG_URL
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if [[ ${#NODE_PIDS[@]} -gt 0 ]]; then
        local pid
        for pid in "${NODE_PIDS[@]:1}"; do
            SERVER_PID=$pid stop_one
        done
        NODE_PIDS=()
    fi
    stop_one
    SERVER_PID=""
}

# stop_one: SIGTERM SERVER_PID and check it exits 0 within 30 s.
stop_one() {
    local rc=0 waited=0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    while kill -0 "$SERVER_PID" 2>/dev/null && [[ $waited -lt 300 ]]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        PROBLEMS+=("$SERVER_KIND did not exit within 30 s of SIGTERM")
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    if [[ $rc -ne 0 ]]; then
        PROBLEMS+=("$SERVER_KIND exited with status $rc after SIGTERM (log: $TMP/$SERVER_KIND.err)")
        FAILED=1
    fi
}

# bench KIND RUN ARGS...: run the load generator against the current server.
# client WHAT ARGS...: run hearth-bench ARGS on the load generator's core, show its output and
# keep its RESULT lines; a failure is recorded as a problem named WHAT. Returns its exit code.
client() {
    local what=$1 rc=0
    shift
    "${PIN_CLIENT[@]}" "$BIN/hearth-bench" "$@" >"$TMP/bench.out" 2>&1 || rc=$?
    cat "$TMP/bench.out"
    grep '^RESULT ' "$TMP/bench.out" >>"$RESULTS" || true
    if [[ $rc -ne 0 ]]; then
        PROBLEMS+=("$what exited with $rc")
        FAILED=1
    fi
    return "$rc"
}

bench() {
    local kind=$1 run=$2
    shift 2
    local flags=(--url "$SERVER_URL" --server-pid "$SERVER_PID" --target "$kind" --run "$run")
    [[ $TINY == 1 ]] && flags+=(--tiny)
    [[ " ${PIN_SERVER[*]} " == *" taskset -c 0 "* ]] && flags+=(--server-core 0)
    if ! client "hearth-bench $* against $kind (run $run)" "${flags[@]}" "$@"; then
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            PROBLEMS+=("$kind is no longer running; last log lines:")
            PROBLEMS+=("$(tail -n 20 "$TMP/$kind.err" 2>/dev/null)")
        fi
    fi
}

run_scenario() {
    local s=$1
    shift
    local targets=(hearth)
    case $s in
        ingest|fanout|everyday|history) [[ $CLUSTER -gt 0 ]] && targets+=(hearth-pg hearth-cluster) ;;
        failover)
            [[ $CLUSTER -ge 2 ]] || { echo "run.sh: failover needs --cluster N (N >= 2)" >&2; exit 2; }
            targets=(hearth-cluster) ;;
    esac
    case $s in
        ingest|fanout|everyday) [[ $CLUSTER -gt 0 && $REDIS_DOWN == 1 ]] && targets+=(hearth-cluster-noredis) ;;
    esac
    case $s in
        fanout|everyday|slow|idle) [[ $RAW == 1 && $CLUSTER == 0 ]] && targets+=(raw) ;;
        ingest|history|reactions|failover) ;;
        startup) run_startup "$@"; return ;;
        search) run_search "$@"; return ;;
        pglog) run_pglog "$@"; return ;;
        *) echo "run.sh: unknown scenario $s" >&2; exit 2 ;;
    esac
    local run kind db pg
    for run in $(seq "$RUNS"); do
        for kind in "${targets[@]}"; do
            echo
            echo "### $s, run $run/$RUNS, $kind"
            pg=""
            if [[ $s == history ]]; then
                db=${BENCH_DB:-$TMP/history.db}
                # hearth (first in targets) has filled db; the PostgreSQL setups read a copy of
                # it, and their uploads folders go to $TMP rather than beside BENCH_DB.
                if [[ $kind == hearth-pg || $kind == hearth-cluster ]]; then
                    history_pg "$kind" "$db"
                    pg=$PG_URL
                    db=$TMP/history-$kind.db
                fi
            else
                db=$TMP/$s-$run.db
            fi
            wait_quiet
            start_server "$kind" "$db" "$pg"
            if [[ $s == failover ]]; then
                run_failover "$run" "$@"
            else
                sample_lag_start "$s-$run"
                bench "$kind" "$run" "$s" "$@"
                sample_lag_stop
            fi
            scrape_nodes "$s-$run"
            stop_server
            if [[ $db == "$TMP"/* && $s != history ]]; then rm -f "$db" "$db-wal" "$db-shm"; fi
        done
    done
}

# scrape_nodes NAME: keep each cluster node's /metrics in $TMP/metrics-NAME-nodeI.txt and
# show the log follower's counters (where a node's time went while others wrote).
scrape_nodes() {
    [[ ${#NODE_PIDS[@]} -gt 0 ]] || return 0
    local name=$1 i=0 url
    for url in ${SERVER_URL//,/ }; do
        i=$((i + 1))
        curl -fsS --max-time 5 "$url/metrics" >"$TMP/metrics-$name-node$i.txt" 2>/dev/null || continue
        echo "run.sh: node$i $(grep -E '^hearth_(log_(reads|direct|paused|behind|position)|messages_stored_total)' \
            "$TMP/metrics-$name-node$i.txt" | tr '\n' ' ')"
    done
}

# sample_lag_start NAME: while several nodes run, read each one's log position every 0.2 s
# (on the load generator's core) into $TMP/positions-NAME.txt; sample_lag_stop prints how far
# each node fell behind the one furthest ahead. A node behind the log acknowledges its own
# clients late: their messages come after everything committed before them.
sample_lag_start() {
    [[ ${#NODE_PIDS[@]} -gt 1 && $1 == ingest-* ]] || return 0
    SAMPLE_FILE=$TMP/positions-$1.txt
    "${PIN_CLIENT[@]}" bash -c 'while :; do
        line=$(date +%s.%N)
        for url in "$@"; do
            line+=" $(curl -fsS --max-time 1 "$url/metrics" 2>/dev/null | sed -n "s/^hearth_log_position //p")"
        done
        echo "$line"
        sleep 0.2
    done' sampler ${SERVER_URL//,/ } >"$SAMPLE_FILE" 2>/dev/null &
    SAMPLER_PID=$!
}
sample_lag_stop() {
    [[ -n $SAMPLER_PID ]] || return 0
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    awk -v n="${#NODE_PIDS[@]}" 'NF == n + 1 {
            top = 0
            for (i = 2; i <= NF; i++) if ($i > top) top = $i
            for (i = 2; i <= NF; i++) if (top - $i > lag[i]) lag[i] = top - $i
            samples++
        }
        END {
            line = "run.sh: largest lag behind the node furthest ahead (log positions, " samples " samples):"
            for (i = 2; i <= n + 1; i++) line = line " node" i - 1 " " lag[i] + 0
            print line
        }' "$SAMPLE_FILE"
}

# run_failover RUN ARGS...: the failover scenario against the running nodes; the last node
# is the one killed, and is then no longer stopped.
run_failover() {
    local run=$1 victim=${NODE_PIDS[-1]}
    shift
    bench hearth-cluster "$run" failover --kill-pid "$victim" "$@"
    { wait "$victim"; } 2>/dev/null || true
    unset 'NODE_PIDS[-1]'
    if [[ $SERVER_PID == "$victim" ]]; then SERVER_PID=${NODE_PIDS[0]:-}; fi
}

run_startup() {
    local db=${BENCH_DB:-$TMP/startup.db}
    local fill=()
    [[ -n ${STARTUP_MESSAGES:-} ]] && fill=(--messages "$STARTUP_MESSAGES")
    echo
    echo "### startup: filling $db"
    start_server hearth "$db"
    bench hearth 0 fill "${fill[@]}"
    stop_server
    local run
    for run in $(seq "$RUNS"); do
        echo
        echo "### startup, run $run/$RUNS"
        wait_quiet
        local flags=(--run "$run")
        [[ $TINY == 1 ]] && flags+=(--tiny)
        client "startup run $run (server log: $db.startup.log)" "${flags[@]}" startup \
            --server-bin "$BIN/hearth" --db "$db" "$@" || true
    done
}

# run_search ARGS...: generate the search database once (hearth creates the schema, then
# hearth-bench search-db writes the messages; the server's triggers index them), then run the
# search scenario RUNS times, each on a freshly started server.
run_search() {
    local db=${SEARCH_DB:-$TMP/search.db}
    local gen=()
    [[ -n ${SEARCH_MESSAGES:-} ]] && gen+=(--messages "$SEARCH_MESSAGES")
    [[ ${SEARCH_TIME_REBUILD:-0} == 1 ]] && gen+=(--time-rebuild)
    [[ $TINY == 1 ]] && gen+=(--tiny)
    echo
    echo "### search: generating $db"
    if [[ ! -e $db ]]; then
        start_server hearth "$db"   # creates the database with the current schema
        stop_server
    fi
    local rc=0 t0 t1
    t0=$(date +%s.%N)
    client search-db search-db --db "$db" "${gen[@]}" || rc=$?
    t1=$(date +%s.%N)
    [[ $rc -eq 0 ]] || return 0
    echo "run.sh: search-db took $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s; $db is $(du -m "$db" | cut -f1) MiB"
    local run
    for run in $(seq "$RUNS"); do
        echo
        echo "### search, run $run/$RUNS, hearth"
        wait_quiet
        start_server hearth "$db"
        bench hearth "$run" search "$@"
        stop_server
    done
}

# pglog: a private PostgreSQL server (pinned like a Hearth server), a fresh database per run.
run_pglog() {
    if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
        PROBLEMS+=("pglog: PostgreSQL is not installed (bash scripts/install-engines.sh)")
        FAILED=1
        return
    fi
    start_pg
    local run
    for run in $(seq "$RUNS"); do
        echo
        echo "### pglog, run $run/$RUNS, postgresql"
        wait_quiet
        "${PG_AS[@]}" "$PG_BIN/createdb" -h "$PG_DIR" -U postgres "bench$run"
        local flags=(--run "$run")
        [[ $TINY == 1 ]] && flags+=(--tiny)
        client "hearth-bench pg-log (run $run)" "${flags[@]}" pg-log \
            --pg "postgres://postgres@/bench$run?host=$PG_DIR" "$@" || true
    done
}

if [[ $SCENARIO == all ]]; then
    for s in ingest fanout reactions everyday idle history slow startup search; do
        run_scenario "$s"
    done
    if ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then run_scenario pglog; fi
else
    run_scenario "$SCENARIO" "${EXTRA[@]}"
fi

[[ -n $OUT ]] && cat "$RESULTS" >>"$OUT"
echo
echo "==== summary ($SCENARIO, $RUNS run(s), $(date -u +%Y-%m-%dT%H:%MZ)) ===="
"$BIN/hearth-bench" summarize "$RESULTS" || true
if [[ ${#PROBLEMS[@]} -gt 0 ]]; then
    echo
    echo "problems:"
    printf '  %s\n' "${PROBLEMS[@]}"
fi
exit "$FAILED"

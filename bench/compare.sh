#!/usr/bin/env bash
# compare.sh: runbook-exporter against postgres_exporter and query-exporter,
# the same catalogue on the same seeded Ignition database. From anywhere:
#
#     bench/compare.sh            # full run (4-12 minutes), writes docs/benchmarks.md
#     bench/compare.sh --quick    # small seed, short runs, to try it out (about 2 minutes)
#
# It starts a throwaway PostgreSQL (temporary directory, free port on
# 127.0.0.1, pg_stat_statements preloaded), loads examples/ignition, creates
# one login role per exporter, times each catalogue query alone, then runs
# each exporter in turn on its own loopback port: cold scrape, warm-up,
# sequential scrapes, wrk with 10 connections, then a restart and a cold
# burst. It prints one table and writes the report. Details: bench/README.md.
#
# Options:
#   --quick              50 sequential scrapes, wrk -d 5s, seed-small.sql;
#                        the report goes to bench/results/RUN/benchmarks.md
#                        unless --output is given
#   --output FILE        where to write the Markdown report
#                        (default: docs/benchmarks.md; --quick: see above)
#   --exporters LIST     comma-separated subset of
#                        runbook,postgres_exporter,query_exporter
#   --keep               keep the PostgreSQL data directory (it is removed
#                        otherwise); raw results are always kept in
#                        bench/results/RUN/
#   --no-build           do not run `cargo build --release`
#   --wait-idle SECONDS  before each exporter, wait while other work keeps the
#                        machine's CPUs over 25 % busy, at most SECONDS in all
#                        (default 300; --quick: 60); then measure anyway and
#                        say so in the report
#   --retries N          measure an exporter again, at most N times, when other
#                        processes took over 25 % of the CPUs during its
#                        sequential or wrk run (default 2; --quick: 0); no
#                        waiting or retry starts after 8 minutes
#
# Environment: PG_BIN (PostgreSQL bin directory, default the newest
# /usr/lib/postgresql/*/bin), QE_VERSION (query-exporter version for a new
# venv, default 5.0.2), BENCH_VENV (default bench/.venv).
#
# As root it installs what is missing: Debian packages wrk and
# prometheus-postgres-exporter (apt-get), query-exporter into the venv (pip).
# PostgreSQL runs as the `postgres` user. Only 127.0.0.1 is ever contacted;
# every loop is bounded, and everything started here is stopped on exit.
set -euo pipefail

BENCH_NAME=compare
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# --- Options ------------------------------------------------------------------

quick=0
keep=0
build=1
output=
exporters=runbook,postgres_exporter,query_exporter
wait_idle_budget=
retries=
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1 ;;
        --keep) keep=1 ;;
        --no-build) build=0 ;;
        --output) [[ $# -ge 2 ]] || die "--output needs a file"; output=$2; shift ;;
        --output=*) output=${1#--output=} ;;
        --exporters) [[ $# -ge 2 ]] || die "--exporters needs a list"; exporters=$2; shift ;;
        --exporters=*) exporters=${1#--exporters=} ;;
        --wait-idle) [[ $# -ge 2 ]] || die "--wait-idle needs seconds"; wait_idle_budget=$2; shift ;;
        --wait-idle=*) wait_idle_budget=${1#--wait-idle=} ;;
        --retries) [[ $# -ge 2 ]] || die "--retries needs a number"; retries=$2; shift ;;
        --retries=*) retries=${1#--retries=} ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift
done
IFS=, read -r -a exporter_list <<<"$exporters"
for e in "${exporter_list[@]}"; do
    case $e in runbook|postgres_exporter|query_exporter) ;; *) die "unknown exporter $e" ;; esac
done

if [[ $quick == 1 ]]; then
    seed=seed-small.sql; seq_n=50; warm_n=5; wrk_d=5; burst_d=3
    wait_idle_budget=${wait_idle_budget:-60}
    retries=${retries:-0}
else
    seed=seed.sql; seq_n=200; warm_n=20; wrk_d=20; burst_d=5
    wait_idle_budget=${wait_idle_budget:-240}
    retries=${retries:-2}
fi
[[ $retries =~ ^[0-9]+$ ]] || die "--retries wants a whole number"
cold_n=3
# No waiting and no retry after this: the run stays well under 15 minutes.
retry_deadline=$((SECONDS + 480))
[[ $wait_idle_budget =~ ^[0-9]+$ ]] || die "--wait-idle wants whole seconds"
wrk_c=10
wrk_t=2
timing_runs=3
rb_max_conns=2
qe_version=${QE_VERSION:-5.0.2}
venv=${BENCH_VENV:-$bench/.venv}
run_id=$(date +%Y%m%d-%H%M%S)$([[ $quick == 1 ]] && echo -quick || true)
res=$bench/results/$run_id
if [[ -z $output ]]; then
    if [[ $quick == 1 ]]; then output=$res/benchmarks.md; else output=$repo/docs/benchmarks.md; fi
fi

# --- Cleanup --------------------------------------------------------------------

tmp=
exporter_pid=
sampler_pid=
wrk_pid=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$wrk_pid"
    stop_pid "$sampler_pid"
    if [[ -n $exporter_pid ]]; then
        say "stopping exporter (pid $exporter_pid)"
        stop_pid "$exporter_pid"
    fi
    if [[ -n $PG_PID ]]; then
        say "stopping PostgreSQL"
        pg_stop
    fi
    if [[ -n $tmp && -d $tmp ]]; then
        if [[ $keep == 1 ]]; then
            say "kept $tmp"
        else
            rm -rf -- "$tmp"
        fi
    fi
    [[ $status -ne 0 ]] && say "failed (exit $status); raw results so far: $res"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Tools ------------------------------------------------------------------------

need_deb curl curl
need_deb wrk wrk
pgexp_running_before=$(pgrep -x prometheus-post || true)
need_deb prometheus-postgres-exporter prometheus-postgres-exporter
# The package ships a service; /usr/sbin/policy-rc.d normally keeps it from
# starting. If this install started it anyway, stop it through its init script.
if [[ -z $pgexp_running_before ]] && pgrep -x prometheus-post >/dev/null; then
    say "the package started its service: stopping it"
    service prometheus-postgres-exporter stop >/dev/null 2>&1 || systemctl stop prometheus-postgres-exporter >/dev/null 2>&1 || true
    sleep 1
    pgrep -x prometheus-post >/dev/null && die "prometheus-postgres-exporter service still running (pids $(pgrep -x prometheus-post | tr '\n' ' '))"
fi
if [[ -n $(pgrep -x prometheus-post || true) ]]; then
    say "note: a prometheus-postgres-exporter not started here is running (pids $(pgrep -x prometheus-post | tr '\n' ' ')); it competes for CPU"
fi

if [[ ! -x $venv/bin/query-exporter ]]; then
    say "creating $venv with query-exporter $qe_version"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "query-exporter==$qe_version" psycopg2-binary >&2
fi
py=$venv/bin/python
"$py" -c 'import yaml, psycopg2' 2>/dev/null || "$venv/bin/pip" install -q pyyaml psycopg2-binary >&2

if [[ $build == 1 ]]; then
    say "cargo build --release"
    (cd "$repo" && cargo build --release --quiet) >&2
fi
rb_bin=${CARGO_TARGET_DIR:-$repo/target}/release/runbook-exporter
[[ -x $rb_bin ]] || die "no $rb_bin (run cargo build --release)"

pg_find_bin || die "no PostgreSQL server binaries: set PG_BIN"
pg_find_psql || die "no psql"

mkdir -p "$res"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-bench.XXXXXX")

# The peers' configs must be the catalogue's translation.
"$py" "$bench/peers/gen_peers.py" "$repo/queries.yaml" "$tmp/peers" 2>/dev/null
for f in postgres_exporter.yaml query_exporter.yaml; do
    cmp -s "$tmp/peers/$f" "$bench/peers/$f" \
        || die "bench/peers/$f is not the translation of queries.yaml: run $py bench/peers/gen_peers.py"
done

# --- Machine and versions -----------------------------------------------------------

meta() { printf '%s=%s\n' "$1" "$2" >>"$res/meta.txt"; }
: >"$res/meta.txt"
: >"$res/issues.txt"
issue() { say "ISSUE: $*"; printf '%s\n' "$*" >>"$res/issues.txt"; }

meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta quick "$quick"
meta exporters "$exporters"
meta nproc "$(nproc)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')"
meta mem "$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta os "$(. /etc/os-release && echo "$PRETTY_NAME")"
meta kernel "$(uname -r)"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta clk_tck "$(getconf CLK_TCK)"
meta pg_version "$("$PG_BIN/postgres" --version)"
meta wrk_version "$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')"
meta curl_version "$(curl --version | head -n 1 | awk '{print $2}')"
rb_dirty=$(cd "$repo" && git status --porcelain -- src Cargo.toml Cargo.lock build.rs 2>/dev/null | wc -l)
meta runbook_version "$("$rb_bin" --version) (git $(cd "$repo" && git rev-parse --short HEAD)$([[ $rb_dirty -gt 0 ]] && echo ", built with $rb_dirty uncommitted changed files in src/ or Cargo.*" || true))"
meta postgres_exporter_version "$(prometheus-postgres-exporter --version 2>&1 | head -n 1 | sed 's/^postgres_exporter, //') (Debian $(dpkg-query -W -f='${Version}' prometheus-postgres-exporter 2>/dev/null))"
meta query_exporter_version "$("$venv/bin/query-exporter" --version 2>&1 | awk '{print $NF}') (PyPI; SQLAlchemy $("$py" -c 'import sqlalchemy; print(sqlalchemy.__version__)'), psycopg2 $("$py" -c 'import psycopg2; print(psycopg2.__version__.split()[0])'), Python $("$py" -c 'import platform; print(platform.python_version())'))"
meta seed "examples/ignition/$seed"
meta seq_scrapes "$seq_n"
meta warmup_scrapes "$warm_n"
meta wrk_connections "$wrk_c"
meta wrk_duration "$wrk_d"
meta burst_duration "$burst_d"
meta timing_runs "$timing_runs"
meta rb_max_connections "$rb_max_conns"
meta cold_starts "$cold_n"

# --- PostgreSQL ------------------------------------------------------------------------

say "initdb ($("$PG_BIN/postgres" --version))"
pg_settings="shared_preload_libraries=pg_stat_statements shared_buffers=512MB max_connections=100 (other settings: defaults)"
meta pg_settings "$pg_settings"
pg_start "$tmp" -c shared_preload_libraries=pg_stat_statements -c shared_buffers=512MB -c max_connections=100 \
    -c log_min_messages=warning || die "PostgreSQL did not start (log: $tmp/postgres.log)"
pg_port=$PG_PORT
say "PostgreSQL on 127.0.0.1:$pg_port"

db_url=postgres://postgres@127.0.0.1:$pg_port/ignition
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db_url" "$@"; }
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "postgres://postgres@127.0.0.1:$pg_port/postgres" -c 'CREATE DATABASE ignition'

say "loading examples/ignition/schema.sql and $seed"
load_start=$(date +%s.%N)
psql_admin -f "$repo/examples/ignition/schema.sql" >/dev/null
(cd "$repo/examples/ignition" && psql_admin -f "$seed") >/dev/null
psql_admin -c 'VACUUM (ANALYZE)'
load_end=$(date +%s.%N)
meta load_seconds "$(awk -v a="$load_start" -v b="$load_end" 'BEGIN {printf "%.1f", b - a}')"
meta activity_events "$(psql_admin -At -c 'SELECT count(*) FROM activity_events')"
meta db_size "$(psql_admin -At -c "SELECT pg_size_pretty(pg_database_size('ignition'))")"
say "loaded in $(awk -v a="$load_start" -v b="$load_end" 'BEGIN {printf "%.1f", b - a}') s"

psql_admin >/dev/null <<'SQL'
CREATE EXTENSION pg_stat_statements;
CREATE ROLE bench_runbook LOGIN IN ROLE pg_monitor;
CREATE ROLE bench_pgexp LOGIN IN ROLE pg_monitor;
CREATE ROLE bench_qe LOGIN IN ROLE pg_monitor;
CREATE ROLE bench_timing LOGIN IN ROLE pg_monitor;
GRANT SELECT ON schema_migrations, activity_events, sessions, users, focus_sessions, application_logs
    TO bench_runbook, bench_pgexp, bench_qe, bench_timing;
ALTER ROLE bench_pgexp SET default_transaction_read_only = on;
ALTER ROLE bench_pgexp SET statement_timeout = '15s';
ALTER ROLE bench_pgexp SET lock_timeout = '1s';
ALTER ROLE bench_qe SET default_transaction_read_only = on;
ALTER ROLE bench_qe SET statement_timeout = '15s';
ALTER ROLE bench_qe SET lock_timeout = '1s';
SELECT pg_stat_statements_reset();
SQL

# --- Each catalogue query alone -------------------------------------------------------

# The queries this server runs: `check` says which ones the exporter skips here (server version, primary or
# standby). They are left out of the timing, the queryids and the peers' configs, where they would fail on
# every scrape; runbook-exporter itself runs the whole catalogue and skips them.
DATABASE_URL=postgres://bench_timing@127.0.0.1:$pg_port/ignition \
    "$rb_bin" check --config.file "$repo/queries.yaml" --output json >"$res/check.json" 2>"$res/check.log" || true
"$py" - "$res/check.json" "$repo/queries.yaml" "$tmp/queries-here.yaml" >"$res/skipped.tsv" <<'PY' \
    || die "check did not report on the catalogue: $res/check.log"
import json, sys, yaml
report = json.load(open(sys.argv[1]))
skipped = {q["name"]: q["status"] for t in report["targets"] for q in t["queries"] if q["status"].startswith("skipped")}
catalogue = yaml.safe_load(open(sys.argv[2]))
catalogue["queries"] = {n: q for n, q in catalogue["queries"].items() if n not in skipped}
yaml.safe_dump(catalogue, open(sys.argv[3], "w"), sort_keys=False)
for name, status in skipped.items():
    print(f"{name}\t{status}")
PY
if [[ -s $res/skipped.tsv ]]; then
    issue "left out of the timing and the peers' configs (runbook-exporter skips them on this server): $(
        awk -F '\t' '{printf "%s%s (%s)", (NR > 1 ? ", " : ""), $1, $2}' "$res/skipped.tsv")"
fi
"$py" "$bench/peers/gen_peers.py" "$tmp/queries-here.yaml" "$tmp/peers-here" 2>/dev/null
"$py" "$bench/report.py" sql "$tmp/queries-here.yaml" runbook "$tmp/sql/runbook"
"$py" "$bench/report.py" sql "$tmp/peers-here/postgres_exporter.yaml" postgres_exporter "$tmp/sql/postgres_exporter"
"$py" "$bench/report.py" sql "$tmp/peers-here/query_exporter.yaml" query_exporter "$tmp/sql/query_exporter"
"$py" - "$tmp/queries-here.yaml" >"$res/ttls.tsv" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
d = (c.get("defaults") or {}).get("ttl", "0s")
for n, q in c["queries"].items():
    print(f"{n}\t{q.get('ttl', d)}")
PY

# Twice: in a session set up as runbook-exporter sets up its own (no parallel workers), which is what the
# cold-scrape target compares with, and with the server's defaults (parallel workers allowed), for reference.
say "timing each catalogue query alone ($timing_runs fresh sessions each, as runbook-exporter runs it and with the server's defaults)"
timing_url=postgres://bench_timing@127.0.0.1:$pg_port/ignition
for variant in timings timings-parallel; do
    : >"$res/$variant.tsv"
    setup='SET max_parallel_workers_per_gather = 0;'
    [[ $variant == timings ]] || setup=
    for f in "$tmp"/sql/runbook/*.sql; do
        q=$(basename "$f" .sql)
        for _ in $(seq 1 "$timing_runs"); do
            t=$({ echo "$setup"; echo '\timing on'; cat "$f"; } \
                | "$PSQL" -X -q -o /dev/null -v ON_ERROR_STOP=1 -d "$timing_url" \
                | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)
            [[ -n $t ]] || die "timing $q failed"
            printf '%s\t%s\n' "$q" "$t" >>"$res/$variant.tsv"
        done
    done
done

# queryid of each catalogue statement as each exporter sends it.
queryids() { # kind outfile
    local f q id
    : >"$2"
    for f in "$tmp/sql/$1"/*.sql; do
        q=$(basename "$f" .sql)
        id=$(psql_admin -At -c "EXPLAIN (VERBOSE, COSTS OFF) $(cat "$f")" | sed -n 's/^Query Identifier: *//p')
        [[ -n $id ]] || die "no queryid for $1/$q (is pg_stat_statements loaded?)"
        printf '%s\t%s\n' "$q" "$id" >>"$2"
    done
}

# --- Measuring helpers ------------------------------------------------------------------

role_of() {
    case $1 in runbook) echo bench_runbook ;; postgres_exporter) echo bench_pgexp ;; query_exporter) echo bench_qe ;; esac
}

snap_stats() { # role outfile
    psql_admin -At -F $'\t' -c "SELECT queryid, sum(calls), sum(total_exec_time) FROM pg_stat_statements
        WHERE userid = '$1'::regrole AND queryid IS NOT NULL GROUP BY queryid" >"$2"
}

ticks_of() { # pid...: utime + stime summed, clock ticks (processes gone are skipped)
    local p sum=0 t
    for p in "$@"; do
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=
        [[ -n $t ]] && sum=$((sum + t))
    done
    echo "$sum"
}

cpu_ticks() { # exporter_pid outfile: "exporter system_busy postgres children" in clock ticks
    local pm sys kids
    pm=$PG_PID
    # user + nice + system: irq/softirq time (loopback traffic of the run itself) and steal are left out.
    sys=$(head -n 1 /proc/stat | awk '{print $2 + $3 + $4}')
    # This shell's waited-for children (wrk, curl, the psql sampler): cutime + cstime.
    kids=$(sed 's/^.*) //' /proc/$$/stat | awk '{print $14 + $15}')
    # shellcheck disable=SC2046
    echo "$(ticks_of "$1") $sys $(ticks_of "$pm" $(pgrep -P "$pm")) $kids" >"$2"
}

conn_count() { psql_admin -At -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$1'"; }

start_sampler() { # role seconds outfile: one psql session, a sample every 0.2 s, ends by itself
    local n=$(( $2 * 5 + 10 ))
    {
        for _ in $(seq 1 "$n"); do
            echo "SELECT count(*) FROM pg_stat_activity WHERE usename = '$1';"
            echo "SELECT pg_sleep(0.2);"
        done
    } | "$PSQL" -X -q -At -d "$db_url" 2>/dev/null | grep -E '^[0-9]+$' >"$3" &
    sampler_pid=$!
}

wait_sampler() {
    [[ -n $sampler_pid ]] || return 0
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=
}

scrape() { # port outfile -> prints seconds
    curl -s -S --max-time 30 -o "$2" -w '%{time_total}\n' "http://127.0.0.1:$1/metrics"
}

start_exporter() { # name port log
    local name=$1 port=$2 log=$3 role
    role=$(role_of "$name")
    local dsn_host=127.0.0.1:$pg_port
    case $name in
        runbook)
            cmd=(env "DATABASE_URL=postgres://$role@$dsn_host/ignition"
                 "$rb_bin" --config.file "$repo/queries.yaml" --web.listen-address "127.0.0.1:$port"
                 --database.max-connections "${rb_conns_now:-$rb_max_conns}")
            ;;
        postgres_exporter)
            cmd=(env "DATA_SOURCE_NAME=postgresql://$role@$dsn_host/ignition?sslmode=disable&application_name=postgres_exporter"
                 prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port"
                 --extend.query-path="$tmp/peers-here/postgres_exporter.yaml"
                 --disable-default-metrics --disable-settings-metrics
                 --no-collector.database --no-collector.bgwriter)
            ;;
        query_exporter)
            cmd=(env "QE_DATABASE_DSN=postgresql+psycopg2://$role@$dsn_host/ignition?application_name=query-exporter"
                 PROMETHEUS_DISABLE_CREATED_SERIES=True
                 "$venv/bin/query-exporter" --config "$tmp/peers-here/query_exporter.yaml" -H 127.0.0.1 -p "$port")
            ;;
    esac
    "${cmd[@]}" >>"$log" 2>&1 &
    exporter_pid=$!
    # Wait (up to 30 s) until the port accepts connections.
    for _ in $(seq 1 600); do
        kill -0 "$exporter_pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited at start (log: $log)"; }
        pg_port_in_use "$port" && return 0
        sleep 0.05
    done
    die "$name did not listen on 127.0.0.1:$port within 30 s (log: $log)"
}

stop_exporter() { # name
    local role
    role=$(role_of "$1")
    stop_pid "$exporter_pid"
    exporter_pid=
    # Wait (up to 10 s) for its connections to go away.
    for _ in $(seq 1 100); do
        [[ $(conn_count "$role") == 0 ]] && return 0
        sleep 0.1
    done
    issue "$1: connections of role $role still open 10 s after the exporter stopped"
}

cpu_busy_pct() { # seconds: share of all CPUs busy over that time, whole per cent
    local a b
    a=$(head -n 1 /proc/stat)
    sleep "$1"
    b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 2; i <= n; i++) { t += y[i] - x[i] }
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d", (t > 0 ? 100 * (t - idle) / t : 0) }'
}

wait_for_idle() { # name: wait while other work keeps the CPUs busy (bounded by the run's budget)
    local busy
    while :; do
        busy=$(cpu_busy_pct 3)
        if (( busy < 25 )); then
            meta "${1}_busy_before" "$busy"
            return 0
        fi
        if (( wait_idle_budget <= 0 || SECONDS > retry_deadline )); then
            meta "${1}_busy_before" "$busy"
            say "$1: starting although other work keeps the CPUs ${busy}% busy (no waiting left)"
            return 0
        fi
        say "CPUs ${busy}% busy with other work: waiting (${wait_idle_budget} s of waiting left)"
        wait_idle_budget=$((wait_idle_budget - 3))
    done
}

# --- One exporter --------------------------------------------------------------------------

measure_exporter() { # name
    local name=$1 role port d i t
    role=$(role_of "$name")
    d=$res/$name
    mkdir -p "$d"
    queryids "$name" "$d/queryids.tsv"
    wait_for_idle "$name"
    port=$(pg_free_port) || die "no free port found"
    say "== $name on 127.0.0.1:$port (role $role, CPUs $(grep "^${name}_busy_before=" "$res/meta.txt" | tail -n 1 | cut -d= -f2)% busy before)"
    # Cold scrapes: the first scrape once the port is open, over $cold_n
    # starts; the last start goes on into the measurements.
    : >"$d/cold.txt"
    for i in $(seq 1 "$cold_n"); do
        start_exporter "$name" "$port" "$d/exporter.log"
        t=$(scrape "$port" "$d/cold-metrics.txt") || { issue "$name: cold scrape $i failed"; t=; }
        echo "$t" >>"$d/cold.txt"
        say "$name: cold scrape $i: ${t:-?} s"
        if (( i < cold_n )); then stop_exporter "$name"; fi
    done
    local pid=$exporter_pid
    meta "${name}_cmd" "$(printf '%s ' "${cmd[@]}" | sed "s|$repo/||g; s| \$||")"
    meta "${name}_port" "$port"

    for i in $(seq 1 "$warm_n"); do
        scrape "$port" /dev/null >/dev/null || issue "$name: warm-up scrape $i failed"
    done

    meta "${name}_load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
    say "$name: $seq_n sequential scrapes"
    snap_stats "$role" "$d/stats-seq-before.tsv"
    cpu_ticks "$pid" "$d/cpu-seq-before.txt"
    local t0 t1
    t0=$(date +%s.%N)
    : >"$d/seq.txt"
    for i in $(seq 1 "$seq_n"); do
        scrape "$port" "$d/seq-last.txt" >>"$d/seq.txt" || issue "$name: sequential scrape $i failed"
    done
    cpu_ticks "$pid" "$d/cpu-seq-after.txt"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "seq_seconds=%.3f\n", b - a}' >"$d/phases.txt"
    snap_stats "$role" "$d/stats-seq-after.tsv"

    say "$name: wrk -t $wrk_t -c $wrk_c -d ${wrk_d}s"
    snap_stats "$role" "$d/stats-wrk-before.tsv"
    start_sampler "$role" "$((wrk_d + 2))" "$d/conns-wrk.txt"
    cpu_ticks "$pid" "$d/cpu-wrk-before.txt"
    t0=$(date +%s.%N)
    wrk -t "$wrk_t" -c "$wrk_c" -d "${wrk_d}s" --timeout 10s --latency "http://127.0.0.1:$port/metrics" >"$d/wrk.txt" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || issue "$name: wrk exited with status $?"
    wrk_pid=
    cpu_ticks "$pid" "$d/cpu-wrk-after.txt"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "wrk_seconds=%.3f\n", b - a}' >>"$d/phases.txt"
    wait_sampler # ends 2 s after wrk: in-flight scrapes finish meanwhile
    snap_stats "$role" "$d/stats-wrk-after.tsv"
    grep -E 'requests in|Requests/sec|99%' "$d/wrk.txt" | sed "s/^/  $name: /" >&2 || true

    meta "${name}_load_after" "$(cut -d' ' -f1-3 /proc/loadavg)"
    scrape "$port" "$d/final-metrics.txt" >/dev/null || issue "$name: final scrape failed"
    {
        echo "pid=$pid"
        if kill -0 "$pid" 2>/dev/null; then echo alive=1; else echo alive=0; fi
        awk '/^VmHWM/ {print "VmHWM=" $2} /^VmRSS/ {print "VmRSS=" $2}' "/proc/$pid/status" 2>/dev/null || true
    } >"$d/proc.txt"
    grep -q '^alive=1' "$d/proc.txt" || issue "$name: the process died during the run (log: $d/exporter.log)"
    say "$name: stopping"
    stop_exporter "$name"

    say "$name: cold burst (restart, wrk -c $wrk_c -d ${burst_d}s at once)"
    snap_stats "$role" "$d/stats-burst-before.tsv"
    start_exporter "$name" "$port" "$d/exporter.log"
    start_sampler "$role" "$((burst_d + 2))" "$d/conns-burst.txt"
    wrk -t "$wrk_t" -c "$wrk_c" -d "${burst_d}s" --timeout 10s --latency "http://127.0.0.1:$port/metrics" >"$d/burst-wrk.txt" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || issue "$name: burst wrk exited with status $?"
    wrk_pid=
    wait_sampler
    snap_stats "$role" "$d/stats-burst-after.tsv"
    kill -0 "$exporter_pid" 2>/dev/null || issue "$name: the process died during the cold burst (log: $d/exporter.log)"
    stop_exporter "$name"

    if [[ $name == runbook ]]; then
        # For comparison only: cold scrapes with one connection per query, so
        # that every query can run at once.
        local n_queries
        n_queries=$(wc -l <"$res/ttls.tsv")
        say "$name: $cold_n cold scrapes with --database.max-connections $n_queries"
        meta runbook_wide_connections "$n_queries"
        : >"$d/cold-wide.txt"
        for i in $(seq 1 "$cold_n"); do
            rb_conns_now=$n_queries start_exporter "$name" "$port" "$d/exporter.log"
            scrape "$port" /dev/null >>"$d/cold-wide.txt" || issue "$name: cold scrape $i with $n_queries connections failed"
            stop_exporter "$name"
        done
    fi

    # Anything off goes into the report's observations.
    local w
    for f in wrk burst-wrk; do
        w=$(grep -E 'Non-2xx|Socket errors' "$d/$f.txt" || true)
        [[ -z $w ]] || issue "$name ($f): $(echo "$w" | tr '\n' ' ')"
    done
    local max_c
    max_c=$(sort -n "$d/conns-wrk.txt" "$d/conns-burst.txt" 2>/dev/null | tail -n 1)
    if [[ $name == runbook && -n $max_c && $max_c -gt $rb_max_conns ]]; then
        issue "runbook: $max_c connections observed, above --database.max-connections $rb_max_conns"
    fi
    if [[ $name == runbook ]]; then
        local n_warn
        n_warn=$(grep -c -E ' (WARN|ERROR) ' "$d/exporter.log" || true)
        if [[ $n_warn -gt 0 ]]; then
            issue "runbook: $n_warn WARN/ERROR log lines, first: $(grep -m1 -E ' (WARN|ERROR) ' "$d/exporter.log" | cut -c1-300)"
        fi
    fi
    if [[ $name == query_exporter ]] && grep -E '^queries_total' "$d/final-metrics.txt" | grep -v 'status="success"' | grep -q .; then
        issue "query_exporter: failed queries: $(grep -E '^queries_total' "$d/final-metrics.txt" | grep -v 'status="success"' | tr '\n' ' ')"
    fi
    if [[ $name == postgres_exporter ]] && grep -q -E 'level=(error|warn)' "$d/exporter.log"; then
        issue "postgres_exporter: $(grep -c -E 'level=(error|warn)' "$d/exporter.log") error/warn log lines, first: $(grep -m1 -E 'level=(error|warn)' "$d/exporter.log" | cut -c1-300)"
    fi
}

disturbed_pct() { # dir: most that other processes took of the machine's CPUs over the sequential or the wrk run
    awk -v ncpu="$(nproc)" -v hz="$(getconf CLK_TCK)" '
        FNR == 1 { file++ }
        { v[file, 1] = $1; v[file, 2] = $2; v[file, 3] = $3; v[file, 4] = $4; el[file] = $0 }
        END {
            worst = 0
            for (p = 0; p < 2; p++) {
                a = 1 + 3 * p; b = a + 1; e = a + 2
                split(el[e], kv, "=")
                secs = kv[2]
                if (secs <= 0) continue
                other = (v[b,2] - v[a,2]) - (v[b,1] - v[a,1]) - (v[b,3] - v[a,3]) - (v[b,4] - v[a,4])
                share = 100 * other / (secs * hz * ncpu)
                if (share > worst) worst = share
            }
            printf "%d", worst
        }' "$1/cpu-seq-before.txt" "$1/cpu-seq-after.txt" <(sed -n 1p "$1/phases.txt") \
           "$1/cpu-wrk-before.txt" "$1/cpu-wrk-after.txt" <(sed -n 2p "$1/phases.txt")
}

run_exporter() { # name: measure; again (at most $retries times) if other work took the CPUs meanwhile
    local name=$1 attempt=1 share
    while :; do
        measure_exporter "$name"
        share=$(disturbed_pct "$res/$name")
        meta "${name}_disturbed_pct" "$share"
        if (( share <= 25 )); then
            break
        fi
        if (( attempt > retries || SECONDS > retry_deadline )); then
            issue "$name measured while other processes took up to ${share}% of the machine's CPUs (attempt $attempt; no retry left)"
            break
        fi
        say "$name: other processes took ${share}% of the CPUs during the measurement: measuring again"
        rm -rf "$res/$name.disturbed-$attempt"
        mv "$res/$name" "$res/$name.disturbed-$attempt"
        attempt=$((attempt + 1))
    done
    meta "${name}_attempts" "$attempt"
}

meta wrk_cmd "wrk -t $wrk_t -c $wrk_c -d ${wrk_d}s --timeout 10s --latency http://127.0.0.1:PORT/metrics"

for e in "${exporter_list[@]}"; do
    run_exporter "$e"
done

# --- Report -------------------------------------------------------------------------------

cp "$tmp/postgres.log" "$res/postgres.log" 2>/dev/null || true
mkdir -p "$(dirname "$output")"
say "report: $output (raw results: $res)"
echo
"$py" "$bench/report.py" report "$res" "$output"

#!/usr/bin/env bash
# scale.sh: runbook-exporter as the fleet grows: many databases on one server (one target with `databases:`),
# the same databases as many `targets:` (the way before issue 14), many tables in one database, and the
# Ignition database alone. From anywhere:
#
#     bench/scale.sh                                  # 1,10,50,200 databases; 50 targets; 100,1000,10000 tables
#     bench/scale.sh --databases 1,10 --targets 10 --tables 100,1000
#
# Each case: a fresh exporter (shipped queries.yaml), a cold scrape, then warm scrapes; it reports cold and
# warm (median) scrape time, series, exporter RSS, exporter CPU per warm scrape, database time per warm scrape
# (pg_stat_statements total_exec_time of the exporter's role, every database) and the most connections the
# exporter's role held (pg_stat_activity sampled every 50 ms) against its bound. It prints a Markdown table and
# replaces the "## Scaling" section of the output file (bench/report.py keeps that section when it rewrites
# docs/benchmarks.md).
#
# Options:
#   --databases LIST   database counts for the one-target-per-server case (default 1,10,50,200)
#   --targets N        the first N databases as N targets (default 50; 0 skips)
#   --tables LIST      table counts in one database (default 100,1000,10000; empty skips)
#   --warm N           warm scrapes per case (default 5)
#   --binary PATH      the exporter to measure (default target/release/runbook-exporter, built unless --no-build)
#   --no-build         do not run cargo build --release
#   --output FILE      the Markdown file whose Scaling section is replaced (default docs/benchmarks.md)
#
# Databases are small Ignition ones (examples/ignition schema and seed-small.sql, copied with CREATE DATABASE
# ... TEMPLATE). Authentication is trust (no password), so connection set-up is the cheapest it can be.
# PostgreSQL runs in a temporary directory on 127.0.0.1 only; everything started here is stopped on exit.
set -euo pipefail

BENCH_NAME=scale
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

databases=1,10,50,200
targets=50
tables=100,1000,10000
warm=5
binary=
build=1
output=$repo/docs/benchmarks.md
while [[ $# -gt 0 ]]; do
    case $1 in
        --databases) databases=$2; shift ;;
        --targets) targets=$2; shift ;;
        --tables) tables=$2; shift ;;
        --warm) warm=$2; shift ;;
        --binary) binary=$2; shift ;;
        --no-build) build=0 ;;
        --output) output=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift
done
[[ $warm =~ ^[1-9][0-9]*$ ]] || die "--warm wants a positive whole number"
[[ $targets =~ ^[0-9]+$ ]] || die "--targets wants a whole number"

if [[ -z $binary ]]; then
    if [[ $build == 1 ]]; then
        say "cargo build --release"
        (cd "$repo" && cargo build --release --quiet) >&2
    fi
    binary=${CARGO_TARGET_DIR:-$repo/target}/release/runbook-exporter
fi
[[ -x $binary ]] || die "no exporter at $binary"
need_deb curl curl
pg_find_bin || die "no PostgreSQL server binaries: set PG_BIN"
pg_find_psql || die "no psql"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-scale.XXXXXX")
exporter_pid=
sampler_pid=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$sampler_pid"
    stop_pid "$exporter_pid"
    [[ -n $PG_PID ]] && pg_stop
    rm -rf -- "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "PostgreSQL ($("$PG_BIN/postgres" --version))"
pg_start "$tmp" -c shared_preload_libraries=pg_stat_statements -c max_connections=300 -c log_min_messages=warning \
    || die "PostgreSQL did not start"
base=postgres://postgres@127.0.0.1:$PG_PORT
sql() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$base/${2:-postgres}" -c "$1"; }
sql "CREATE EXTENSION pg_stat_statements; CREATE ROLE bench_scale LOGIN IN ROLE pg_monitor"
sql "CREATE DATABASE ignition"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$base/ignition" -f "$repo/examples/ignition/schema.sql" >/dev/null
(cd "$repo/examples/ignition" && "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$base/ignition" -f seed-small.sql) >/dev/null
sql "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_scale" ignition
sql "VACUUM ANALYZE" ignition

made=0
make_databases() { # up to N tenant databases, copies of ignition
    while [[ $made -lt $1 ]]; do
        made=$((made + 1))
        sql "CREATE DATABASE $(printf 'tenant_%04d' "$made") TEMPLATE ignition"
    done
}

rows=()
clk=$(getconf CLK_TCK)
measure() { # label bound config-file database
    local label=$1 bound=$2 config=$3 db=$4 port cold times=() cpu0 cpu1 t0 t1 body
    port=$(pg_free_port)
    sql "SELECT pg_stat_statements_reset()" >/dev/null
    DATABASE_URL=postgres://bench_scale@127.0.0.1:$PG_PORT/$db "$binary" --config.file "$config" \
        --web.listen-address "127.0.0.1:$port" --scrape.timeout 60s --log.level warn >"$tmp/exporter.log" 2>&1 &
    exporter_pid=$!
    for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || { tail -n 20 "$tmp/exporter.log" >&2; die "$label: the exporter did not start"; }
    # The pools warm at start-up; the cold scrape is the first one, with nothing cached.
    sleep 1
    cold=$(curl -s -o "$tmp/body" -w '%{time_total}' "http://127.0.0.1:$port/metrics")
    (while :; do sql "SELECT count(*) || ' ' || coalesce(string_agg(datname || ':' || state, ',' ORDER BY datname), '') FROM pg_stat_activity WHERE usename = 'bench_scale'"; sleep 0.05; done \
        >"$tmp/conns" 2>/dev/null) &
    sampler_pid=$!
    t0=$(sql "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'bench_scale'")
    cpu0=$(awk '{print $14 + $15}' "/proc/$exporter_pid/stat")
    for _ in $(seq 1 "$warm"); do
        times+=("$(curl -s -o "$tmp/body" -w '%{time_total}' "http://127.0.0.1:$port/metrics")")
    done
    cpu1=$(awk '{print $14 + $15}' "/proc/$exporter_pid/stat")
    t1=$(sql "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'bench_scale'")
    stop_pid "$sampler_pid"; sampler_pid=
    local series rss median conns
    series=$(grep -vc '^#' "$tmp/body" || true)
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$exporter_pid/status")
    median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)]}')
    conns=$(sort -n "$tmp/conns" | tail -n 1)
    say "most connections: $conns"
    conns=${conns%% *}
    stop_pid "$exporter_pid"; exporter_pid=
    grep -i 'error\|warn' "$tmp/exporter.log" | grep -v 'file set scan failed' | head -n 3 >&2 || true
    rows+=("| $label | $(printf '%.3f' "$cold") | $median | $series | $rss | $(awk -v a="$cpu0" -v b="$cpu1" -v n="$warm" -v c="$clk" 'BEGIN {printf "%.1f", (b - a) * 1000 / c / n}') | $(awk -v a="$t0" -v b="$t1" -v n="$warm" 'BEGIN {printf "%.1f", (b - a) / n}') | ${conns:-?} / $bound |")
    say "${rows[-1]}"
}

with_targets() { # target-block-file > config
    cat "$1"
    cat "$repo/queries.yaml"
}

IFS=, read -r -a db_counts <<<"$databases"
for n in "${db_counts[@]}"; do
    [[ -n $n ]] || continue
    make_databases "$n"
    printf 'targets:\n  pg:\n    max_connections: 4\n    databases: {include: ["tenant_*"], refresh: 600s}\n' >"$tmp/t"
    # Only the first N tenants are watched: the others (made for an earlier, larger case) refuse connections.
    for i in $(seq $((n + 1)) "$made"); do sql "ALTER DATABASE $(printf 'tenant_%04d' "$i") ALLOW_CONNECTIONS false"; done
    for i in $(seq 1 "$n"); do sql "ALTER DATABASE $(printf 'tenant_%04d' "$i") ALLOW_CONNECTIONS true"; done
    with_targets "$tmp/t" >"$tmp/config.yaml"
    measure "$n databases, one target (\`databases:\`)" 4 "$tmp/config.yaml" postgres
done
if [[ $targets -gt 0 ]]; then
    make_databases "$targets"
    for i in $(seq 1 "$made"); do sql "ALTER DATABASE $(printf 'tenant_%04d' "$i") ALLOW_CONNECTIONS true"; done
    { echo "targets:"; for i in $(seq 1 "$targets"); do
        printf '  t%04d: {url: "postgres://bench_scale@127.0.0.1:%s/tenant_%04d"}\n' "$i" "$PG_PORT" "$i"; done; } >"$tmp/t"
    with_targets "$tmp/t" >"$tmp/config.yaml"
    measure "$targets databases as $targets \`targets:\`" $((targets * 2)) "$tmp/config.yaml" postgres
fi
IFS=, read -r -a table_counts <<<"$tables"
for n in "${table_counts[@]}"; do
    [[ -n $n ]] || continue
    sql "CREATE DATABASE tables_$n"
    # In transactions of 1,000 tables: one transaction's locks must fit the shared lock table
    # (max_locks_per_transaction × max_connections), which 10,000 tables and their indexes do not.
    for ((from = 1; from <= n; from += 1000)); do
        to=$((from + 999 < n ? from + 999 : n))
        sql "DO \$\$ BEGIN FOR i IN $from..$to LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); EXECUTE format('INSERT INTO t%s SELECT g, ''x'' FROM generate_series(1, %s) g', i, 1 + i % 50); END LOOP; END \$\$" "tables_$n"
    done
    sql "ANALYZE" "tables_$n"
    measure "$n tables in one database" 2 "$repo/queries.yaml" "tables_$n"
done
measure "the Ignition database (seed-small.sql)" 2 "$repo/queries.yaml" ignition

table=("| Case | Cold scrape (s) | Warm scrape, median (s) | Series | Exporter RSS (MiB) | Exporter CPU per warm scrape (ms) | Database time per warm scrape (ms) | Connections held, max / bound |"
       "|---|---|---|---|---|---|---|---|" "${rows[@]}")
printf '%s\n' "${table[@]}"
run_note="Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')), $("$PG_BIN/postgres" --version), exporter $("$binary" --version) (git $(cd "$repo" && git rev-parse --short HEAD)), \`bench/scale.sh --databases $databases --targets $targets --tables ${tables:-none} --warm $warm\`, $warm warm scrapes per case."
{
    printf '## Scaling\n\nMeasured by `bench/scale.sh` (see its header for what each column is).\n\n%s\n\n' "$run_note"
    printf '%s\n' "${table[@]}"
} >"$tmp/section.md"
replace_section "$output" "## Scaling" "$tmp/section.md"
say "wrote the Scaling section of $output"

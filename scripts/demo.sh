#!/usr/bin/env bash
# demo.sh: see runbook-exporter at work on a live Ignition database, in one
# command. From the repository root:
#
#     scripts/demo.sh
#
# It starts a throwaway PostgreSQL server (a temporary directory, a free port
# on 127.0.0.1, pg_stat_statements preloaded), loads the Ignition demo
# database (examples/ignition: schema, about 1 million rows of seed data,
# 10-20 s), starts a small workload (examples/ignition/workload.sh: traffic,
# a leaked connection, lock waits), and runs the exporter in the foreground:
#
#     DATABASE_URL=postgres://postgres@127.0.0.1:PORT/ignition \
#       cargo run --release -- --config.file queries.yaml --web.listen-address 127.0.0.1:9432
#
# Then: curl -s http://127.0.0.1:9432/metrics
# Ctrl-C stops everything it started and removes the temporary directory.
#
# Environment:
#   PG_BIN            PostgreSQL bin directory (initdb, pg_ctl, postgres);
#                     default: `pg_config --bindir`, else the newest
#                     /usr/lib/postgresql/*/bin
#   DEMO_SEED_SCALE   seed size, 1 = 1M activity events (default 1; 0.02 is quick)
#   DEMO_LISTEN       exporter listen address (default 127.0.0.1:9432)
#   DEMO_NO_EXPORTER  1: do not run the exporter; keep the database and the
#                     workload running until Ctrl-C (to run another build or
#                     psql against it)
#
# As root, the server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ignition=$repo/examples/ignition
listen=${DEMO_LISTEN:-127.0.0.1:9432}
scale=${DEMO_SEED_SCALE:-1}

say() { printf 'demo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# --- PostgreSQL binaries ------------------------------------------------------

has_server() { [[ -x $1/initdb && -x $1/pg_ctl && -x $1/postgres ]]; }

if [[ -n ${PG_BIN:-} ]]; then
    has_server "$PG_BIN" || die "PG_BIN=$PG_BIN has no initdb, pg_ctl and postgres"
else
    if command -v pg_config >/dev/null 2>&1 && has_server "$(pg_config --bindir)"; then
        PG_BIN=$(pg_config --bindir)
    else
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        [[ -n $PG_BIN ]] && has_server "$PG_BIN" \
            || die "no PostgreSQL server binaries found: set PG_BIN (e.g. PG_BIN=\$(scripts/pg-binaries.sh 17))"
    fi
fi
# Some server-only builds ship no psql; any recent psql talks to any server.
if [[ -x $PG_BIN/psql ]]; then
    PSQL=$PG_BIN/psql
else
    PSQL=$(command -v psql) || die "no psql in $PG_BIN or PATH"
fi
export PSQL

# The server must not run as root: run its programs as `postgres` then.
as_server_user=()
if [[ $EUID -eq 0 ]]; then
    id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server"
    as_server_user=(runuser -u postgres --)
fi
server() { (cd / && "${as_server_user[@]}" "$@"); }

# --- Cleanup --------------------------------------------------------------------

tmp=
data=
workload_pid=
exporter_pid=
cleanup() {
    trap - EXIT INT TERM
    set +e
    if [[ -n $exporter_pid ]]; then
        # Its process group: cargo, the compiler jobs of a build under way,
        # or the exporter that cargo run became.
        kill -TERM -- "-$exporter_pid" 2>/dev/null
        for _ in $(seq 20); do
            kill -0 -- "-$exporter_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$exporter_pid" 2>/dev/null
        wait "$exporter_pid" 2>/dev/null
    fi
    if [[ -n $workload_pid ]]; then
        kill -TERM "$workload_pid" 2>/dev/null
        for _ in $(seq 10); do
            kill -0 "$workload_pid" 2>/dev/null || break
            sleep 0.5
        done
        # Still there: end its process group (it was started with setsid).
        kill -KILL -- "-$workload_pid" 2>/dev/null
        wait "$workload_pid" 2>/dev/null
    fi
    if [[ -n $data && -f $data/postmaster.pid ]]; then
        say "stopping PostgreSQL"
        server "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w >/dev/null 2>&1 \
            || server "$PG_BIN/pg_ctl" stop -D "$data" -m immediate -w >/dev/null 2>&1
    fi
    if [[ -n $tmp && -d $tmp ]]; then
        rm -rf -- "$tmp"
        say "removed $tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Start PostgreSQL -------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-demo.XXXXXX")
chmod 755 "$tmp"
[[ $EUID -eq 0 ]] && chown postgres "$tmp"
data=$tmp/data

say "PostgreSQL binaries: $PG_BIN ($("$PG_BIN/postgres" --version))"
say "initdb in $data"
server "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$tmp/initdb.log" 2>&1 \
    || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    candidate=$((20000 + RANDOM % 20000))
    port_in_use "$candidate" && continue
    if server "$PG_BIN/pg_ctl" start -D "$data" -l "$tmp/postgres.log" -w -t 60 -o "\
-c listen_addresses=127.0.0.1 -c port=$candidate -c unix_socket_directories=$tmp \
-c shared_preload_libraries=pg_stat_statements -c log_min_messages=warning" >/dev/null 2>&1; then
        port=$candidate
        break
    fi
    # Most likely someone took the port in between: try another.
    tail -n 5 "$tmp/postgres.log" >&2 || true
done
[[ -n $port ]] || die "PostgreSQL did not start (log: $tmp/postgres.log)"
say "PostgreSQL listening on 127.0.0.1:$port"

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/ignition"
admin_url="postgres://postgres@127.0.0.1:$port/postgres"
psql_to() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$1" "${@:2}"; }

# --- The Ignition database ----------------------------------------------------------

psql_to "$admin_url" -c 'CREATE DATABASE ignition'
say "loading examples/ignition/schema.sql and seed.sql (scale $scale)"
started=$SECONDS
psql_to "$DATABASE_URL" -f "$ignition/schema.sql"
PGOPTIONS="-c ignition.seed_scale=$scale" psql_to "$DATABASE_URL" -f "$ignition/seed.sql"
# Preloaded since the server started, so reset what the seed left in it.
psql_to "$DATABASE_URL" -c 'CREATE EXTENSION pg_stat_statements' -c 'SELECT pg_stat_statements_reset()' >/dev/null
say "loaded in $((SECONDS - started)) s"

# --- Workload -----------------------------------------------------------------------

setsid "$ignition/workload.sh" "$DATABASE_URL" 2>"$tmp/workload.log" &
workload_pid=$!
say "workload started (log: $tmp/workload.log)"

cat >&2 <<EOF

  Database:  $DATABASE_URL
             $PSQL '$DATABASE_URL'
EOF

if [[ ${DEMO_NO_EXPORTER:-0} == 1 ]]; then
    cat >&2 <<EOF
  Exporter:  not started (DEMO_NO_EXPORTER=1). To run one:
             DATABASE_URL='$DATABASE_URL' cargo run --release -- --config.file queries.yaml --web.listen-address $listen

  Ctrl-C stops the workload and PostgreSQL and removes $tmp.
EOF
    while :; do
        sleep 1 &
        wait $! || true
    done
fi

cat >&2 <<EOF
  Metrics:   curl -s http://$listen/metrics
             (after the build: a first \`cargo run --release\` compiles for a few minutes)

  Ctrl-C stops the exporter, the workload and PostgreSQL and removes $tmp.

EOF

cd "$repo"
# In the background, in a process group of its own, and waited for: a
# signal to this script (Ctrl-C, SIGTERM) interrupts the wait at once, and
# the EXIT trap stops the exporter, the workload and PostgreSQL, whichever
# way it ended.
setsid cargo run --release -- --config.file queries.yaml --web.listen-address "$listen" &
exporter_pid=$!
status=0
wait "$exporter_pid" || status=$?
exporter_pid=
say "the exporter exited with status $status"
exit "$status"

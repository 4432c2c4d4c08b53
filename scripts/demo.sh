#!/usr/bin/env bash
# demo.sh: see runbook-exporter at work on a live Ignition database, with the
# shipped alerts firing in a real Prometheus and Alertmanager, in one
# command. From the repository root:
#
#     scripts/demo.sh
#
# In order, each step in a temporary directory and on free ports of
# 127.0.0.1:
#   1. builds the exporter (cargo build --release; a first build takes a few
#      minutes, DEMO_PROFILE=dev is quicker and makes a slower binary);
#   2. starts a throwaway PostgreSQL (pg_stat_statements preloaded) and loads
#      the Ignition demo database (examples/ignition: schema, about 1 million
#      rows of seed data, 10-20 s);
#   3. writes a real `pg_dump --format=custom` into the watched backup
#      directory (the files: set ignition_backup), as the runbook's Backup
#      Operations do;
#   4. starts the workload (examples/ignition/workload.sh): traffic with
#      about 2 % errors, a leaked connection, short lock waits, deadlocks, a
#      4.5-minute lock stall after 30 s (LockWaits pages after about 4
#      minutes) and a burst of errors after 2 minutes (HighErrorRate pages
#      after about 8 minutes);
#   5. starts Prometheus with the shipped rules (alerts/*.yml), Alertmanager
#      with alerts/alertmanager.example.yml, and the alert sink its webhooks
#      point at (deploy/alert-sink/alert_sink.py on 127.0.0.1:9095 and 9096,
#      one line per notification in the sink's log); as root it installs the
#      Debian packages prometheus and prometheus-alertmanager when missing;
#   6. runs the exporter on DEMO_LISTEN and prints every URL and the next
#      commands to try.
#
# The demo's catalogue is queries.yaml with two changes, both printed in the
# banner: the backup directory is the demo's, and a connection counts as
# idle (pg_connections_idle_over_threshold, the leak alerts) after 2 minutes
# instead of 1 hour. The rules are the shipped files but for LeakedConnection's
# `for:` (3m instead of 1h, so that the leak ticket fires within ten minutes;
# also in the banner); the Alertmanager configuration is the shipped example.
#
# Ctrl-C (or SIGTERM) stops everything it started and removes the temporary
# directory; further Ctrl-Cs during that cleanup are ignored so that it
# always finishes. Started in the background (`scripts/demo.sh &`, where the
# shell ignores SIGINT for it), it re-executes itself with SIGINT restored,
# so `kill -INT` still stops it.
#
# Environment:
#   PG_BIN            PostgreSQL bin directory (initdb, postgres);
#                     default: `pg_config --bindir`, else the newest
#                     /usr/lib/postgresql/*/bin (scripts/lib/pg.sh)
#   DEMO_SEED_SCALE   seed size, 1 = 1M activity events (default 1; 0.02 is quick)
#   DEMO_LISTEN       exporter listen address (default 127.0.0.1:9432)
#   DEMO_PROFILE      cargo profile of the exporter: release (default) or dev
#   DEMO_EXPORTER     an exporter binary to run instead of building one (the
#                     integration test of the demo passes the suite's own)
#   DEMO_NO_EXPORTER  1: do not run the exporter, Prometheus or
#                     Alertmanager; keep the database and the workload
#                     running until Ctrl-C (to run another build or psql
#                     against it)
#
# As root, the server runs as the `postgres` user (PostgreSQL refuses root).
# The server is started and stopped by scripts/lib/pg.sh.
set -euo pipefail

# Started in the background by a non-interactive shell, SIGINT (and SIGQUIT)
# arrive ignored, and bash cannot trap a signal ignored on entry: start again
# with the default dispositions (bit 1 of SigIgn is SIGINT).
sig_ignored=$(awk '/^SigIgn:/ { print $2 }' /proc/$$/status 2>/dev/null || echo 0)
if (((16#${sig_ignored:-0} & 2) != 0)) && [[ -z ${DEMO_SIGNALS_RESET:-} ]]; then
    export DEMO_SIGNALS_RESET=1
    exec env --default-signal=INT,QUIT "$BASH" "$0" "$@"
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ignition=$repo/examples/ignition
listen=${DEMO_LISTEN:-127.0.0.1:9432}
scale=${DEMO_SEED_SCALE:-1}
profile=${DEMO_PROFILE:-release}
demo_idle='2 minutes'
demo_leak_for=3m   # LeakedConnection's for: in the demo's copy of the rules (shipped: 1h)

say() { printf 'demo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# --- PostgreSQL binaries ------------------------------------------------------

. "$repo/scripts/lib/pg.sh"
pg_find_bin || die "no PostgreSQL server binaries"
pg_find_psql || die "no psql"
export PSQL

# --- Cleanup --------------------------------------------------------------------

tmp=
groups=()   # process groups (their leaders' pids) to end, newest last
cleaning=0

# Ends the process group of leader $1 (TERM, then KILL after 10 s) and reaps it.
end_group() {
    local pid=$1
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq 20); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

cleanup() {
    # Once: further signals are ignored from here on, so that a second
    # Ctrl-C cannot interrupt the cleanup and leave processes or files; so is
    # SIGPIPE, so that a reader of our output that is gone (`| head`, a closed
    # pager) cannot end the script at its next message, before PostgreSQL stops.
    ((cleaning == 0)) || return 0
    cleaning=1
    trap '' INT TERM HUP QUIT PIPE
    trap - EXIT
    set +e
    local i
    for ((i = ${#groups[@]} - 1; i >= 0; i--)); do
        end_group "${groups[i]}"
    done
    if [[ -n $PG_PID ]]; then
        say "stopping PostgreSQL"
        pg_stop
    fi
    if [[ -n $tmp && -d $tmp ]]; then
        rm -rf -- "$tmp"
        say "removed $tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Runs "$@" in a process group of its own (setsid), in the background; its
# pid (the group's id) is in $started and in the groups cleanup ends.
start_group() {
    setsid "$@" &
    started=$!
    groups+=("$started")
}

# Waits for the group started last; a signal to this script interrupts the
# wait at once (the EXIT trap then ends the group).
wait_group() {
    local status=0
    wait "$1" || status=$?
    unset 'groups[${#groups[@]}-1]'
    return "$status"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-demo.XXXXXX")
cd "$repo"

# --- 1. Build -------------------------------------------------------------------

if [[ ${DEMO_NO_EXPORTER:-0} != 1 && -n ${DEMO_EXPORTER:-} ]]; then
    exporter_bin=$DEMO_EXPORTER
    [[ -x $exporter_bin ]] || die "DEMO_EXPORTER=$exporter_bin is not an executable"
elif [[ ${DEMO_NO_EXPORTER:-0} != 1 ]]; then
    say "building the exporter (cargo build --profile $profile; the first release build takes a few minutes)"
    start_group cargo build --profile "$profile" --bin runbook-exporter
    wait_group "$started" || die "cargo build failed"
    case $profile in dev) out=debug ;; *) out=$profile ;; esac
    exporter_bin=${CARGO_TARGET_DIR:-$repo/target}/$out/runbook-exporter
    [[ -x $exporter_bin ]] || die "no binary at $exporter_bin"
fi

# --- 2. PostgreSQL and the Ignition database -------------------------------------

say "PostgreSQL binaries: $PG_BIN ($("$PG_BIN/postgres" --version))"
say "initdb in $tmp/data"
pg_start "$tmp" -c shared_preload_libraries=pg_stat_statements -c log_min_messages=warning \
    || die "PostgreSQL did not start (log: $tmp/postgres.log)"
port=$PG_PORT
say "PostgreSQL listening on 127.0.0.1:$port"

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/ignition"
admin_url="postgres://postgres@127.0.0.1:$port/postgres"
psql_to() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$1" "${@:2}"; }

psql_to "$admin_url" -c 'CREATE DATABASE ignition'
say "loading examples/ignition/schema.sql and seed.sql (scale $scale)"
started_at=$SECONDS
psql_to "$DATABASE_URL" -f "$ignition/schema.sql"
PGOPTIONS="-c ignition.seed_scale=$scale" psql_to "$DATABASE_URL" -f "$ignition/seed.sql"
# Preloaded since the server started, so reset what the seed left in it.
psql_to "$DATABASE_URL" -c 'CREATE EXTENSION pg_stat_statements' -c 'SELECT pg_stat_statements_reset()' >/dev/null
say "loaded in $((SECONDS - started_at)) s"

# --- 3. A backup, as the runbook takes it -------------------------------------------

backups=$tmp/backups
mkdir -p "$backups"
backup_note="a real pg_dump in $backups"
pg_dump_bin=$PG_BIN/pg_dump
[[ -x $pg_dump_bin ]] || pg_dump_bin=$(command -v pg_dump || true)
if [[ -n $pg_dump_bin ]] \
    && "$pg_dump_bin" "$DATABASE_URL" --format=custom --file="$backups/backup-$(date +%Y%m%d-%H%M%S).dump" 2>"$tmp/pg_dump.log"; then
    say "backup written: $(ls "$backups")"
else
    backup_note="none: pg_dump failed or is missing ($(head -c 200 "$tmp/pg_dump.log" 2>/dev/null)); BackupTooOld will fire"
    say "no backup: $backup_note"
fi

# --- 4. Workload --------------------------------------------------------------------

start_group "$ignition/workload.sh" "$DATABASE_URL" 2>"$tmp/workload.log"
say "workload started (log: $tmp/workload.log)"

if [[ ${DEMO_NO_EXPORTER:-0} == 1 ]]; then
    cat >&2 <<EOF

  Database:  $DATABASE_URL
             $PSQL '$DATABASE_URL'
  Exporter:  not started (DEMO_NO_EXPORTER=1). To run one:
             DATABASE_URL='$DATABASE_URL' cargo run --release -- --config.file queries.yaml --web.listen-address $listen

  Ctrl-C stops the workload and PostgreSQL and removes $tmp.
EOF
    while :; do
        sleep 1 &
        wait $! || true
    done
fi

# --- 5. Prometheus, Alertmanager and the alert sink -----------------------------------

find_tool() { # NAME...: the first on PATH
    local n
    for n in "$@"; do
        command -v "$n" 2>/dev/null && return 0
    done
    return 1
}
prometheus_bin=$(find_tool prometheus || true)
alertmanager_bin=$(find_tool alertmanager prometheus-alertmanager || true)
if [[ -z $prometheus_bin || -z $alertmanager_bin ]] && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing prometheus and prometheus-alertmanager (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus prometheus-alertmanager >"$tmp/apt.log" 2>&1 \
        || say "apt-get failed (log: $tmp/apt.log)"
    # The packages start their own services on the default ports; the demo runs its own.
    prometheus_bin=$(find_tool prometheus || true)
    alertmanager_bin=$(find_tool alertmanager prometheus-alertmanager || true)
fi
python_bin=$(find_tool python3 || true)

prom_url=
am_url=
if [[ -n $prometheus_bin && -n $alertmanager_bin && -n $python_bin ]]; then
    for p in 9095 9096; do
        pg_port_in_use "$p" && die "port $p is taken: alerts/alertmanager.example.yml sends its webhooks there"
    done
    start_group "$python_bin" -u "$repo/deploy/alert-sink/alert_sink.py" >"$tmp/alert-sink.log" 2>&1

    am_port=$(pg_free_port)
    mkdir -p "$tmp/alertmanager"
    start_group "$alertmanager_bin" --config.file="$repo/alerts/alertmanager.example.yml" \
        --storage.path="$tmp/alertmanager" --web.listen-address="127.0.0.1:$am_port" \
        --cluster.listen-address= >"$tmp/alertmanager.log" 2>&1
    am_url=http://127.0.0.1:$am_port

    prom_port=$(pg_free_port)
    mkdir -p "$tmp/prometheus/rules"
    cp "$repo/alerts/runbook-exporter.records.yml" "$tmp/prometheus/rules/"
    # The leak ticket waits an hour of leaking (for: 1h) on top of the idle threshold; in the demo, where a
    # connection is idle after 2 minutes, it waits $demo_leak_for, so it fires within the ten minutes.
    "$python_bin" - "$repo/alerts/runbook-exporter.rules.yml" "$tmp/prometheus/rules/runbook-exporter.rules.yml" \
        "$demo_leak_for" <<'PY' || die "alerts/runbook-exporter.rules.yml changed: the demo's edit of LeakedConnection no longer applies"
import sys
src, dst, hold = sys.argv[1:]
text = open(src).read()
start = text.index("      - alert: LeakedConnection\n")
end = text.index("\n      - alert: ", start + 1) if "\n      - alert: " in text[start + 1:] else len(text)
block = text[start:end]
if block.count("        for: 1h\n") != 1:
    sys.exit("LeakedConnection has no single `for: 1h`")
open(dst, "w").write(text[:start] + block.replace("        for: 1h\n", f"        for: {hold}\n") + text[end:])
PY
    cat >"$tmp/prometheus/prometheus.yml" <<EOF
# The demo's Prometheus: the shipped rules (LeakedConnection's for: shortened
# to $demo_leak_for), and the exporter as job runbook-exporter (the job the
# rules name).
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - rules/runbook-exporter.records.yml
  - rules/runbook-exporter.rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
scrape_configs:
  - job_name: runbook-exporter
    static_configs:
      - targets: ['$listen']
EOF
    start_group "$prometheus_bin" --config.file="$tmp/prometheus/prometheus.yml" \
        --storage.tsdb.path="$tmp/prometheus/data" --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1
    prom_url=http://127.0.0.1:$prom_port
else
    say "Prometheus, Alertmanager or python3 not found: only the exporter runs (as root the demo installs them with apt-get)"
fi

# --- 6. The exporter -------------------------------------------------------------------

# The shipped catalogue, watching the demo's backups and with a 2-minute idle threshold.
sed -e "s|directory: /var/backups/ignition|directory: $backups|" \
    -e "s|state_change < now() - interval '1 hour'|state_change < now() - interval '$demo_idle'|" \
    "$repo/queries.yaml" >"$tmp/queries.yaml"
grep -q "directory: $backups" "$tmp/queries.yaml" && grep -q "interval '$demo_idle'" "$tmp/queries.yaml" \
    || die "queries.yaml changed: the demo's two edits no longer apply"

alerts_line="  Prometheus: not started"
if [[ -n $prom_url ]]; then
    alerts_line="  Prometheus:   $prom_url/alerts  (the shipped rules but for LeakedConnection's for:; firing alerts: $prom_url/api/v1/alerts)
  Alertmanager: $am_url  (alerts/alertmanager.example.yml)
  Alert sink:   tail -f $tmp/alert-sink.log  (pages and tickets as the webhooks receive them)"
fi
cat >&2 <<EOF

  Metrics:      http://$listen/metrics
  Landing page: http://$listen/
$alerts_line
  Database:     $DATABASE_URL
  Backups:      $backup_note

  Demo settings that differ from the shipped ones: connections count as idle
  (pg_connections_idle_over_threshold, the leak alerts) after $demo_idle, not
  1 hour, and LeakedConnection waits $demo_leak_for of that, not 1h; the backup
  directory is $backups.

  What to expect: LockWaits pages after about 4 minutes (a 4.5-minute lock
  stall), the LeakedConnection ticket after about 6 (the workload's leaked
  connection), HighErrorRate after about 8 (a burst of errors); Deadlocks
  tickets.

  Next commands to try:
    curl -s http://$listen/metrics | grep -E '^(pg_lock_max_wait|ignition_backup|pg_connections_idle)'
    curl -s ${prom_url:-http://PROMETHEUS}/api/v1/alerts | python3 -m json.tool
    $PSQL '$DATABASE_URL'     # then the Lock waits SQL of docs/diagnostics.md
    tail -f $tmp/workload.log

  Ctrl-C stops the exporter, Prometheus, Alertmanager, the sink, the workload
  and PostgreSQL, and removes $tmp.

EOF

start_group "$exporter_bin" --config.file "$tmp/queries.yaml" --web.listen-address "$listen"
status=0
wait_group "$started" || status=$?
say "the exporter exited with status $status"
exit "$status"

#!/usr/bin/env bash
# workload.sh [DATABASE_URL]
#
# A small, bounded workload that keeps the Ignition demo database alive, so
# that the exporter's connection, lock and application metrics move:
#
#   traffic  every 2 s: 5 log entries (about 1 in 50 an error, below
#            HighErrorRate's 5 %), 3 page
#            views, 5 touched session rows (dead rows for vacuum); every
#            10 s a completed focus session; every 30 s the runbook's
#            dashboard queries (they show up in pg_stat_statements)
#   leak     one connection that goes idle and stays open ("ignition-api
#            (leaked)"): pg_connection_max_idle_seconds keeps growing
#   locks    every 40 s one session takes a row lock and sits idle in
#            transaction for 20 s while another waits for the row
#            (pg_locks_waiting_backends, pg_locks_blocking_backends,
#            pg_lock_max_wait_seconds,
#            pg_connection_max_idle_in_transaction_seconds); in the first
#            round and every 5th after it two sessions deadlock
#            (pg_database_deadlocks_total)
#   stall    after 30 s and then every 20 minutes, one session holds a
#            row lock idle in transaction for 4.5 minutes while another
#            waits for it: pg_lock_max_wait_seconds passes 60 s and stays
#            there for over 2 minutes, so LockWaits pages
#   burst    after 2 minutes and then every hour, 600 error entries within
#            a minute ("payment provider timeout"): over 5 % of the
#            hour's entries, so HighErrorRate pages for most of an hour
#            (WORKLOAD_BURST=0 and WORKLOAD_STALL=0 leave them out)
#
# Connection: the argument, else $DATABASE_URL, else libpq's PG* variables.
# It runs for WORKLOAD_DURATION seconds (default 7200) and stops earlier on
# Ctrl-C or SIGTERM, ending every process it started (each part runs in its
# own session, ended as a process group). Needs psql in PATH (or PSQL=...).
set -uo pipefail

readonly DURATION=${WORKLOAD_DURATION:-7200}
readonly PSQL_BIN=${PSQL:-psql}

log() { printf 'workload: %s\n' "$*" >&2; }

# psql with the connection; errors are expected (the deadlock, a lock
# timeout), so they do not stop it, and its output is dropped.
run_psql() {
    if [[ -n $conn ]]; then
        "$PSQL_BIN" -X -q -v ON_ERROR_STOP=0 -d "$conn" "$@"
    else
        "$PSQL_BIN" -X -q -v ON_ERROR_STOP=0 "$@"
    fi
}

# True while the main workload process is alive: a part whose parent died
# (killed with SIGKILL) stops by itself.
parent_alive() { kill -0 "$parent" 2>/dev/null; }

nap() { # nap SECONDS: sleep, but return early if the parent is gone
    local i
    for ((i = 0; i < $1; i++)); do
        parent_alive || exit 0
        sleep 1
    done
}

part_traffic() {
    local n=0
    {
        echo "SET application_name = 'ignition-api';"
        while parent_alive; do
            n=$((n + 1))
            cat <<'SQL'
INSERT INTO application_logs (level, logger, message, request_id)
SELECT l.level, 'api',
       CASE l.level WHEN 'error' THEN 'unhandled exception in /api/sessions'
                    WHEN 'warn' THEN 'slow request'
                    ELSE 'request completed' END,
       gen_random_uuid()
FROM (SELECT CASE WHEN r < 0.02 THEN 'error' WHEN r < 0.14 THEN 'warn' ELSE 'info' END AS level
      FROM (SELECT random() AS r FROM generate_series(1, 5)) AS x) AS l;
INSERT INTO activity_events (user_id, event_type, properties)
SELECT id, 'page_view', '{"path": "/app/timer"}'
FROM users WHERE deleted_at IS NULL ORDER BY random() LIMIT 3;
UPDATE sessions SET last_seen_at = now()
WHERE id IN (SELECT id FROM sessions TABLESAMPLE SYSTEM (1) LIMIT 5);
SQL
            if ((n % 5 == 0)); then
                cat <<'SQL'
INSERT INTO focus_sessions (user_id, label, planned_minutes, started_at, completed, completed_at)
SELECT id, 'Deep work', 25, now() - interval '25 minutes', true, now()
FROM users WHERE deleted_at IS NULL ORDER BY random() LIMIT 1;
INSERT INTO activity_events (user_id, event_type, properties)
SELECT user_id, 'focus_completed', NULL FROM focus_sessions ORDER BY completed_at DESC NULLS LAST LIMIT 1;
SQL
            fi
            if ((n % 15 == 0)); then
                # The runbook's dashboard queries, as the app's admin page runs them.
                cat <<'SQL'
SELECT count(DISTINCT user_id) FROM activity_events WHERE created_at > NOW() - INTERVAL '7 days';
SELECT count(*) FROM focus_sessions WHERE completed = true AND completed_at > CURRENT_DATE;
SELECT count(*) FILTER (WHERE level = 'error') AS errors, count(*) AS total,
       round(100.0 * count(*) FILTER (WHERE level = 'error') / count(*), 2) AS error_pct
FROM application_logs WHERE created_at > NOW() - INTERVAL '1 hour';
SQL
            fi
            sleep 2
        done
    } | run_psql >/dev/null 2>&1
}

part_leak() {
    {
        echo "SET application_name = 'ignition-api (leaked)';"
        echo "SELECT count(*) FROM users WHERE deleted_at IS NULL;"
        while parent_alive; do sleep 2; done
    } | run_psql >/dev/null 2>&1
}

# lock_round EMAIL HOLD TIMEOUT HOLDER_APP: session HOLDER_APP locks the user
# row of EMAIL and forgets to commit for HOLD seconds, while the API waits
# for the same row (for up to TIMEOUT).
lock_round() {
    local holder
    {
        echo "SET application_name = '$4';"
        echo "BEGIN;"
        echo "UPDATE users SET updated_at = now() WHERE email = '$1';"
        sleep "$2"
        echo "COMMIT;"
    } | run_psql >/dev/null 2>&1 &
    holder=$!
    sleep 2
    run_psql -c "SET application_name = 'ignition-api'" \
             -c "SET lock_timeout = '$3'" \
             -c "UPDATE users SET last_login_at = now() WHERE email = '$1'" >/dev/null 2>&1
    wait "$holder"
}

part_locks() {
    local round=0
    nap 5
    while parent_alive; do
        round=$((round + 1))
        lock_round user4@example.com 20 60s ignition-worker
        if ((round % 5 == 1)); then
            # Two sessions update the same two rows in opposite order: the
            # deadlock detector cancels one of them after deadlock_timeout.
            {
                echo "BEGIN; UPDATE users SET updated_at = now() WHERE email = 'user2@example.com';"
                sleep 1
                echo "UPDATE users SET updated_at = now() WHERE email = 'user3@example.com'; COMMIT;"
            } | run_psql >/dev/null 2>&1 &
            {
                echo "BEGIN; UPDATE users SET updated_at = now() WHERE email = 'user3@example.com';"
                sleep 1
                echo "UPDATE users SET updated_at = now() WHERE email = 'user2@example.com'; COMMIT;"
            } | run_psql >/dev/null 2>&1
            wait
        fi
        nap 16
    done
}

part_stall() {
    nap 30
    while parent_alive; do
        lock_round user5@example.com 270 5min ignition-report-job
        nap 900
    done
}

part_burst() {
    local i
    nap 120
    while parent_alive; do
        for ((i = 0; i < 20; i++)); do
            parent_alive || exit 0
            run_psql -c "SET application_name = 'ignition-api'" -c "
INSERT INTO application_logs (level, logger, message, request_id)
SELECT 'error', 'payments', 'payment provider timeout', gen_random_uuid()
FROM generate_series(1, 30)" >/dev/null 2>&1
            sleep 3
        done
        nap 3540
    done
}

# A part: "workload.sh __part NAME CONN PARENT_PID", started by the main
# process below in a session of its own.
if [[ ${1:-} == __part ]]; then
    conn=$3
    parent=$4
    "part_$2"
    exit 0
fi

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

conn=${1:-${DATABASE_URL:-}}
command -v "$PSQL_BIN" >/dev/null 2>&1 || { log "psql not found (set PSQL=/path/to/psql)"; exit 1; }
if ! run_psql -v ON_ERROR_STOP=1 -c 'SELECT 1 FROM users LIMIT 1' >/dev/null; then
    log "cannot query the users table: load examples/ignition/schema.sql and seed.sql first"
    exit 1
fi

parts=()
stop() {
    trap - INT TERM EXIT
    local pid
    for pid in "${parts[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null
    done
    for pid in "${parts[@]}"; do
        wait "$pid" 2>/dev/null
    done
    log "stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
part_names=(traffic leak locks)
if [[ ${WORKLOAD_STALL:-1} != 0 ]]; then part_names+=(stall); fi
if [[ ${WORKLOAD_BURST:-1} != 0 ]]; then part_names+=(burst); fi
for part in "${part_names[@]}"; do
    # setsid: the part and everything it starts form one process group,
    # whose id is the part's pid, ended as a whole by stop().
    setsid bash "$self" __part "$part" "$conn" "$$" &
    parts+=("$!")
done
log "running for ${DURATION}s (parts: ${part_names[*]}; pids ${parts[*]}); Ctrl-C to stop"

# Sleep in short steps so that a signal is handled at once.
end=$((SECONDS + DURATION))
while ((SECONDS < end)); do
    sleep 1 &
    wait $! 2>/dev/null
done
log "duration reached"

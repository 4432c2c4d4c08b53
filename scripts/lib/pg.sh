# shellcheck shell=bash
# scripts/lib/pg.sh: a throwaway PostgreSQL server for scripts (sourced, not run).
#
#     . scripts/lib/pg.sh
#     pg_find_bin                  # PG_BIN, as the tests find it
#     pg_find_psql                 # PSQL: $PG_BIN/psql, else psql on PATH
#     pg_start "$dir" -c shared_preload_libraries=pg_stat_statements ...
#     psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" ...
#     pg_stop                      # also run on exit, see below
#     pg_free_port                 # prints a free port of 127.0.0.1 (for other servers)
#
# pg_find_bin takes PG_BIN when set, else `pg_config --bindir`, else the
# newest /usr/lib/postgresql/*/bin (the integration tests' order); the npm
# builds of scripts/pg-binaries.sh work too.
#
# pg_start DIR [postgres options...] runs initdb into DIR/data (trust
# authentication, user postgres, UTF8, C locale) and starts the server on a
# free port of 127.0.0.1 with its socket in DIR and its log in
# DIR/postgres.log; extra arguments go to postgres (-c name=value ...). It
# waits until the server accepts connections, tries another port if the
# chosen one was taken meanwhile, and sets PG_PORT, PG_DATA, PG_LOG and
# PG_PID (the postmaster). As root, initdb and postgres run as the postgres
# user through setpriv (PostgreSQL refuses to run as root), from /.
#
# pg_stop stops the server (fast shutdown; immediate after 30 s) and waits
# for it; it does nothing when no server runs. pg_start sets `trap pg_stop
# EXIT` unless the caller has an EXIT trap already: a caller with its own
# cleanup calls pg_stop from it.

PG_PORT=
PG_DATA=
PG_LOG=
PG_PID=

_pg_say() { printf 'pg.sh: %s\n' "$*" >&2; }

# The prefix that runs a PostgreSQL program as the server's user.
_pg_as_server=()
if [[ $EUID -eq 0 ]]; then _pg_as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi

pg_find_bin() {
    local dir
    if [[ -z ${PG_BIN:-} ]]; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n $dir && -x $dir/initdb ]]; then
            PG_BIN=$dir
        else
            PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        fi
    fi
    if [[ -z ${PG_BIN:-} || ! -x $PG_BIN/initdb || ! -x $PG_BIN/postgres ]]; then
        _pg_say "no PostgreSQL server binaries (initdb, postgres) in '${PG_BIN:-}': set PG_BIN, e.g. PG_BIN=\$(scripts/pg-binaries.sh 17)"
        return 1
    fi
}

pg_find_psql() {
    # Some server-only builds ship no psql; any recent psql talks to any server.
    if [[ -x $PG_BIN/psql ]]; then
        PSQL=$PG_BIN/psql
    else
        PSQL=$(command -v psql) || { _pg_say "no psql in $PG_BIN or on PATH"; return 1; }
    fi
}

# Whether something listens on 127.0.0.1:PORT.
pg_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints a port of 127.0.0.1 nothing listens on (from 20000-39999); fails after 50 tries.
pg_free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        pg_port_in_use "$p" || { echo "$p"; return 0; }
    done
    _pg_say "no free port found"
    return 1
}

pg_start() {
    local dir=$1 candidate attempt waited
    shift
    if [[ $EUID -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
        _pg_say "running as root but there is no 'postgres' user to run the server"
        return 1
    fi
    chmod 755 "$dir"
    if [[ $EUID -eq 0 ]]; then chown postgres "$dir"; fi
    PG_DATA=$dir/data
    PG_LOG=$dir/postgres.log
    if ! (cd / && exec "${_pg_as_server[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
        --locale=C) >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        _pg_say "initdb failed"
        return 1
    fi
    if [[ -z $(trap -p EXIT) ]]; then trap pg_stop EXIT; fi
    for attempt in 1 2 3 4 5; do
        candidate=$(pg_free_port) || return 1
        # A subshell that execs: $! is the postmaster.
        (cd / && exec "${_pg_as_server[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -p "$candidate" -k "$dir" \
            -c listen_addresses=127.0.0.1 "$@") >>"$PG_LOG" 2>&1 </dev/null &
        PG_PID=$!
        # The postmaster writes "ready" as the 8th line of postmaster.pid once it accepts connections.
        for waited in $(seq 1 600); do
            if [[ $(sed -n 8p "$PG_DATA/postmaster.pid" 2>/dev/null) == ready* ]]; then
                PG_PORT=$candidate
                return 0
            fi
            kill -0 "$PG_PID" 2>/dev/null || break
            sleep 0.1
        done
        # Most likely someone took the port in between (or the server is stuck): try another.
        pg_stop
        _pg_say "PostgreSQL did not start on port $candidate (attempt $attempt, after $((waited / 10)) s):"
        tail -n 5 "$PG_LOG" >&2 || true
    done
    _pg_say "PostgreSQL did not start (log: $PG_LOG)"
    return 1
}

pg_stop() {
    local pid=$PG_PID signal
    [[ -n $pid ]] || return 0
    PG_PID=
    for signal in INT QUIT; do
        kill -"$signal" "$pid" 2>/dev/null || break
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

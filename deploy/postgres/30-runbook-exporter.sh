#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d of the postgres image, after
# 10-schema.sql and 20-seed.sql have loaded the Ignition demo data into
# $POSTGRES_DB. It sets up what runbook-exporter needs, following the one
# role recipe in docs/operations.md#database-role (the password comes from
# the compose secret instead of psql's interactive \password):
#
#   * the pg_stat_statements extension (the library is preloaded through the
#     server's command line), emptied of what the seed left in it;
#   * the login role runbook_exporter, member of pg_monitor and nothing else,
#     plus SELECT on the six Ignition tables the ignition_* and migrations
#     queries of queries.yaml read (pg_monitor covers the statistics views,
#     not application tables).
#
# The role's password comes from the compose secret mounted at
# $RUNBOOK_EXPORTER_PASSWORD_FILE (default /run/secrets/runbook_exporter_db_password).
# It is handed to psql as a variable and quoted by psql (:'password'), so it
# never appears on a command line or in the server log.
#
# Executable, so the entrypoint runs it rather than sourcing it (no `set -u`
# here all the same: a sourced script's options would leak into the
# entrypoint's own).
set -eo pipefail

password_file=${RUNBOOK_EXPORTER_PASSWORD_FILE:-/run/secrets/runbook_exporter_db_password}
if [[ ! -r $password_file ]]; then
    echo "30-runbook-exporter.sh: cannot read the exporter's password file $password_file" >&2
    exit 1
fi
password=$(<"$password_file")
if [[ -z $password ]]; then
    echo "30-runbook-exporter.sh: $password_file is empty" >&2
    exit 1
fi

psql -v ON_ERROR_STOP=1 -X -q \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v password="$password" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DO $$ BEGIN PERFORM pg_stat_statements_reset(); END $$;

-- pg_monitor: pg_read_all_settings, pg_read_all_stats, pg_stat_scan_tables.
-- CONNECTION LIMIT: the exporter holds at most --database.max-connections
-- (default 2); the rest is room for a restart and for `runbook-exporter check`.
CREATE ROLE runbook_exporter LOGIN PASSWORD :'password' CONNECTION LIMIT 5 IN ROLE pg_monitor;

-- Backstops for sessions that do not set their own (the exporter sets
-- statement_timeout and lock_timeout per query). Neither is a privilege
-- boundary: the role could change them itself.
ALTER ROLE runbook_exporter SET statement_timeout = '30s';
ALTER ROLE runbook_exporter SET lock_timeout = '5s';

GRANT SELECT ON schema_migrations, activity_events, sessions, users, focus_sessions, application_logs
    TO runbook_exporter;
SQL

echo "30-runbook-exporter.sh: role runbook_exporter (pg_monitor) and pg_stat_statements ready in ${POSTGRES_DB:-postgres}"

-- Ignition demo database: the tables that the database runbook
-- (runbook-database-operations.md) names, as the application would have them
-- after migration 0015, with the indexes its queries need.
--
-- Plain SQL with no psql meta-commands, so any client can load it.
-- Loads on PostgreSQL 13 to 17 (gen_random_uuid() is built in from 13).
-- Load it into an empty database, then seed.sql (or seed-small.sql).

-- Accounts. Deleting an account is a soft delete (deleted_at); the runbook's
-- "Hard Delete Expired Accounts" removes rows deleted over 30 days ago.
CREATE TABLE users (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    time_zone     TEXT NOT NULL DEFAULT 'UTC',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ,
    deleted_at    TIMESTAMPTZ
);
-- Only a few rows are soft-deleted: a partial index keeps the purge cheap.
CREATE INDEX idx_users_deleted_at ON users (deleted_at) WHERE deleted_at IS NOT NULL;

-- Login sessions ("Purge Old Sessions": expired over 90 days ago).
CREATE TABLE sessions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    user_agent   TEXT,
    ip_address   INET,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);

-- Append-only event log, the biggest table ("Purge Old Activity Events":
-- older than 2 years; "Active users (7 days)" dashboard query).
-- Like most high-volume event logs it has no foreign key to users: a
-- per-row check would slow every insert, and events of a hard-deleted
-- account age out through the retention purge.
CREATE TABLE activity_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    UUID NOT NULL,
    event_type TEXT NOT NULL,
    properties JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_activity_events_created_at ON activity_events (created_at);
CREATE INDEX idx_activity_events_user_id_created_at ON activity_events (user_id, created_at);

-- Focus sessions, the app's core feature ("Focus sessions completed today").
CREATE TABLE focus_sessions (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label           TEXT,
    planned_minutes INTEGER NOT NULL CHECK (planned_minutes > 0),
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed       BOOLEAN NOT NULL DEFAULT false,
    completed_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (completed = (completed_at IS NOT NULL))
);
CREATE INDEX idx_focus_sessions_user_id_started_at ON focus_sessions (user_id, started_at);
CREATE INDEX idx_focus_sessions_completed_at ON focus_sessions (completed_at) WHERE completed;

-- Application log table ("Error rate (requires log table)").
CREATE TABLE application_logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    level      TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    logger     TEXT NOT NULL,
    message    TEXT NOT NULL,
    context    JSONB,
    request_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_application_logs_created_at ON application_logs (created_at);

-- Applied migrations ("Migration Operations"). Versions are text, 'NNNN'.
CREATE TABLE schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Migration 0015_add_user_preferences, as the runbook writes it.
CREATE TABLE IF NOT EXISTS user_preferences (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE(user_id, key)
);

CREATE INDEX idx_user_preferences_user_id ON user_preferences(user_id);

-- Every migration up to 0015 has been applied: 0001 three years ago, about
-- one every ten weeks since, 0015 a week ago.
INSERT INTO schema_migrations (version, applied_at)
SELECT lpad(v::text, 4, '0'),
       date_trunc('minute', now() - interval '1 day' * (7 + (15 - v) * 77))
FROM generate_series(1, 15) AS v;

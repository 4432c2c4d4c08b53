-- Ignition demo data: realistic volume and shape for the tables of
-- schema.sql, generated with generate_series and random().
--
-- Plain SQL with no psql meta-commands, so any client can run it; run it
-- once, after schema.sql, in one session.
--
-- Size: the custom setting ignition.seed_scale (default 1) multiplies every
-- row count. Scale 1 gives 1,000,000 activity events, 5,000 users, 50,000
-- sessions, 100,000 focus sessions and 200,000 log entries; seed-small.sql
-- runs this file at scale 0.02 (20,000 events). With other clients, set it
-- first in the same session:
--     SET ignition.seed_scale = '0.02';
--     PGOPTIONS='-c ignition.seed_scale=0.02' psql -f seed.sql ...
--
-- All times are relative to now(), so the dashboard numbers are never empty
-- whenever it is loaded:
--   * activity events span 3 years, more of them recent (about a quarter are
--     older than 2 years: the retention purge has a backlog; a few per cent
--     fall in the last 7 days);
--   * 2 % of users were soft-deleted over 30 days ago (purge backlog) and
--     2 % more within the last 25 days (not yet due);
--   * sessions were created over the last 200 days and last 30 days, so
--     those that expired over 90 days ago are a backlog;
--   * some focus sessions were completed between midnight and now (and some
--     in the last 10 minutes, which is "today" in any time zone unless it is
--     just past midnight there);
--   * application logs cover 30 days, with info, warn and error entries in
--     the last hour.
-- random() is seeded, so counts are the same from one load to the next
-- (UUIDs are not: gen_random_uuid() ignores the seed).

DO $$ BEGIN PERFORM setseed(0.42); END $$;

CREATE TEMP TABLE seed_params AS
SELECT s.scale,
       greatest(20,  round(5000    * s.scale))::int AS n_users,
       greatest(100, round(1000000 * s.scale))::int AS n_events,
       greatest(50,  round(50000   * s.scale))::int AS n_sessions,
       greatest(100, round(100000  * s.scale))::int AS n_focus,
       greatest(100, round(200000  * s.scale))::int AS n_logs
FROM (SELECT coalesce(nullif(current_setting('ignition.seed_scale', true), ''), '1')::numeric AS scale) AS s;

-- Users signed up evenly over 3 years (user 1 first).
-- Every 50th user deleted the account over 30 days ago, the next one recently.
INSERT INTO users (email, display_name, time_zone, created_at, updated_at, deleted_at)
SELECT format('user%s@example.com', i),
       format('User %s', i),
       (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney'])[1 + i % 5],
       c.created_at,
       c.created_at,
       CASE
           WHEN i % 50 = 0 AND c.created_at < now() - interval '32 days'
               THEN c.created_at + (now() - interval '31 days' - c.created_at) * (0.5 + 0.5 * random())
           WHEN i % 50 = 1
               THEN greatest(c.created_at, now() - random() * interval '25 days')
       END
FROM seed_params AS p,
     generate_series(1, p.n_users) AS i,
     LATERAL (SELECT now() - interval '1095 days' * (1 - (i - 1)::float8 / p.n_users) AS created_at) AS c;

-- Users by sign-up order, to pick them by number below.
CREATE TEMP TABLE seed_users AS
SELECT row_number() OVER (ORDER BY created_at, email)::int AS idx, id, created_at
FROM users;
ALTER TABLE seed_users ADD PRIMARY KEY (idx);
ANALYZE seed_users;

-- Activity events. The age in units of 3 years is f = random()^1.5, so the
-- table grows over time. An event belongs to one of the users who had signed
-- up by then, and 2 users in 5 (including every deleted one) have gone
-- dormant: nothing from them in the last 60 days. Rows go in in time order,
-- as an append-only log's would.
INSERT INTO activity_events (user_id, event_type, properties, created_at)
SELECT u.id, e.event_type, e.properties, e.created_at
FROM (
    SELECT r.created_at,
           CASE
               WHEN r.created_at > now() - interval '60 days' AND k.pick % 5 IN (0, 1)
                   THEN CASE WHEN k.pick + 2 <= r.n_users THEN k.pick + 2 ELSE k.pick - 3 END
               ELSE k.pick
           END AS idx,
           t.event_type,
           t.properties
    FROM (
        SELECT p.n_users,
               now() - interval '1095 days' * power(random(), 1.5) AS created_at,
               random() AS r_user,
               random() AS r_type
        FROM seed_params AS p, generate_series(1, p.n_events) AS g
    ) AS r,
    LATERAL (SELECT 1 + floor(r.r_user * greatest(1, r.n_users * extract(epoch FROM r.created_at - (now() - interval '1095 days')) / extract(epoch FROM interval '1095 days')))::int AS pick) AS k,
    LATERAL (
        SELECT CASE
                   WHEN r.r_type < 0.50 THEN 'page_view'
                   WHEN r.r_type < 0.65 THEN 'focus_started'
                   WHEN r.r_type < 0.77 THEN 'focus_completed'
                   WHEN r.r_type < 0.87 THEN 'login'
                   WHEN r.r_type < 0.95 THEN 'task_completed'
                   WHEN r.r_type < 0.98 THEN 'settings_changed'
                   ELSE 'logout'
               END AS event_type,
               CASE
                   WHEN r.r_type < 0.30 THEN '{"path": "/app/timer"}'::jsonb
                   WHEN r.r_type < 0.50 THEN '{"path": "/app/stats"}'::jsonb
                   WHEN r.r_type < 0.65 THEN '{"planned_minutes": 25}'::jsonb
                   WHEN r.r_type < 0.87 THEN NULL
                   WHEN r.r_type < 0.95 THEN '{"source": "web"}'::jsonb
                   ELSE NULL
               END AS properties
    ) AS t
) AS e
JOIN seed_users AS u USING (idx)
ORDER BY e.created_at;

-- Sessions: created over the last 200 days (not before the user signed up),
-- valid for 30 days.
INSERT INTO sessions (user_id, token_hash, user_agent, ip_address, created_at, last_seen_at, expires_at)
SELECT u.id,
       md5(s.g::text || ':' || random()::text),
       (ARRAY['Mozilla/5.0 (Macintosh)', 'Mozilla/5.0 (Windows NT 10.0)', 'Ignition/3.2 (iOS)', 'Ignition/3.1 (Android)'])[1 + s.g % 4],
       ('192.0.2.' || (1 + s.g % 250))::inet,
       c.created_at,
       least(now(), c.created_at + random() * interval '30 days'),
       c.created_at + interval '30 days'
FROM (
    SELECT g, 1 + floor(random() * p.n_users)::int AS idx, random() AS r_age
    FROM seed_params AS p, generate_series(1, p.n_sessions) AS g
) AS s
JOIN seed_users AS u USING (idx),
LATERAL (SELECT greatest(u.created_at, now() - interval '200 days' * s.r_age) AS created_at) AS c;

-- Focus sessions over the last year; 80 % of those that could have ended by
-- now were completed.
INSERT INTO focus_sessions (user_id, label, planned_minutes, started_at, completed, completed_at, created_at)
SELECT u.id,
       (ARRAY['Deep work', 'Reading', 'Email', NULL])[1 + f.g % 4],
       f.planned,
       f.started_at,
       f.done,
       CASE WHEN f.done THEN f.started_at + f.planned * interval '1 minute' END,
       f.started_at
FROM (
    SELECT x.*,
           x.started_at + x.planned * interval '1 minute' < now() AND x.r_done < 0.8 AS done
    FROM (
        SELECT g,
               1 + floor(random() * p.n_users)::int AS idx,
               (ARRAY[25, 25, 50, 90])[1 + floor(random() * 4)::int] AS planned,
               now() - interval '365 days' * power(random(), 1.3) AS started_at,
               random() AS r_done
        FROM seed_params AS p, generate_series(1, p.n_focus) AS g
    ) AS x
) AS f
JOIN seed_users AS u USING (idx);

-- Focus sessions completed today: half of them between midnight and now,
-- half in the last 10 minutes.
INSERT INTO focus_sessions (user_id, label, planned_minutes, started_at, completed, completed_at, created_at)
SELECT u.id, 'Deep work', 25, t.completed_at - interval '25 minutes', true, t.completed_at, t.completed_at - interval '25 minutes'
FROM (
    SELECT 1 + floor(random() * p.n_users)::int AS idx,
           CASE WHEN g % 2 = 0
                THEN current_date::timestamptz + random() * (now() - current_date::timestamptz)
                ELSE now() - random() * interval '10 minutes'
           END AS completed_at
    FROM seed_params AS p, generate_series(1, greatest(6, p.n_focus / 250)) AS g
) AS t
JOIN seed_users AS u USING (idx);

-- Preferences (migration 0015) for one user in three.
INSERT INTO user_preferences (user_id, key, value)
SELECT u.id, k.key, k.value
FROM seed_users AS u
CROSS JOIN (VALUES ('theme', '"dark"'::jsonb),
                   ('focus_minutes', '50'::jsonb),
                   ('notifications', '{"email": false, "push": true}'::jsonb)) AS k(key, value)
WHERE u.idx % 3 = 0;

-- Application logs over the last 30 days: 85 % info, 10 % warn, 5 % error.
INSERT INTO application_logs (level, logger, message, context, request_id, created_at)
SELECT l.level,
       (ARRAY['api', 'worker', 'auth', 'billing'])[1 + l.g % 4],
       CASE l.level
           WHEN 'error' THEN (ARRAY['payment provider timeout', 'failed to send reminder email', 'unhandled exception in /api/sessions'])[1 + l.g % 3]
           WHEN 'warn'  THEN (ARRAY['slow request', 'retrying webhook delivery', 'rate limit close for client'])[1 + l.g % 3]
           ELSE (ARRAY['request completed', 'focus session saved', 'user signed in', 'daily digest sent'])[1 + l.g % 4]
       END,
       CASE WHEN l.level = 'error' THEN jsonb_build_object('attempt', 1 + l.g % 3) END,
       gen_random_uuid(),
       l.created_at
FROM (
    SELECT g,
           CASE WHEN r < 0.05 THEN 'error' WHEN r < 0.15 THEN 'warn' ELSE 'info' END AS level,
           created_at
    FROM (
        SELECT g, random() AS r, now() - random() * interval '30 days' AS created_at
        FROM seed_params AS p, generate_series(1, p.n_logs) AS g
    ) AS x
    UNION ALL
    -- The last hour, always with some errors and warnings (1 entry in 20 is
    -- an error, 2 are warnings).
    SELECT g,
           CASE WHEN g % 20 = 1 THEN 'error' WHEN g % 20 IN (2, 3) THEN 'warn' ELSE 'info' END,
           now() - random() * interval '55 minutes'
    FROM seed_params AS p, generate_series(1, greatest(12, p.n_logs / 330)) AS g
) AS l
ORDER BY l.created_at;

DROP TABLE seed_users;
DROP TABLE seed_params;

ANALYZE;

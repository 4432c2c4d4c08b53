//! The shipped catalogue (`queries.yaml`) against the Ignition demo database on a real
//! PostgreSQL (issues 3 and 7): every metric of the contract is there with the value a
//! direct query gives, nothing fails, and what cannot run is skipped with a reason.
//! Also generates `docs/metrics.md`, `docs/versions/<major>.txt` and the README's
//! "Supported PostgreSQL versions" block; `UPDATE_DOCS=1 cargo test --test it catalogue::`
//! rewrites them, otherwise the tests fail when they are out of date.
//!
//! Runs against whatever PostgreSQL the harness picks (`PG_BIN`); `scripts/test.sh`
//! runs it on every major of `scripts/pg-versions.conf`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::cluster::connect_as;
use crate::support::data::{read, root};
use crate::support::generated::{check_file, check_section};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::library::{Catalogue, Query, Role, file_set_metrics, shipped};
use crate::support::versions;
use crate::support::{Cluster, Db, Exporter, Metrics, eventually};

pub(crate) fn shipped_text() -> String {
    read("queries.yaml")
}

pub(crate) fn server_major(c: &mut postgres::Client) -> u32 {
    let num: i32 = c.query_one("SELECT current_setting('server_version_num')::int", &[]).unwrap().get(0);
    num as u32 / 10000
}

/// The metrics of the contract (issue 3, `tests/data/contract.txt`): name as exposed and label names.
fn contract() -> Vec<(String, Vec<String>)> {
    read("tests/data/contract.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace().map(str::to_owned);
            (words.next().unwrap(), words.collect())
        })
        .collect()
}

// --- reading values ------------------------------------------------------------------

/// Series keyed by their label values (in the order asked for).
type Series = BTreeMap<Vec<String>, f64>;

/// Every sample of `name`, keyed by the values of `labels`; panics if a sample has other labels.
fn exported(m: &Metrics, name: &str, labels: &[&str]) -> Series {
    let mut out = Series::new();
    for (n, l, v) in &m.samples {
        if n != name {
            continue;
        }
        let names: BTreeSet<&str> = l.keys().map(String::as_str).collect();
        assert_eq!(names, labels.iter().copied().collect::<BTreeSet<_>>(), "labels of {name}");
        let key: Vec<String> = labels.iter().map(|k| l[*k].clone()).collect();
        assert!(out.insert(key.clone(), *v).is_none(), "{name}{key:?} twice");
    }
    out
}

/// Rows of `sql`: every column but the last is a label (text), the last the value (float8, may be NULL).
/// Rows with a NULL value are left out, as the exporter gives them no sample.
fn direct(c: &mut postgres::Client, sql: &str) -> Series {
    let mut out = Series::new();
    for row in c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        let n = row.len();
        let key: Vec<String> = (0..n - 1).map(|i| row.get::<_, Option<String>>(i).unwrap_or_default()).collect();
        if let Some(v) = row.get::<_, Option<f64>>(n - 1) {
            assert!(out.insert(key.clone(), v).is_none(), "{sql}: {key:?} twice");
        }
    }
    out
}

pub(crate) fn scalar(c: &mut postgres::Client, sql: &str) -> f64 {
    c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0)
}

/// The exporter's series are exactly the direct query's (same keys, same values).
fn assert_exact(name: &str, want: &Series, got: &Series) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "series of {name}");
    for (k, w) in want {
        assert!(close(got[k], *w, 1e-9), "{name}{k:?}: exporter {} != direct {w}", got[k]);
    }
}

/// The exporter's series are those of the direct query read before and after the scrape,
/// each value between the two readings.
fn assert_between(name: &str, before: &Series, after: &Series, got: &Series) {
    let keys: BTreeSet<_> = got.keys().collect();
    assert!(
        keys == before.keys().collect() || keys == after.keys().collect(),
        "series of {name}: exporter {keys:?}, direct before {:?}, after {:?}",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, v) in got {
        let (b, a) = (before.get(k).copied().unwrap_or(0.0), after.get(k).copied().unwrap_or(0.0));
        let (lo, hi) = (b.min(a), b.max(a));
        let slack = 1e-9 * hi.abs().max(1.0);
        assert!(lo - slack <= *v && *v <= hi + slack, "{name}{k:?}: exporter {v} outside [{lo}, {hi}]");
    }
}

/// Self-metrics: no query failed, every query that is not skipped served a successful
/// result; returns the skipped queries with their reasons.
pub(crate) fn assert_no_errors(cat: &Catalogue, m: &Metrics, exporter: &Exporter) -> BTreeMap<String, String> {
    for (n, l, v) in &m.samples {
        if n == "runbook_exporter_query_errors_total" {
            assert_eq!(*v, 0.0, "query error {l:?}; exporter log:\n{}", exporter.logs());
        }
    }
    let mut skipped = BTreeMap::new();
    for (n, l, v) in &m.samples {
        if n == "runbook_exporter_query_skipped" && *v == 1.0 {
            assert!(!l["reason"].is_empty(), "skipped without a reason: {l:?}");
            skipped.insert(l["query"].clone(), l["reason"].clone());
        }
    }
    for q in &cat.queries {
        if skipped.contains_key(&q.name) {
            assert!(m.find("runbook_exporter_query_success", &[("query", &q.name)]).is_empty(), "{}", q.name);
        } else {
            assert_eq!(
                m.get("runbook_exporter_query_success", &[("query", &q.name)]),
                1.0,
                "query {}; exporter log:\n{}",
                q.name,
                exporter.logs()
            );
        }
    }
    skipped
}

/// The label text of a statement as the catalogue documents it: literals, dollar-quoted strings and whatever
/// follows PASSWORD redacted, whitespace runs collapsed to one space, the first 200 characters kept. Written
/// from PostgreSQL's regular-expression rules (a greedy expression takes the longest match at the leftmost
/// position), independently of the catalogue's SQL.
fn label_text(query: &str) -> String {
    let text = replace_all(query, "$$***$$", dollar_quoted);
    let text = replace_all(&text, "'***'", string_literal);
    let text = replace_all(&text, "PASSWORD ***", password_phrase);
    let mut out = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if is_space(ch) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(ch);
            in_space = false;
        }
    }
    out.chars().take(200).collect()
}

/// `[[:space:]]` of PostgreSQL's regular expressions.
fn is_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Replaces every match `next_match` finds (the leftmost one in a text: start and end offsets) with `with`.
fn replace_all(text: &str, with: &str, next_match: impl Fn(&str) -> Option<(usize, usize)>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some((start, end)) = next_match(rest) {
        out.push_str(&rest[..start]);
        out.push_str(with);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The leftmost dollar-quoted string (`$tag$ ... $tag$`), the longest one at its start.
fn dollar_quoted(text: &str) -> Option<(usize, usize)> {
    text.match_indices('$').find_map(|(i, _)| {
        let after = &text[i + 1..];
        let tag_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if !after[tag_len..].starts_with('$') {
            return None;
        }
        let delimiter = &text[i..i + tag_len + 2];
        let body = i + delimiter.len();
        text[body..].rfind(delimiter).map(|end| (i, body + end + delimiter.len()))
    })
}

/// The leftmost string literal (`'...'` with `''` inside), the longest one at its start: its closing quote is
/// the last one reached through `''` pairs.
fn string_literal(text: &str) -> Option<(usize, usize)> {
    text.match_indices('\'').find_map(|(i, _)| {
        let body = &text[i + 1..];
        let (mut end, mut k) = (None, 0);
        while let Some(q) = body[k..].find('\'') {
            end = Some(k + q);
            if !body[k + q + 1..].starts_with('\'') {
                break;
            }
            k += q + 2;
        }
        end.map(|e| (i, i + e + 2))
    })
}

/// The leftmost word `password` (any case) with the white space after it and the next word.
fn password_phrase(text: &str) -> Option<(usize, usize)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.to_ascii_lowercase().match_indices("password").find_map(|(i, word)| {
        let after = &text[i + word.len()..];
        let starts_word = !text[..i].chars().next_back().is_some_and(is_word);
        let ends_word = !after.chars().next().is_some_and(is_word);
        let spaces = after.len() - after.trim_start_matches(is_space).len();
        let next = after[spaces..].find(is_space).unwrap_or(after.len() - spaces);
        (starts_word && ends_word && spaces > 0 && next > 0).then_some((i, i + word.len() + spaces + next))
    })
}

// --- direct readings -----------------------------------------------------------------

/// Everything the contract test reads directly, once before and once after the scrape.
struct Reading {
    connections: Series,
    max_connections: f64,
    database_size: Series,
    database_counters: BTreeMap<&'static str, Series>,
    activity: BTreeMap<&'static str, Series>,
    tables: BTreeMap<&'static str, Series>,
    indexes: BTreeMap<&'static str, Series>,
    statements: BTreeMap<Vec<String>, (f64, f64, String)>,
    migration_version: f64,
    migrations_applied: f64,
    retention: Series,
    active_users: f64,
    focus_today: f64,
    logs_1h: Series,
    in_recovery: f64,
    start_time: f64,
}

const DATABASE_COUNTERS: &[(&str, &str)] = &[
    ("pg_database_xact_commit_total", "xact_commit"),
    ("pg_database_xact_rollback_total", "xact_rollback"),
    ("pg_database_blks_read_total", "blks_read"),
    ("pg_database_blks_hit_total", "blks_hit"),
    ("pg_database_temp_bytes_total", "temp_bytes"),
    ("pg_database_deadlocks_total", "deadlocks"),
];

const TABLE_COLUMNS: &[(&str, &str)] = &[
    ("pg_table_live_rows", "n_live_tup"),
    ("pg_table_dead_rows", "n_dead_tup"),
    ("pg_table_total_size_bytes", "pg_total_relation_size(relid)"),
    ("pg_table_last_vacuum_timestamp_seconds", "extract(epoch FROM greatest(last_vacuum, last_autovacuum))"),
    ("pg_table_last_analyze_timestamp_seconds", "extract(epoch FROM greatest(last_analyze, last_autoanalyze))"),
    ("pg_table_vacuum_total", "vacuum_count"),
    ("pg_table_autovacuum_total", "autovacuum_count"),
];

const INDEX_COLUMNS: &[(&str, &str)] = &[
    ("pg_index_scans_total", "idx_scan"),
    ("pg_index_tuples_read_total", "idx_tup_read"),
    ("pg_index_tuples_fetched_total", "idx_tup_fetch"),
    ("pg_index_size_bytes", "pg_relation_size(indexrelid)"),
];

/// Per-database activity, written independently of the shipped SQL: seconds since the
/// oldest state change / transaction start of client backends, lock waiters and blockers.
const ACTIVITY: &[(&str, &str)] = &[
    (
        "pg_connection_max_idle_seconds",
        "coalesce(extract(epoch FROM now() - min(a.state_change) FILTER (WHERE a.state = 'idle')), 0)",
    ),
    (
        "pg_connection_max_idle_in_transaction_seconds",
        "coalesce(extract(epoch FROM now() - min(a.state_change) FILTER (WHERE a.state LIKE 'idle in transaction%')), 0)",
    ),
    ("pg_transaction_max_age_seconds", "coalesce(extract(epoch FROM now() - min(a.xact_start)), 0)"),
    ("pg_locks_waiting_backends", "count(*) FILTER (WHERE a.wait_event_type = 'Lock')"),
    (
        "pg_locks_blocking_backends",
        "(SELECT count(DISTINCT b) FROM pg_stat_activity AS w, unnest(pg_blocking_pids(w.pid)) AS b WHERE w.datid = d.oid)",
    ),
    (
        "pg_lock_max_wait_seconds",
        "coalesce(extract(epoch FROM now() - min(a.query_start) FILTER (WHERE a.wait_event_type = 'Lock')), 0)",
    ),
];

/// The direct reading of every `(metric, expression)` of `list`, each through the SQL `sql(expression)`.
fn direct_each(
    c: &mut postgres::Client,
    list: &[(&'static str, &str)],
    sql: impl Fn(&str) -> String,
) -> BTreeMap<&'static str, Series> {
    list.iter().map(|(metric, expr)| (*metric, direct(c, &sql(expr)))).collect()
}

fn reading(c: &mut postgres::Client) -> Reading {
    let database_counters = direct_each(c, DATABASE_COUNTERS, |column| {
        format!(
            "SELECT d.datname::text, s.{column}::float8 FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid"
        )
    });
    let activity = direct_each(c, ACTIVITY, |expr| {
        format!(
            "SELECT d.datname::text, ({expr})::float8
             FROM pg_database d
             LEFT JOIN pg_stat_activity a ON a.datid = d.oid AND a.backend_type = 'client backend'
             WHERE d.datallowconn GROUP BY d.oid, d.datname"
        )
    });
    let tables = direct_each(c, TABLE_COLUMNS, |expr| {
        format!("SELECT schemaname::text, relname::text, ({expr})::float8 FROM pg_stat_user_tables")
    });
    let indexes = direct_each(c, INDEX_COLUMNS, |expr| {
        format!(
            "SELECT schemaname::text, relname::text, indexrelname::text, ({expr})::float8 FROM pg_stat_user_indexes"
        )
    });
    let mut statements = BTreeMap::new();
    for row in c
        .query(
            "SELECT s.queryid::text, coalesce(d.datname::text, ''), coalesce(r.rolname::text, ''),
                    sum(s.calls)::float8, (sum(s.total_exec_time) / 1000)::float8, min(s.query)
             FROM pg_stat_statements s
             LEFT JOIN pg_database d ON d.oid = s.dbid
             LEFT JOIN pg_roles r ON r.oid = s.userid
             WHERE s.queryid IS NOT NULL AND r.rolname IS DISTINCT FROM $1
             GROUP BY 1, 2, 3",
            &[&MONITOR],
        )
        .unwrap()
    {
        statements.insert(vec![row.get(0), row.get(1), row.get(2)], (row.get(3), row.get(4), row.get(5)));
    }
    let mut logs_1h = direct(
        c,
        "SELECT level, count(*)::float8 FROM application_logs WHERE created_at > now() - interval '1 hour' GROUP BY level",
    );
    for level in ["info", "warn", "error"] {
        logs_1h.entry(vec![level.to_owned()]).or_insert(0.0);
    }
    Reading {
        connections: direct(
            c,
            "SELECT d.datname::text, s.state, count(a.pid)::float8
             FROM pg_database d
             CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)')) s(state)
             LEFT JOIN pg_stat_activity a ON a.datid = d.oid AND a.state = s.state AND a.backend_type = 'client backend'
             WHERE d.datallowconn GROUP BY 1, 2",
        ),
        max_connections: scalar(c, "SELECT current_setting('max_connections')::float8"),
        database_size: direct(c, "SELECT datname::text, pg_database_size(oid)::float8 FROM pg_database"),
        database_counters,
        activity,
        tables,
        indexes,
        statements,
        migration_version: scalar(c, "SELECT max(version::bigint)::float8 FROM schema_migrations WHERE version ~ '^[0-9]+$'"),
        migrations_applied: scalar(c, "SELECT count(*)::float8 FROM schema_migrations"),
        retention: direct(
            c,
            "SELECT 'activity_events', count(*)::float8 FROM activity_events WHERE created_at < now() - interval '2 years'
             UNION ALL SELECT 'sessions', count(*)::float8 FROM sessions WHERE expires_at < now() - interval '90 days'
             UNION ALL SELECT 'users', count(*)::float8 FROM users WHERE deleted_at < now() - interval '30 days'",
        ),
        active_users: scalar(
            c,
            "SELECT count(DISTINCT user_id)::float8 FROM activity_events WHERE created_at > now() - interval '7 days'",
        ),
        focus_today: scalar(
            c,
            "SELECT count(*)::float8 FROM focus_sessions WHERE completed AND completed_at > current_date",
        ),
        logs_1h,
        in_recovery: scalar(c, "SELECT pg_is_in_recovery()::int::float8"),
        start_time: scalar(c, "SELECT extract(epoch FROM pg_postmaster_start_time())::float8"),
    }
}

/// Statistics settle: two readings a moment apart agree on everything the catalogue reads
/// exactly (PostgreSQL 13 and 14 send statistics to a collector asynchronously).
fn wait_for_settled_statistics(c: &mut postgres::Client) {
    let snapshot = |c: &mut postgres::Client| {
        let t = direct(
            c,
            "SELECT relname::text, format('%s/%s/%s/%s/%s', n_live_tup, n_dead_tup, vacuum_count, analyze_count, seq_scan),
                    n_live_tup::float8 FROM pg_stat_user_tables",
        );
        let i = direct(c, "SELECT indexrelname::text, idx_scan::float8 FROM pg_stat_user_indexes");
        (t, i)
    };
    let mut last = snapshot(c);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(700));
        let now = snapshot(c);
        if now == last {
            return;
        }
        last = now;
    }
    panic!("statistics did not settle");
}

// --- the contract ------------------------------------------------------------------------

/// The exporter's own role in the contract test (`pg_monitor` and SELECT on the Ignition tables).
const MONITOR: &str = "rbx_contract";
const MONITOR_PASSWORD: &str = "Contract-Monitor-pw";

#[test]
fn every_contract_metric_matches_a_direct_query_on_the_ignition_database() {
    // Autovacuum off: row estimates, vacuum counts and sizes stay put while we compare.
    let db = Db::on(Cluster::start_with(&["autovacuum=off"]), "contract");
    load_ignition(&db, small_seed());
    let mut c = db.client();
    // Some of everything: dead rows, a manual vacuum, a slow statement.
    c.batch_execute("UPDATE user_preferences SET updated_at = now() WHERE key = 'theme'").unwrap();
    c.batch_execute("VACUUM schema_migrations").unwrap();
    c.batch_execute("ANALYZE focus_sessions").unwrap();
    // Rows just inside and just outside every time window of the Ignition queries, so that
    // a window off by a little shows as a wrong number.
    c.batch_execute(
        "INSERT INTO users (email, display_name, deleted_at) VALUES
           ('edge-in@example.com', 'Edge in', NULL), ('edge-out@example.com', 'Edge out', NULL),
           ('deleted-29d@example.com', 'Deleted 29 days ago', now() - interval '29 days'),
           ('deleted-31d@example.com', 'Deleted 31 days ago', now() - interval '31 days');
         INSERT INTO activity_events (user_id, event_type, created_at)
           SELECT id, 'login', now() - interval '6 days 23 hours' FROM users WHERE email = 'edge-in@example.com'
           UNION ALL SELECT id, 'login', now() - interval '7 days 1 hour' FROM users WHERE email = 'edge-out@example.com'
           UNION ALL SELECT id, 'login', now() - interval '2 years' + interval '1 day' FROM users WHERE email = 'edge-in@example.com'
           UNION ALL SELECT id, 'login', now() - interval '2 years' - interval '1 day' FROM users WHERE email = 'edge-in@example.com';
         INSERT INTO sessions (user_id, token_hash, expires_at)
           SELECT id, 'edge-89d', now() - interval '89 days' FROM users WHERE email = 'edge-in@example.com'
           UNION ALL SELECT id, 'edge-91d', now() - interval '91 days' FROM users WHERE email = 'edge-in@example.com';
         INSERT INTO focus_sessions (user_id, planned_minutes, started_at, completed, completed_at)
           SELECT id, 25, current_date - interval '1 hour', true, current_date - interval '1 second'
           FROM users WHERE email = 'edge-in@example.com'
           UNION ALL SELECT id, 25, now() - interval '25 minutes', false, NULL FROM users WHERE email = 'edge-in@example.com';
         INSERT INTO application_logs (level, logger, message, created_at) VALUES
           ('debug', 'test', 'in the last hour', now() - interval '59 minutes'),
           ('error', 'test', 'just over an hour ago', now() - interval '61 minutes');
         INSERT INTO schema_migrations (version) VALUES ('0009a'), ('0015_hotfix');
         ANALYZE",
    )
    .unwrap();
    for _ in 0..2 {
        c.batch_execute("SELECT pg_sleep(0.3)").unwrap();
    }
    // Three idle connections and one idle in a transaction.
    let mut idle: Vec<_> = (0..3).map(|_| connect_as(&db.url, "contract-idle")).collect();
    for s in &mut idle {
        s.batch_execute("SELECT 1").unwrap();
    }
    let mut in_tx = connect_as(&db.url, "contract-in-tx");
    in_tx.batch_execute("BEGIN; SELECT 1").unwrap();
    // The exporter connects as a pg_monitor role of its own, as the README advises: its statements are then
    // left out of the top 10, which would otherwise change between the two direct readings.
    c.batch_execute(&format!(
        "CREATE ROLE {MONITOR} LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MONITOR}"
    ))
    .unwrap();
    let monitor_url = format!("postgres://{MONITOR}:{MONITOR_PASSWORD}@127.0.0.1:{}/{}", db.port(), db.name);
    std::thread::sleep(Duration::from_millis(200));
    wait_for_settled_statistics(&mut c);

    let cat = shipped();
    let before = reading(&mut c);
    let exporter = Exporter::with(&shipped_text()).db(&monitor_url).start();
    let m = exporter.metrics();
    std::thread::sleep(Duration::from_millis(1200)); // lets the exporter's backends flush their statistics
    let after = reading(&mut c);

    let skipped = assert_no_errors(&cat, &m, &exporter);
    let major = server_major(&mut c);
    assert_eq!(skipped, expected_skips_on_a_full_primary(&cat, major), "skipped on the Ignition database");
    for (name, labels) in contract() {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let got = exported(&m, &name, &labels);
        assert!(!got.is_empty() || name == "pg_connections_idle_over_threshold", "{name} missing");
    }
    let test_db = db.name.as_str();
    let one = |name: &str| exported(&m, name, &[])[&Vec::new()];

    assert_eq!(one("pg_up"), 1.0);
    assert_eq!(one("pg_settings_max_connections"), before.max_connections);
    assert_eq!(one("pg_in_recovery"), before.in_recovery);
    assert!(close(one("pg_postmaster_start_time_seconds"), before.start_time, 1e-12));

    // Connections: ours are known exactly (4 idle, 1 idle in transaction). The exporter's own
    // (1 or 2) are active, idle, or briefly idle in transaction between its BEGIN and its query.
    let conns = exported(&m, "pg_connections", &["datname", "state"]);
    let state = |s: &str| conns[&vec![test_db.to_owned(), s.to_owned()]];
    assert_eq!(state("idle in transaction (aborted)"), 0.0);
    assert!((1.0..=2.0).contains(&state("idle in transaction")), "{conns:?}");
    assert!((4.0..=5.0).contains(&state("idle")), "{conns:?}");
    assert!((1.0..=2.0).contains(&state("active")), "{conns:?}");
    let total = state("idle") + state("active") + state("idle in transaction");
    assert!((6.0..=7.0).contains(&total), "{conns:?}");
    let others = |s: &Series| s.iter().filter(|(k, _)| k[0] != test_db).map(|(k, v)| (k.clone(), *v)).collect();
    assert_between("pg_connections", &others(&before.connections), &others(&after.connections), &others(&conns));

    // Sizes: the databases within 2 %, tables and indexes exactly (nothing writes).
    let sizes = exported(&m, "pg_database_size_bytes", &["datname"]);
    assert_eq!(sizes.keys().collect::<Vec<_>>(), before.database_size.keys().collect::<Vec<_>>());
    for (k, v) in &before.database_size {
        assert!(close(sizes[k], *v, 0.02), "pg_database_size_bytes{k:?}: exporter {} direct {v}", sizes[k]);
    }

    for (name, _) in DATABASE_COUNTERS {
        let got = exported(&m, name, &["datname"]);
        assert_between(name, &before.database_counters[name], &after.database_counters[name], &got);
    }
    assert!(exported(&m, "pg_database_xact_commit_total", &["datname"])[&vec![test_db.to_owned()]] > 0.0);

    for (name, _) in TABLE_COLUMNS {
        let got = exported(&m, name, &["schemaname", "relname"]);
        assert_exact(name, &before.tables[name], &got);
        assert_exact(name, &after.tables[name], &got);
    }
    let table =
        |name: &str, rel: &str| exported(&m, name, &["schemaname", "relname"])[&vec!["public".into(), rel.into()]];
    assert!(table("pg_table_live_rows", "activity_events") > 10_000.0);
    assert!(table("pg_table_dead_rows", "user_preferences") > 0.0);
    assert_eq!(table("pg_table_vacuum_total", "schema_migrations"), 1.0);
    assert!(table("pg_table_last_vacuum_timestamp_seconds", "schema_migrations") > before.start_time);
    assert!(table("pg_table_last_analyze_timestamp_seconds", "focus_sessions") > before.start_time);

    for (name, _) in INDEX_COLUMNS {
        let got = exported(&m, name, &["schemaname", "relname", "indexrelname"]);
        if *name == "pg_index_size_bytes" {
            assert_exact(name, &before.indexes[name], &got);
        } else {
            assert_between(name, &before.indexes[name], &after.indexes[name], &got);
        }
    }

    // Activity: our idle and idle-in-transaction sessions are the oldest, and nothing waits.
    for (name, _) in ACTIVITY {
        let got = exported(&m, name, &["datname"]);
        assert_between(name, &before.activity[name], &after.activity[name], &got);
    }
    let per_db = |name: &str| exported(&m, name, &["datname"])[&vec![test_db.to_owned()]];
    assert!(per_db("pg_connection_max_idle_seconds") > 0.2);
    assert!(per_db("pg_connection_max_idle_in_transaction_seconds") > 0.2);
    assert!(per_db("pg_transaction_max_age_seconds") >= per_db("pg_connection_max_idle_in_transaction_seconds"));
    assert_eq!(per_db("pg_locks_waiting_backends"), 0.0);
    assert_eq!(per_db("pg_locks_blocking_backends"), 0.0);
    assert_eq!(per_db("pg_lock_max_wait_seconds"), 0.0);
    // The runbook's one-hour threshold: none of ours is that old.
    assert!(exported(&m, "pg_connections_idle_over_threshold", &["datname", "usename", "application_name"]).is_empty());

    // pg_stat_statements: the 10 slowest by mean, counters between the two readings.
    let calls = exported(&m, "pg_stat_statements_calls_total", &["queryid", "datname", "usename"]);
    let exec = exported(&m, "pg_stat_statements_exec_seconds_total", &["queryid", "datname", "usename"]);
    let mean = exported(&m, "pg_stat_statements_mean_exec_seconds", &["queryid", "datname", "usename"]);
    let info = exported(&m, "pg_stat_statements_query_info", &["queryid", "query"]);
    assert!(before.statements.len() >= 10, "{:?}", before.statements);
    assert_eq!(calls.len(), 10);
    assert_eq!(exec.keys().collect::<Vec<_>>(), calls.keys().collect::<Vec<_>>());
    assert_eq!(mean.keys().collect::<Vec<_>>(), calls.keys().collect::<Vec<_>>());
    let field = |r: &Reading, k: &Vec<String>, f: fn(&(f64, f64, String)) -> f64| r.statements.get(k).map_or(0.0, f);
    for (k, n) in &calls {
        let (lo, hi) = (field(&before, k, |s| s.0), field(&after, k, |s| s.0));
        assert!(lo <= *n && *n <= hi, "calls {k:?}: {n} outside [{lo}, {hi}]");
        let (lo, hi) = (field(&before, k, |s| s.1), field(&after, k, |s| s.1));
        assert!(
            lo * (1.0 - 1e-9) <= exec[k] && exec[k] <= hi * (1.0 + 1e-9),
            "exec {k:?}: {} outside [{lo}, {hi}]",
            exec[k]
        );
        assert!(close(mean[k], exec[k] / n, 1e-9), "mean {k:?}: {} vs {} / {n}", mean[k], exec[k]);
    }
    // The top 10: a statement that did not run during the scrape and is slower on average
    // than one that is exported must be exported too.
    let slowest_left_out = before
        .statements
        .iter()
        .filter(|(k, b)| after.statements.get(*k).is_some_and(|a| a.0 == b.0 && a.1 == b.1))
        .filter(|(k, _)| !calls.contains_key(*k))
        .map(|(k, b)| (b.1 / b.0, k))
        .max_by(|x, y| x.0.total_cmp(&y.0));
    let fastest_exported = mean.values().copied().fold(f64::INFINITY, f64::min);
    if let Some((m_out, k)) = slowest_left_out {
        assert!(m_out <= fastest_exported * (1.0 + 1e-9), "{k:?} (mean {m_out}) left out of the top 10: {mean:?}");
    }
    let sleep = before
        .statements
        .iter()
        .find(|(k, s)| k[1] == test_db && s.2.contains("pg_sleep"))
        .unwrap_or_else(|| panic!("no pg_sleep statement in {:?}", before.statements));
    assert_eq!(calls[sleep.0], 2.0, "the slow statement is in the top 10");
    assert!(close(exec[sleep.0], sleep.1.1, 1e-9));
    assert!(mean[sleep.0] >= 0.3);
    // One query_info per queryid, its text redacted, collapsed and cut as documented.
    let ids: BTreeSet<&String> = calls.keys().map(|k| &k[0]).collect();
    assert_eq!(info.keys().map(|k| &k[0]).collect::<BTreeSet<_>>(), ids);
    for (k, v) in &info {
        assert_eq!(*v, 1.0);
        assert!(k[1].chars().count() <= 200 && !k[1].contains(['\n', '\t']) && !k[1].contains("  "), "{k:?}");
        let texts: Vec<String> =
            after.statements.iter().filter(|(key, _)| key[0] == k[0]).map(|(_, s)| label_text(&s.2)).collect();
        assert!(texts.contains(&k[1]), "query_info {k:?} not among {texts:?}");
    }
    assert_eq!(info[&vec![sleep.0[0].clone(), "SELECT pg_sleep($1)".to_owned()]], 1.0);

    // The Ignition numbers: exact (the windows are relative to now(), so a row may cross
    // a boundary between the readings; the exporter's value is then between them).
    let between = |name: &str, b: f64, a: f64| {
        let v = one(name);
        assert!(b.min(a) <= v && v <= b.max(a), "{name}: exporter {v}, direct {b} before, {a} after");
    };
    between("ignition_schema_migration_version", before.migration_version, after.migration_version);
    assert_eq!(one("ignition_schema_migration_version"), 15.0);
    between("ignition_schema_migrations_applied", before.migrations_applied, after.migrations_applied);
    assert_eq!(one("ignition_schema_migrations_applied"), 17.0);
    between("ignition_active_users_7d", before.active_users, after.active_users);
    assert!(one("ignition_active_users_7d") > 0.0);
    between("ignition_focus_sessions_completed_today", before.focus_today, after.focus_today);
    assert!(one("ignition_focus_sessions_completed_today") > 0.0);
    let backlog = exported(&m, "ignition_retention_backlog_rows", &["table"]);
    assert_between("ignition_retention_backlog_rows", &before.retention, &after.retention, &backlog);
    assert!(backlog.values().all(|v| *v > 0.0), "the seed leaves a backlog in every table: {backlog:?}");
    let logs = exported(&m, "ignition_application_log_entries_1h", &["level"]);
    assert_between("ignition_application_log_entries_1h", &before.logs_1h, &after.logs_1h, &logs);
    assert!(logs[&vec!["error".to_owned()]] > 0.0);

    // A second scrape serves the TTL'd queries from the cache, unchanged.
    let again = exporter.metrics();
    for q in ["ignition_active_users", "ignition_retention_backlog", "pg_stat_statements"] {
        assert_eq!(again.get("runbook_exporter_query_executions_total", &[("query", q)]), 1.0, "{q}");
        assert_eq!(again.get("runbook_exporter_query_cache_hits_total", &[("query", q)]), 1.0, "{q}");
    }
    assert_eq!(exported(&again, "ignition_active_users_7d", &[]), exported(&m, "ignition_active_users_7d", &[]));
    assert_eq!(exported(&again, "ignition_retention_backlog_rows", &["table"]), backlog);
    assert_eq!(exported(&again, "pg_stat_statements_calls_total", &["queryid", "datname", "usename"]), calls);
    assert_eq!(again.get("runbook_exporter_query_executions_total", &[("query", "tables")]), 2.0);
    drop((idle, in_tx));
}

// --- leaks, locks, skipping ------------------------------------------------------------

/// A catalogue with the shipped query `name` alone, its SQL passed through `edit`.
fn single_query(name: &str, edit: impl Fn(&str) -> String) -> String {
    let cat = shipped();
    let q = cat.query(name);
    query_yaml(&cat, q, &edit(&q.sql))
}

fn query_yaml(cat: &Catalogue, q: &Query, sql: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let mut y = format!("queries:\n  {}:\n    help: {}\n    ttl: 0s\n    sql: |\n", q.name, quote(&q.help));
    for line in sql.lines() {
        let _ = writeln!(y, "      {line}");
    }
    y.push_str("    metrics:\n");
    for metric in &q.metrics {
        let f = &cat.families[metric.family];
        let kind = if f.counter { "counter" } else { "gauge" };
        let _ = writeln!(
            y,
            "      - name: {}\n        type: {kind}\n        help: {}\n        value: {}\n        labels: [{}]",
            f.name,
            quote(&f.help),
            metric.value_column,
            metric.label_columns.join(", ")
        );
    }
    y
}

#[test]
fn a_connection_idle_past_the_threshold_is_counted_with_its_application() {
    let db = Db::new("leak");
    // The shipped SQL with a 2 second threshold instead of the runbook's hour.
    let catalogue = single_query("idle_connections", |sql| {
        assert_eq!(sql.matches("interval '1 hour'").count(), 1, "threshold not found in {sql}");
        sql.replace("interval '1 hour'", "interval '2 seconds'")
    });
    let exporter = Exporter::with(&catalogue).db(&db.url).start();
    let labels = [("datname", db.name.as_str()), ("usename", "postgres"), ("application_name", "leaky-worker")];
    let mut leaked = connect_as(&db.url, "leaky-worker");
    leaked.batch_execute("SELECT 1").unwrap();
    // Not yet over the threshold.
    assert!(exporter.metrics().find("pg_connections_idle_over_threshold", &labels).is_empty());
    std::thread::sleep(Duration::from_millis(2500));
    let m = exporter.metrics();
    assert_eq!(m.get("pg_connections_idle_over_threshold", &labels), 1.0);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "idle_connections")]), 1.0);
    // A second leaked connection of the same application adds to the same series.
    let mut second = connect_as(&db.url, "leaky-worker");
    second.batch_execute("SELECT 1").unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        exporter.metrics().find("pg_connections_idle_over_threshold", &labels) == vec![2.0]
    }));
    // Closed: no longer counted.
    drop(second);
    assert!(eventually(Duration::from_secs(10), || {
        exporter.metrics().find("pg_connections_idle_over_threshold", &labels) == vec![1.0]
    }));
    // Busy again: the idle time starts over, and with nothing over the threshold the series is gone.
    leaked.batch_execute("SELECT 1").unwrap();
    let m = exporter.metrics();
    assert!(m.find("pg_connections_idle_over_threshold", &labels).is_empty(), "{:?}", m.samples);
    drop(leaked);
}

#[test]
fn a_blocked_update_shows_as_waiting_blocking_and_wait_time() {
    let db = Db::new("locks");
    let mut holder = db.client();
    holder
        .batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 100)")
        .unwrap();
    let exporter = Exporter::with(&single_query("activity", str::to_owned)).db(&db.url).start();
    let this_db = [("datname", db.name.as_str())];
    let m = exporter.metrics();
    assert_eq!(m.get("pg_locks_waiting_backends", &this_db), 0.0);
    assert_eq!(m.get("pg_locks_blocking_backends", &this_db), 0.0);
    assert_eq!(m.get("pg_lock_max_wait_seconds", &this_db), 0.0);

    holder.batch_execute("BEGIN; SELECT * FROM accounts WHERE id = 1 FOR UPDATE").unwrap();
    let mut waiter = connect_as(&db.url, "lock-waiter");
    let blocked = std::thread::spawn(move || {
        waiter.batch_execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1").unwrap();
    });
    let mut watch = db.client();
    assert!(eventually(Duration::from_secs(10), || {
        scalar(&mut watch, "SELECT count(*)::float8 FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 1.0
    }));
    std::thread::sleep(Duration::from_millis(300));
    let m = exporter.metrics();
    assert_eq!(m.get("pg_locks_waiting_backends", &this_db), 1.0);
    assert_eq!(m.get("pg_locks_blocking_backends", &this_db), 1.0);
    let wait = m.get("pg_lock_max_wait_seconds", &this_db);
    assert!((0.3..60.0).contains(&wait), "{wait}");
    // Other databases see nothing of it.
    assert_eq!(m.get("pg_locks_waiting_backends", &[("datname", "postgres")]), 0.0);
    assert!(m.get("pg_connection_max_idle_in_transaction_seconds", &this_db) >= 0.3);

    holder.batch_execute("COMMIT").unwrap();
    blocked.join().unwrap();
    let m = exporter.metrics();
    assert_eq!(m.get("pg_locks_waiting_backends", &this_db), 0.0);
    assert_eq!(m.get("pg_locks_blocking_backends", &this_db), 0.0);
    assert_eq!(m.get("pg_lock_max_wait_seconds", &this_db), 0.0);
    assert_eq!(scalar(&mut holder, "SELECT balance::float8 FROM accounts"), 101.0);

    // Two sessions queued behind one table lock: two waiting, one blocking.
    holder.batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE").unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = connect_as(&db.url, "lock-reader");
            std::thread::spawn(move || reader.batch_execute("SELECT count(*) FROM accounts").unwrap())
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || {
        scalar(&mut watch, "SELECT count(*)::float8 FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 2.0
    }));
    let m = exporter.metrics();
    assert_eq!(m.get("pg_locks_waiting_backends", &this_db), 2.0);
    assert_eq!(m.get("pg_locks_blocking_backends", &this_db), 1.0);
    assert!(m.get("pg_lock_max_wait_seconds", &this_db) > 0.0);
    holder.batch_execute("COMMIT").unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(exporter.metrics().get("pg_locks_waiting_backends", &this_db), 0.0);
}

/// Queries that need something the database may not have (an extension, a table).
fn optional_queries(cat: &Catalogue) -> BTreeSet<String> {
    cat.queries
        .iter()
        .filter(|q| !q.requires.extensions.is_empty() || !q.requires.tables.is_empty())
        .map(|q| q.name.clone())
        .collect()
}

/// The exporter's reasons for skipping a query limited to the other role.
const PRIMARY_SKIP: &str = "server is a primary";
const REPLICA_SKIP: &str = "server is a replica";

/// The queries the exporter must skip on a server of `major` (a standby when `in_recovery`), with its reason
/// text, worked out from each query's `requires:` and `role:`. `missing` gives the reason for what the database
/// itself lacks (an extension, a table), checked between the version and the role as the exporter does.
pub(crate) fn expected_skips(
    cat: &Catalogue,
    major: u32,
    in_recovery: bool,
    missing: impl Fn(&Query) -> Option<String>,
) -> BTreeMap<String, String> {
    let reason = |q: &Query| {
        let r = &q.requires;
        if let Some(min) = r.min_version.filter(|min| major < *min) {
            return Some(format!("server version {major} < {min}"));
        }
        if let Some(max) = r.max_version.filter(|max| major > *max) {
            return Some(format!("server version {major} > {max}"));
        }
        missing(q).or(match (q.role, in_recovery) {
            (Some(Role::Primary), true) => Some(REPLICA_SKIP.to_owned()),
            (Some(Role::Replica), false) => Some(PRIMARY_SKIP.to_owned()),
            _ => None,
        })
    };
    cat.queries.iter().filter_map(|q| reason(q).map(|why| (q.name.clone(), why))).collect()
}

/// Skips expected on a primary of `major` that has every extension, table and library the catalogue names.
fn expected_skips_on_a_full_primary(cat: &Catalogue, major: u32) -> BTreeMap<String, String> {
    expected_skips(cat, major, false, |_| None)
}

#[test]
fn on_an_empty_database_without_pg_stat_statements_the_optional_queries_are_skipped() {
    let db = Db::new("bare");
    let mut c = db.client();
    c.batch_execute("DROP EXTENSION pg_stat_statements").unwrap();
    let major = server_major(&mut c);
    let cat = shipped();
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    for _ in 0..2 {
        let m = exporter.metrics();
        let skipped = assert_no_errors(&cat, &m, &exporter);
        // No extension, none of the Ignition tables: the first missing one gives the reason.
        let missing = |q: &Query| {
            let extension = q.requires.extensions.first().map(|e| e.split_whitespace().next().unwrap_or(e));
            let table = q.requires.tables.first();
            extension.map(|e| format!("extension {e} not installed")).or(table.map(|t| format!("table {t} not found")))
        };
        assert_eq!(skipped, expected_skips(&cat, major, false, missing));
        assert!(optional_queries(&cat).iter().all(|q| skipped.contains_key(q)), "{skipped:?}");
        for q in [
            "pg_stat_statements",
            "migrations",
            "ignition_retention_backlog",
            "ignition_active_users",
            "ignition_focus_sessions",
            "ignition_application_logs",
        ] {
            assert!(skipped.contains_key(q), "{q} not skipped: {skipped:?}");
        }
        assert_eq!(skipped["pg_stat_statements"], "extension pg_stat_statements not installed");
        assert_eq!(skipped["migrations"], "table schema_migrations not found");
        assert_eq!(skipped["ignition_focus_sessions"], "table focus_sessions not found");
        assert!(!m.has("pg_stat_statements_calls_total") && !m.has("ignition_active_users_7d"));
        // What needs nothing optional still works.
        assert_eq!(m.get("pg_up", &[]), 1.0);
        assert!(m.has("pg_connections") && m.has("pg_database_size_bytes") && m.has("pg_locks_waiting_backends"));
    }
}

#[test]
fn pg_stat_statements_installed_but_not_preloaded_is_skipped_with_a_reason() {
    // CREATE EXTENSION works without the library; reading the view would fail.
    let db = Db::on(Cluster::start_with(&["shared_preload_libraries="]), "no_preload");
    let cat = shipped();
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let m = exporter.metrics();
    let skipped = assert_no_errors(&cat, &m, &exporter);
    assert_eq!(
        skipped.get("pg_stat_statements").map(String::as_str),
        Some("library pg_stat_statements not loaded (add it to shared_preload_libraries)"),
        "{skipped:?}"
    );
    assert!(m.find("runbook_exporter_query_success", &[("query", "pg_stat_statements")]).is_empty());
    assert!(!m.has("pg_stat_statements_calls_total"));
}

#[test]
fn an_old_pg_stat_statements_extension_version_is_skipped_not_failed() {
    // A database pg_upgrade'd from 12 keeps extension version 1.7 (total_time, no
    // total_exec_time) until ALTER EXTENSION ... UPDATE, whatever the server version.
    let db = Db::new("old_pgss");
    let mut c = db.client();
    c.batch_execute("DROP EXTENSION pg_stat_statements; CREATE EXTENSION pg_stat_statements VERSION '1.7'").unwrap();
    let cat = shipped();
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let m = exporter.metrics();
    let skipped = assert_no_errors(&cat, &m, &exporter);
    assert!(skipped.get("pg_stat_statements").is_some_and(|r| r.contains("1.7")), "{skipped:?}");
    // After the update it runs.
    c.batch_execute("ALTER EXTENSION pg_stat_statements UPDATE").unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        exporter.metrics().find("runbook_exporter_query_success", &[("query", "pg_stat_statements")]) == vec![1.0]
    }));
    assert!(exporter.metrics().has("pg_stat_statements_calls_total"));
}

// --- generated documentation -------------------------------------------------------------

fn ttl(d: Duration) -> String {
    if d.is_zero() { "every scrape".to_owned() } else { humantime::format_duration(d).to_string() }
}

fn requirements(q: &Query) -> String {
    let r = &q.requires;
    let mut parts = Vec::new();
    if let Some(v) = r.min_version {
        parts.push(format!("PostgreSQL ≥ {v}"));
    }
    if let Some(v) = r.max_version {
        parts.push(format!("PostgreSQL ≤ {v}"));
    }
    for e in &r.extensions {
        parts.push(format!("extension `{e}`"));
    }
    for l in &r.libraries {
        parts.push(format!("library `{l}` in `shared_preload_libraries`"));
    }
    if !r.tables.is_empty() {
        let word = if r.tables.len() == 1 { "table" } else { "tables" };
        parts.push(format!("{word} {}", r.tables.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")));
    }
    match q.role {
        Some(Role::Primary) => parts.push("primary only".to_owned()),
        Some(Role::Replica) => parts.push("standby only".to_owned()),
        None => {}
    }
    parts.join("; ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn metrics_doc(cat: &Catalogue) -> String {
    let mut d = String::new();
    d.push_str("# Metrics\n\n");
    d.push_str(
        "<!-- Generated from queries.yaml by `UPDATE_DOCS=1 cargo test --test it catalogue::`; do not edit. -->\n\n",
    );
    d.push_str(
        "Every metric family of the shipped catalogue, [`queries.yaml`](../queries.yaml), in catalogue order, then the metrics of its `files:` sets.\n\
         Counters are exposed with `_total`.\n\
         TTL is how long a query's result is served again before the query runs anew.\n\
         A query whose requirements are not met is skipped (`runbook_exporter_query_skipped{query,reason}`) and its metrics are absent.\n\
         The exporter's own metrics (`pg_up`, `runbook_exporter_*`) are listed in the [README](../README.md#exporter-metrics).\n\n",
    );
    d.push_str("| metric | type | labels | query | TTL | help |\n|---|---|---|---|---|---|\n");
    for f in &cat.families {
        let (name, kind) = if f.counter { (format!("{}_total", f.name), "counter") } else { (f.name.clone(), "gauge") };
        // In the order of the first query's columns (Family::label_names is sorted).
        let (q, i) = f.sources[0];
        let metric = &cat.queries[q].metrics[i];
        let names = metric.label_columns.iter().chain(&metric.const_label_names);
        let labels = names.map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        let queries: Vec<&Query> = f.sources.iter().map(|(q, _)| &cat.queries[*q]).collect();
        let names = queries.iter().map(|q| format!("`{}`", q.name)).collect::<Vec<_>>().join(", ");
        let ttls =
            queries.iter().map(|q| ttl(q.ttl)).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ");
        let _ = writeln!(d, "| `{name}` | {kind} | {labels} | {names} | {ttls} | {} |", cell(&f.help));
    }
    // The `files:` sets' metrics, after the queries' (every one a gauge without labels).
    for m in file_set_metrics(&root().join("queries.yaml")) {
        let _ = writeln!(d, "| `{}` | gauge |  | `files:` `{}` | {} | {} |", m.name, m.set, ttl(m.ttl), cell(&m.help));
    }
    d.push_str("\n## Queries\n\n| query | TTL | timeout | requires | help |\n|---|---|---|---|---|\n");
    for q in &cat.queries {
        let _ = writeln!(
            d,
            "| `{}` | {} | {} | {} | {} |",
            q.name,
            ttl(q.ttl),
            humantime::format_duration(q.timeout),
            cell(&requirements(q)),
            cell(&q.help)
        );
    }
    d
}

#[test]
fn docs_metrics_md_lists_every_metric_of_the_catalogue() {
    let cat = shipped();
    let doc = metrics_doc(&cat);
    for (name, _) in contract().iter().filter(|(n, _)| n != "pg_up") {
        assert!(doc.contains(&format!("| `{name}` |")), "{name} not in docs/metrics.md");
    }
    check_file(&root().join("docs/metrics.md"), &doc);
}

// --- supported versions ----------------------------------------------------------------------

/// What one major gives on the Ignition database with pg_stat_statements: the skipped
/// queries with their reasons and the contract metrics that are absent.
fn version_report(major: u32, skipped: &BTreeMap<String, String>, absent: &[String]) -> String {
    let mut r = format!(
        "# PostgreSQL {major}: the shipped queries.yaml against the Ignition demo database with pg_stat_statements.\n\
         # Written by `UPDATE_DOCS=1 cargo test --test it catalogue::` run on PostgreSQL {major} (PG_BIN=$(scripts/pg-binaries.sh {major}));\n\
         # checked by the same test on every run of that major; the README's version table is made from these files.\n"
    );
    if skipped.is_empty() {
        r.push_str("skipped: none\n");
    }
    for (q, reason) in skipped {
        let _ = writeln!(r, "skipped: {q}: {reason}");
    }
    if absent.is_empty() {
        r.push_str("absent: none\n");
    }
    for a in absent {
        let _ = writeln!(r, "absent: {a}");
    }
    r
}

fn version_file(major: u32) -> PathBuf {
    root().join(format!("docs/versions/{major}.txt"))
}

#[test]
fn this_majors_version_report_is_up_to_date() {
    let db = Db::new("versions");
    load_ignition(&db, small_seed());
    let mut c = db.client();
    // A vacuumed table, so pg_table_last_vacuum_timestamp_seconds has a sample whether or not autovacuum came by.
    c.batch_execute("VACUUM schema_migrations").unwrap();
    // PostgreSQL 13 and 14 report the vacuum and the seed's ANALYZE to the statistics collector asynchronously.
    assert!(eventually(Duration::from_secs(20), || {
        scalar(
            &mut c,
            "SELECT count(*) FILTER (WHERE (relname = 'schema_migrations' AND last_vacuum IS NULL) OR last_analyze IS NULL)::float8
             FROM pg_stat_user_tables",
        ) == 0.0
    }));
    wait_for_settled_statistics(&mut c);
    let major = server_major(&mut c);
    let cat = shipped();
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let m = exporter.metrics();
    let skipped = assert_no_errors(&cat, &m, &exporter);
    assert_eq!(skipped, expected_skips_on_a_full_primary(&cat, major), "skipped on the Ignition database");
    let absent: Vec<String> = contract()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "pg_connections_idle_over_threshold" && !m.has(n))
        .collect();
    check_file(&version_file(major), &version_report(major, &skipped, &absent));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        check_section(&root().join("README.md"), "versions", &versions_block());
    }
}

fn versions_block() -> String {
    let system = versions::majors("SYSTEM_MAJOR");
    let full = versions::majors("FULL_MAJORS");
    let mut b = String::new();
    b.push_str("| PostgreSQL | tested in CI (`scripts/test.sh`) | queries skipped on the Ignition database with pg_stat_statements |\n");
    b.push_str("|---|---|---|\n");
    for major in versions::all_majors() {
        let ci = if system.contains(&major) {
            "whole suite (Debian package)"
        } else if full.contains(&major) {
            "integration tests that depend on the major (all but `ONCE_TESTS` of `scripts/pg-versions.conf`)"
        } else {
            "catalogue and diagnostics tests (`cargo test --test it catalogue:: diagnostics::`)"
        };
        let report = std::fs::read_to_string(version_file(major)).ok();
        let skipped = match &report {
            None => "not tested".to_owned(),
            Some(text) => {
                // Role skips are the same on every major: stated once below the table.
                let lines: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("skipped: "))
                    .filter(|l| !l.ends_with(&format!(": {PRIMARY_SKIP}")))
                    .collect();
                let absent: Vec<&str> =
                    text.lines().filter_map(|l| l.strip_prefix("absent: ")).filter(|a| *a != "none").collect();
                let mut s = lines
                    .iter()
                    .map(|l| match l.split_once(": ") {
                        Some((q, why)) => format!("`{q}` ({why})"),
                        None => (*l).to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if !absent.is_empty() {
                    let _ = write!(
                        s,
                        "; absent: {}",
                        absent.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    );
                }
                s
            }
        };
        let skipped = if skipped.is_empty() { "none".to_owned() } else { skipped };
        let _ = writeln!(b, "| {major} | {ci} | {skipped} |");
    }
    let cat = shipped();
    let limited = |role| {
        let names = cat.queries.iter().filter(|q| q.role == Some(role)).map(|q| format!("`{}`", q.name));
        names.collect::<Vec<_>>().join(", ")
    };
    let _ = write!(
        b,
        "\nOn every major, the standby-only queries ({}) are skipped on a primary (\"{PRIMARY_SKIP}\") \
         and the primary-only ones ({}) on a standby (\"{REPLICA_SKIP}\").\n",
        limited(Role::Replica),
        limited(Role::Primary)
    );
    b.push_str("\nOn any version, a query whose requirement is missing is skipped with the reason in `runbook_exporter_query_skipped{query,reason}`:\n\n");
    for q in cat.queries.iter().filter(|q| optional_queries(&cat).contains(&q.name)) {
        let _ = writeln!(b, "- `{}`: {}", q.name, requirements(q));
    }
    b.push_str(
        "\nThe table is generated from `docs/versions/<major>.txt`, which the catalogue test writes on each major, \
         and from the version matrix in `scripts/pg-versions.conf`.",
    );
    b
}

#[test]
fn readme_version_table_is_up_to_date() {
    for major in versions::all_majors() {
        assert!(version_file(major).exists() || std::env::var_os("UPDATE_DOCS").is_some(), "{major}");
    }
    check_section(&root().join("README.md"), "versions", &versions_block());
}

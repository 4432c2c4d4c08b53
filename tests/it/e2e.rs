//! End-to-end proof: the shipped catalogue, alert rules and dashboards against real
//! processes, all started by this test and all on loopback:
//!
//! - a throwaway PostgreSQL with the Ignition schema and the small seed,
//! - the exporter with a test copy of `queries.yaml` (two edits, see [`test_catalogue`]),
//! - `prometheus` scraping it every second as the job the rules expect, with the rules,
//!   records and dashboards rendered for another environment than the default
//!   ([`crate::mixin::other_environment`]: job `pg`, the target label `cluster="eu1"` as an
//!   extra selector, other runbook URLs; LockWaits' threshold lowered) and every `for:` of
//!   the rules shortened (see [`test_rules`]),
//! - `alertmanager` routing every alert to a webhook receiver served by this test.
//!
//! It checks that every PromQL expression of every dashboard panel and every rule is
//! accepted by Prometheus and returns data (except the ones in [`EMPTY_OK`], each with its
//! reason), that every rule evaluates without error, and that four provoked problems page
//! through Alertmanager with severity `page` and their `runbook_url`: a lock wait
//! (LockWaits), leaked idle connections (ConnectionLeak), a burst of error log entries
//! (HighErrorRate) and a stopped server (PostgresDown).
//!
//! Needs `prometheus` and `alertmanager` (Debian: `prometheus-alertmanager`) on PATH, or
//! `PROMETHEUS` / `ALERTMANAGER` naming the binaries; a missing binary fails the test with
//! the install command, it is never skipped. Every process is stopped by PID when the test
//! ends, also when it fails. Configuration templates are in `tests/data/e2e/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e_replication::replication_expression_ids;
use crate::support::alerting::{self, shorten_for};
use crate::support::cluster::connect_as;
use crate::support::data::{read, replace_once};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::library;
use crate::support::monitoring::{
    Expression, RECORDS, RULES, Rule, arr, dashboard_expressions, label_values_variables, render_mixin, rules_in, s,
    substitute,
};
use crate::support::{Cluster, Db, Exporter};

/// Every `for:` of the test copy of the rules.
const FOR_IN_TEST: &str = "3s";
/// LockWaits' threshold in the rendering (the shipped one is 60 s).
const LOCK_WAIT_THRESHOLD_SECONDS: u32 = 5;
/// The idle_connections query's threshold in the test copy (the shipped one is 1 hour).
const IDLE_THRESHOLD: &str = "5 seconds";
/// Error entries inserted for HighErrorRate (it needs 200 entries in the last hour).
const ERROR_BURST: i64 = 250;
/// Scrape history Prometheus must have before the expressions are checked.
const MIN_HISTORY: Duration = Duration::from_secs(20);

/// Expressions that legitimately return nothing while they are checked, with the reason.
/// The check runs on the seeded demo data while the lock wait, the leaked connections and
/// the error burst are in place and PostgreSQL is still up. Everything else must return at
/// least one series; these must still be accepted by Prometheus.
const EMPTY_OK: &[(&str, &str)] = &[
    (
        "alert PostgresDown/page",
        "PostgreSQL is up while the expressions are checked; the test stops it afterwards and the alert pages",
    ),
    ("alert ExporterDown/page", "the exporter is up and scraped"),
    ("alert ExporterAbsent/ticket", "Prometheus has the exporter as a target of the job the rules name"),
    ("alert ConnectionsNearMax/page", "about a third of the usable connections are open, not 90 %"),
    ("alert ConnectionsNearMax/ticket", "about a third of the usable connections are open, not 80 %"),
    ("alert IdleInTransaction/ticket", "the lock holder has been idle in transaction for seconds, not 5 minutes"),
    ("alert LongRunningTransaction/ticket", "no transaction is an hour old"),
    (
        "alert LockWaits/page",
        "the lock wait has lasted seconds, not 60 s; the test copy of the rule (threshold 5 s) pages",
    ),
    ("alert BlockedQueries/ticket", "one backend waits for a lock, not five"),
    ("alert Deadlocks/ticket", "no deadlock happens in the test"),
    ("alert DatabaseSizeGrowth/ticket", "the demo database is a few MB; its 7-day prediction stays far below 100 GiB"),
    ("alert TableDeadRowsHigh/ticket", "no table of the seeded database has 10,000 dead rows"),
    ("alert XIDWraparound/ticket", "a fresh cluster's XID age is far below autovacuum_freeze_max_age"),
    ("alert XIDWraparound/page", "a fresh cluster's XID age is far below autovacuum_freeze_max_age"),
    ("alert CatalogueQueryFailing/ticket", "every catalogue query succeeds"),
    ("alert ExporterConfigReloadFailed/ticket", "the catalogue loaded"),
    ("alert AlertInputMissing/ticket", "every query the alerts read runs (e2e_inputs revokes SELECT to see it fire)"),
    ("alert ApplicationLogsStopped/ticket", "the seed and the burst wrote log entries within the hour"),
    ("alert RoleCannotSeeAllSessions/ticket", "the exporter connects as a superuser"),
    ("alert MigrationRolledBack/ticket", "no migration is rolled back"),
    ("alert BackupTooOld/ticket", "the watched directory holds a backup written when the test started"),
    ("alert BackupTooOld/page", "the watched directory holds a backup written when the test started"),
    ("alert BackupShrunk/ticket", "the newest backup is larger than half the previous one"),
    ("alert BackupNotADump/ticket", "the newest backup starts with PGDMP"),
    ("alert FileSetScanFailing/ticket", "the backup directory exists and is readable"),
    (
        "dashboards/exporter-health.json / panel 13 \"Skipped queries\" / A",
        "no query is skipped on the Ignition database with pg_stat_statements, and runbook_exporter_query_skipped only exists while one is",
    ),
];

/// Why the Ignition test leaves the expressions of [`replication_expression_ids`] empty.
const LEFT_TO_REPLICATION: &str =
    "needs a standby, WAL archiving, a replication slot or a restart: proved by it::e2e_replication";

// ---------------------------------------------------------------- test copies

/// The shipped catalogue with three edits, each checked to apply exactly once:
/// the idle_connections query counts connections idle for over [`IDLE_THRESHOLD`]
/// instead of 1 hour (the rest of the shipped SQL runs as is), and
/// ignition_application_logs runs on every scrape instead of being cached for 60 s.
/// The backup file set watches `backups` instead of /var/backups/ignition.
fn test_catalogue(backups: &Path) -> String {
    let shipped = read("queries.yaml");
    let shipped = replace_once(
        &shipped,
        "directory: /var/backups/ignition",
        &format!("directory: {}", backups.display()),
        "the backup directory in queries.yaml",
    );
    let text = replace_once(
        &shipped,
        "state_change < now() - interval '1 hour'",
        &format!("state_change < now() - interval '{IDLE_THRESHOLD}'"),
        "idle_connections threshold in queries.yaml",
    );
    // The ttl line inside the ignition_application_logs block.
    let start = text.find("\n  ignition_application_logs:\n").expect("queries.yaml has ignition_application_logs") + 1;
    let body_start = text[start..].find('\n').unwrap() + start + 1;
    let end = text[body_start..]
        .split_inclusive('\n')
        .scan(body_start, |pos, line| {
            let at = *pos;
            *pos += line.len();
            Some((at, line))
        })
        .find(|(_, line)| line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':'))
        .map_or(text.len(), |(at, _)| at);
    let block = &text[body_start..end];
    // Without a ttl line the query already runs on every scrape (checked below).
    let ttl_lines: Vec<&str> = block.lines().filter(|l| l.trim_start().starts_with("ttl:")).collect();
    assert!(ttl_lines.len() <= 1, "ignition_application_logs has several ttl lines: {ttl_lines:?}");
    let block = match ttl_lines.first() {
        Some(line) => block.replacen(line, "    ttl: 0s", 1),
        None => block.to_owned(),
    };
    let out = format!("{}{block}{}", &text[..body_start], &text[end..]);

    // Check the edits with the exporter's own loader.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queries.yaml");
    std::fs::write(&path, &out).unwrap();
    let cat = library::load(&path);
    assert_eq!(cat.query("ignition_application_logs").ttl, Duration::ZERO);
    assert!(cat.query("idle_connections").sql.contains(IDLE_THRESHOLD));
    out
}

/// The rendered rules file with every `for:` set to [`FOR_IN_TEST`]; checked to differ from it
/// in nothing else.
fn test_rules(shipped_text: &str) -> String {
    let shipped = rules_in(RULES, shipped_text);
    let out = shorten_for(shipped_text, FOR_IN_TEST);

    let copy = rules_in("test copy of the rules", &out);
    assert_eq!(copy.len(), shipped.len());
    for (a, b) in shipped.iter().zip(&copy) {
        let mut want = a.clone();
        if a.hold.is_some() {
            want.hold = Some(FOR_IN_TEST.to_owned());
        }
        assert_eq!(b, &want, "the test copy changes more than for:");
    }
    out
}

// ---------------------------------------------------------------- the stack

/// Everything the test runs. Fields drop in order: the chain (Prometheus, Alertmanager, the webhook, the
/// exporter), then PostgreSQL; the scratch directory last.
struct Stack {
    chain: alerting::Stack,
    db: Db,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Waits for `name` to reach the webhook as a page with the labels `extra`, its rule's runbook_url (a
    /// section of the rendering's `base_url`) and a rendered summary and description.
    fn expect_page(&self, name: &str, shipped: &[Rule], base_url: &str, extra: &[(&str, &str)]) -> Value {
        let alert = self.chain.expect_alert(0, name, "page", extra, shipped);
        let url = s(&alert["annotations"]["runbook_url"]);
        assert!(url.starts_with(&format!("{base_url}#")) && url.len() > base_url.len() + 1, "{name}: {alert}");
        alert
    }
}

// ---------------------------------------------------------------- database scenarios

/// One session holds a row lock in an open transaction; another waits for it in a thread.
struct LockWait {
    holder: postgres::Client,
    waiter: Option<JoinHandle<Result<(), String>>>,
}

const LOCKED_ROW: &str = "SELECT 1 FROM users WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1) FOR UPDATE";

impl LockWait {
    fn start(url: &str) -> LockWait {
        let mut holder = connect_as(url, "e2e-lock-holder");
        holder.batch_execute(&format!("BEGIN; {LOCKED_ROW}")).unwrap();
        let waiter = {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let mut c = connect_as(&url, "e2e-lock-waiter");
                // Bounded even if the holder were never released.
                c.batch_execute("SET statement_timeout = '150s'").map_err(|e| e.to_string())?;
                c.batch_execute(LOCKED_ROW).map_err(|e| e.to_string())
            })
        };
        let mut admin = connect_as(url, "e2e-admin");
        let start = Instant::now();
        loop {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'e2e-lock-waiter' AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get(0);
            if n == 1 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the waiter never waited for the lock");
            std::thread::sleep(Duration::from_millis(50));
        }
        LockWait { holder, waiter: Some(waiter) }
    }

    fn release(mut self) {
        self.holder.batch_execute("ROLLBACK").unwrap();
        let result = self.waiter.take().unwrap().join().expect("waiter thread panicked");
        result.expect("the waiter got the lock after the holder rolled back");
    }
}

/// Slots an ordinary role can get: max_connections - superuser_reserved_connections -
/// reserved_connections (PostgreSQL 16+), as the recording rule computes it.
fn usable_connections(c: &mut postgres::Client) -> i64 {
    c.query_one(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                - coalesce(current_setting('reserved_connections', true), '0')::int",
        &[],
    )
    .unwrap()
    .get::<_, i32>(0)
    .into()
}

// ---------------------------------------------------------------- the test

#[test]
fn dashboards_and_rules_query_real_data_and_provoked_problems_page_through_alertmanager() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[e2e {:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    // The rules, records and dashboards rendered for another environment (mixin.rs).
    let dir = tempfile::Builder::new().prefix("rbx-e2e-").tempdir().unwrap();
    let mut mixin = crate::mixin::other_environment();
    mixin["thresholds"]["LockWaits"] = LOCK_WAIT_THRESHOLD_SECONDS.into();
    let rendered = render_mixin(&mixin, dir.path());
    let shipped_rules_text = std::fs::read_to_string(rendered.join(RULES)).unwrap();
    let shipped_rules = rules_in(RULES, &shipped_rules_text);
    let records = rules_in(RECORDS, &std::fs::read_to_string(rendered.join(RECORDS)).unwrap());
    // Every alert points at its section of docs/diagnostics.md, rebased next to the runbook.
    let base_url = crate::mixin::DIAGNOSTICS.to_owned();
    let job = s(&mixin["job"]).to_owned();
    let labels = mixin["selectors"].to_string();
    let cluster: Vec<(&str, &str)> =
        mixin["selectors"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), s(v))).collect();
    assert!(shipped_rules_text.contains(&format!("up{{job=\"{job}\"")), "the rules select job {job:?}");
    let lock_rule = shipped_rules.iter().find(|r| r.name() == "LockWaits").unwrap();
    assert!(lock_rule.expr().ends_with(&format!("> {LOCK_WAIT_THRESHOLD_SECONDS}")), "LockWaits: {}", lock_rule.expr());
    let rules_path = dir.path().join("runbook-exporter.rules.yml");
    let records_path = rendered.join(RECORDS);
    std::fs::write(&rules_path, test_rules(&shipped_rules_text)).unwrap();

    // PostgreSQL with the Ignition demo data; VACUUM one table as an operator would
    // (runbook: Vacuum Operations) so the "time since last vacuum" panel has a table.
    let db = Db::on(Cluster::start(), "ignition");
    load_ignition(&db, small_seed());
    db.client().batch_execute("VACUUM ANALYZE schema_migrations").unwrap();
    phase("PostgreSQL up and seeded");

    // Two backups in the watched directory, so that the Backups panels have data.
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::write(backups.join("backup-20260107-120000.dump"), [b"PGDMP".as_slice(), &[0; 2000]].concat()).unwrap();
    std::fs::write(backups.join("backup-20260108-120000.dump"), [b"PGDMP".as_slice(), &[0; 1500]].concat()).unwrap();
    let exporter = Exporter::with(&test_catalogue(&backups)).db(&db.url).start();
    let chain = alerting::Stack::start(dir.path(), &records_path, &rules_path, &job, &labels, exporter);
    let mut stack = Stack { chain, db, _dir: dir };
    phase("exporter, Alertmanager and Prometheus up");

    // The problems that take time to mature start right away: leaked idle connections (more
    // than 25 % of the usable connections, the shipped ConnectionLeak threshold) and a lock wait.
    let url = stack.db.url.clone();
    let mut admin = connect_as(&url, "e2e-admin");
    let leaked_count = usable_connections(&mut admin) / 4 + 1;
    let mut leaked: Vec<postgres::Client> = (0..leaked_count).map(|_| connect_as(&url, "e2e-leaked-pool")).collect();
    for c in &mut leaked {
        c.batch_execute("SELECT 1").unwrap();
    }
    let lock = LockWait::start(&url);
    phase(&format!("{leaked_count} connections leaked, a lock wait in place"));

    // Prometheus scrapes the exporter as the job the rules expect, and has loaded every rule.
    let up = format!("up{{job=\"{}\"}} == 1", stack.chain.job);
    stack.chain.wait_for("first scrape", &up, Duration::from_secs(30));
    let scraping_since = Instant::now();
    phase("Prometheus scrapes the exporter");
    assert_eq!(stack.chain.series(&format!("up{{job=\"{}\"}}", stack.chain.job)).len(), 1);
    let loaded = stack.chain.get_json("/api/v1/rules");
    let loaded_rules: Vec<&Value> =
        arr(&loaded["data"]["groups"]).iter().flat_map(|g| arr(&g["rules"]).iter()).collect();
    assert_eq!(loaded_rules.len(), shipped_rules.len() + records.len(), "rules loaded by Prometheus: {loaded}");
    for r in &loaded_rules {
        if s(&r["type"]) == "alerting" && r["duration"].as_f64() != Some(0.0) {
            assert_eq!(r["duration"].as_f64(), Some(3.0), "for: of {} in the test copy", s(&r["name"]));
        }
    }

    // Before the burst the seed's last hour is under HighErrorRate's 200-entry floor.
    stack.chain.wait_for(
        "recording rules",
        "instance:ignition_application_log_entries_1h:sum",
        Duration::from_secs(30),
    );
    let high_error_rate = shipped_rules.iter().find(|r| r.name() == "HighErrorRate").unwrap().expr();
    assert!(
        stack.chain.series(high_error_rate).is_empty(),
        "HighErrorRate holds before the burst\n{}",
        stack.chain.diagnostics()
    );
    admin
        .execute(
            "INSERT INTO application_logs (level, logger, message, context)
             SELECT 'error', 'api', 'payment provider timeout', jsonb_build_object('attempt', g)
             FROM generate_series(1, $1::bigint) AS g",
            &[&ERROR_BURST],
        )
        .unwrap();
    let (total, errors): (i64, i64) = {
        let row = admin
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE level = 'error') FROM application_logs
                 WHERE created_at > now() - interval '1 hour'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(total >= 200 && errors * 20 > total, "the burst is enough: {errors} errors of {total}");
    phase(&format!("error burst inserted: {errors} errors of {total} entries in the last hour"));

    // The three pages.
    let datname = stack.db.name.clone();
    stack.expect_page("HighErrorRate", &shipped_rules, &base_url, &cluster);
    phase("HighErrorRate paged");
    let alert =
        stack.expect_page("LockWaits", &shipped_rules, &base_url, &[&cluster[..], &[("datname", &datname)]].concat());
    phase("LockWaits paged");
    eprintln!("    {}", s(&alert["annotations"]["summary"]));
    stack.expect_page("ConnectionLeak", &shipped_rules, &base_url, &[&cluster[..], &[("datname", &datname)]].concat());
    phase("ConnectionLeak paged");

    // Every expression of the dashboards and rules, with enough history for rate().
    if let Some(rest) = MIN_HISTORY.checked_sub(scraping_since.elapsed()) {
        std::thread::sleep(rest);
    }
    let mut expressions = dashboard_expressions(&rendered);
    expressions
        .extend(shipped_rules.iter().chain(&records).map(|r| Expression { id: r.id(), expr: r.expr().to_owned() }));
    let ids: BTreeSet<&str> = expressions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), expressions.len(), "expression ids are unique");
    let all_rules: Vec<Rule> = shipped_rules.iter().chain(&records).cloned().collect();
    let replication = replication_expression_ids(&all_rules, &rendered);
    let mut allow: BTreeMap<&str, &str> = EMPTY_OK.iter().copied().collect();
    allow.extend(replication.iter().map(|id| (id.as_str(), LEFT_TO_REPLICATION)));
    let stale: Vec<&&str> = allow.keys().filter(|k| !ids.contains(**k)).collect();
    assert!(stale.is_empty(), "EMPTY_OK names expressions that do not exist: {stale:?}");
    let mut problems = Vec::new();
    let mut empty_as_allowed = Vec::new();
    for e in &expressions {
        let expr = match substitute(&e.expr, stack.chain.instance(), &datname) {
            Ok(x) => x,
            Err(err) => {
                problems.push(format!("{}: {err}", e.id));
                continue;
            }
        };
        match stack.chain.query(&expr) {
            Err(err) => problems.push(format!("{}: not accepted: {err}\n      {expr}", e.id)),
            Ok(data) => {
                let empty = matches!(s(&data["resultType"]), "vector" | "matrix") && arr(&data["result"]).is_empty();
                match (empty, allow.get(e.id.as_str())) {
                    (true, None) => problems.push(format!("{}: no data\n      {expr}", e.id)),
                    (true, Some(_)) => empty_as_allowed.push(e.id.as_str()),
                    (false, Some(reason)) if *reason != LEFT_TO_REPLICATION => {
                        eprintln!("note: {} returned data although EMPTY_OK says: {reason}", e.id);
                    }
                    (false, _) => {}
                }
            }
        }
    }
    // The dashboards' variables offer the exporter's instance and the Ignition database.
    let variables = label_values_variables(&rendered);
    assert!(variables.iter().any(|v| v.1 == "instance"), "no dashboard has an instance variable");
    for (file, name, selector, label) in variables {
        let want = match name.as_str() {
            "instance" => stack.chain.instance().to_owned(),
            "datname" => datname.clone(),
            _ => continue,
        };
        let selector = substitute(&selector, stack.chain.instance(), &datname).unwrap();
        let values: BTreeSet<String> =
            stack.chain.series(&selector).iter().map(|x| s(&x["metric"][label.as_str()]).to_owned()).collect();
        if !values.contains(&want) {
            problems.push(format!("{file}: variable {name} (label_values({selector}, {label})) offers {values:?}"));
        }
    }
    // Every rule evaluated without error (e.g. no many-to-many matching at run time).
    problems.extend(stack.chain.unhealthy_rules());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{}",
        problems.len(),
        problems.join("\n  "),
        stack.chain.diagnostics()
    );
    phase(&format!(
        "{} expressions accepted, {} with data, {} empty as allowed",
        expressions.len(),
        expressions.len() - empty_as_allowed.len(),
        empty_as_allowed.len()
    ));

    // For the record, not a failure (a loaded machine can miss a 1 s scrape deadline): query
    // errors and warnings while everything was up.
    for x in stack.chain.series("sum by (query, kind) (runbook_exporter_query_errors_total) > 0") {
        eprintln!("note: exporter query errors: {} {}", x["metric"], x["value"][1]);
    }
    for d in [&stack.chain.prometheus, &stack.chain.alertmanager] {
        for line in std::fs::read_to_string(&d.log).unwrap_or_default().lines() {
            if line.contains("level=warn") || line.contains("level=error") {
                eprintln!("note: {} logged: {line}", d.name);
            }
        }
    }

    // The problems end; then PostgreSQL stops.
    lock.release();
    drop(leaked);
    drop(admin);
    stack.db.cluster().stop();
    phase("PostgreSQL stopped");
    stack.expect_page("PostgresDown", &shipped_rules, &base_url, &cluster);
    phase("PostgresDown paged");

    let problems = stack.chain.webhook.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "webhook problems: {problems:?}");
    eprintln!("webhook received: {:?}", stack.chain.webhook.summary());
    // With every for: at 3 s, the healthy parts of the demo data page or ticket nothing else.
    // A note, not a failure: on a loaded machine a missed scrape deadline can briefly fail a query.
    // LeakedConnection: the leaked connections are idle past the test threshold; RetentionPurgeNotRunning: the
    // seed's oldest activity events are about a year past their retention.
    let expected = [
        "HighErrorRate",
        "LockWaits",
        "ConnectionLeak",
        "PostgresDown",
        "LeakedConnection",
        "RetentionPurgeNotRunning",
    ];
    for a in stack.chain.webhook.alerts.lock().unwrap().iter() {
        if !expected.contains(&s(&a["labels"]["alertname"])) {
            eprintln!("note: unexpected alert: {}", a["labels"]);
        }
    }
    if std::env::var_os("E2E_DUMP").is_some() {
        for a in stack.chain.webhook.alerts.lock().unwrap().iter() {
            eprintln!("{a:#}");
        }
    }
    drop(stack);
    phase("everything stopped");
}

#[test]
fn template_variables_are_substituted_and_unknown_ones_refused() {
    let got = substitute(
        r#"rate(x{instance=~"$instance",datname=~"${datname}"}[$__rate_interval]) + increase(y[$__range]) + z[$__interval]"#,
        "127.0.0.1:9432",
        "ignition",
    );
    assert_eq!(
        got.unwrap(),
        r#"rate(x{instance=~"127.0.0.1:9432",datname=~"ignition"}[1m]) + increase(y[1h]) + z[15s]"#
    );
    assert!(substitute("x[$__interval_ms]", "i", "d").is_err());
    assert!(substitute("x{a=\"${instance\"}", "i", "d").is_err());
}

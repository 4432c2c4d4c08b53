//! End-to-end proof of issue 11's replication, WAL, integrity and restart signals through real Prometheus →
//! Alertmanager → webhook, with the shipped records, the shipped rules with every `for:` at 3 s
//! ([`shorten_for`]), and the shipped catalogue with a `targets:` block in front. All on loopback:
//!
//! - a primary made with `initdb --data-checksums`, `archive_mode=on` and an `archive_command` that copies one
//!   segment, then fails (`exit 1`) until its alert has fired; an unused physical slot; `max_wal_size` at its
//!   minimum (32 MB, so that a few segment switches request checkpoints and make the slot retain more than
//!   `max_wal_size`); and [`MULTIXACTS`] multixacts held back by an open transaction;
//! - a streaming standby made with [`Cluster::standby_by_copy`] (the npm builds have no pg_basebackup) that uses a
//!   slot of its own with `hot_standby_feedback` (so the slot holds an xmin);
//! - one exporter watching both as the targets `primary` and `standby`, scraped as one Prometheus target: the
//!   shipped rules must tell the two servers apart by `target` under one `instance`, which two exporters would
//!   not test.
//!
//! In sequence, on that one stack: WalArchivingFailing (resolved once archiving works again),
//! ReplicationSlotRetainingWal, CheckpointsMostlyRequested (CHECKPOINT and WAL volume) and MultixactWraparound
//! (ticket and page) reach the webhook; a crash restart gives PostgresCrashRestarted and not PostgresRestarted;
//! a page corrupted on disk (while the server is stopped: a full restart) and then read gives ChecksumFailure
//! and PostgresRestarted; a standby whose `primary_conninfo` points nowhere gives StandbyNotStreaming (from the
//! primary) and WalReceiverNotStreaming (from the standby); the standby promoted gives PostgresPromoted, the old
//! primary restarted in recovery PostgresUnexpectedRecovery. Last, every panel query of the replication
//! dashboard, every alert of the four rule groups and the two recording rules of [`replication_expression_ids`]
//! must have returned data at some point of the scenario (a range query over it), except [`EMPTY_OK`].
//!
//! The shipped thresholds are kept, also MultixactWraparound's: the primary runs with
//! `autovacuum_multixact_freeze_max_age` at its minimum ([`FREEZE_MAX_AGE`]), so that [`MULTIXACTS`] multixacts
//! are 2.5 times that age (over the ticket's 1.25 and the page's 2). The only edit of the rules is `for:`.
//! StandbyNotStreaming and WalReceiverNotStreaming look for streaming in a `[1d:1m]` subquery, whose points are
//! whole minutes: the test breaks streaming only once such a point has seen it, up to a minute after the first
//! scrape (it does the other phases meanwhile).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::catalogue::{scalar, server_major};
use crate::replication::{set_archive_command, switch_segment, write_wal};
use crate::support::alerting::{Stack, shorten_for};
use crate::support::cluster::{chown_postgres, connect_as};
use crate::support::data::{read, root};
use crate::support::monitoring::{
    RECORDS, RULES, Rule, arr, dashboard_expressions, label_values_variables, metric_names, mixin_default, rules_in, s,
    substitute,
};
use crate::support::{Cluster, Db, Exporter, eventually, free_port};

/// Every `for:` of the test copy of the rules.
const FOR_IN_TEST: &str = "3s";
/// The primary's autovacuum_multixact_freeze_max_age: the least PostgreSQL accepts (default 400 million).
const FREEZE_MAX_AGE: i64 = 10_000;
/// Multixacts made on the primary: 2.5 × [`FREEZE_MAX_AGE`], so both tiers of MultixactWraparound fire.
const MULTIXACTS: i64 = 25_000;
/// The standby's application_name and the name of its slot on the primary.
const STANDBY: &str = "standby_a";
/// The slot nobody consumes.
const UNUSED_SLOT: &str = "unused";
/// Longest wait for a condition in Prometheus or on a server.
const WAIT: Duration = Duration::from_secs(90);

/// The dashboard of replication, WAL and checkpoints; its panels need a standby, archiving, a slot.
pub(crate) const REPLICATION_DASHBOARD: &str = "dashboards/postgresql-replication.json";
/// The recording rules of the replication, WAL, checkpoint and wraparound signals.
const REPLICATION_RECORDS: &[&str] = &[
    "instance_datname:pg_database_mxid_age:ratio_freeze_max_age",
    "instance:pg_checkpoints_requested:ratio_increase1h",
];
/// The rule groups of the replication, WAL, integrity and restart alerts (issue #11).
const REPLICATION_GROUPS: &[&str] = &[
    "runbook-exporter.replication",
    "runbook-exporter.wal",
    "runbook-exporter.integrity",
    "runbook-exporter.restarts",
];

/// Ids of the expressions this test proves and the Ignition test (`e2e`) leaves to it: the replication
/// dashboard's panels (of the dashboards below `base`), the alerts of [`REPLICATION_GROUPS`] and
/// [`REPLICATION_RECORDS`].
pub(crate) fn replication_expression_ids(rules: &[Rule], base: &Path) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = dashboard_expressions(base)
        .into_iter()
        .filter(|e| e.id.starts_with(&format!("{REPLICATION_DASHBOARD} /")))
        .map(|e| e.id)
        .collect();
    assert!(!ids.is_empty(), "{REPLICATION_DASHBOARD} has no panel queries");
    for group in REPLICATION_GROUPS {
        assert!(rules.iter().any(|r| r.group == *group), "no rule group {group}");
    }
    let alerts = rules.iter().filter(|r| r.alert.is_some() && REPLICATION_GROUPS.contains(&r.group.as_str()));
    ids.extend(alerts.map(Rule::id));
    for name in REPLICATION_RECORDS {
        let record = rules.iter().find(|r| r.record.as_deref() == Some(*name));
        ids.insert(record.unwrap_or_else(|| panic!("no recording rule {name}")).id());
    }
    ids
}

/// What may return nothing during the whole scenario.
enum Empty {
    /// The rule with this id ([`Rule::id`]).
    Rule(&'static str),
    /// Every expression reading this metric, on servers older than this major.
    MetricBefore(&'static str, u32),
}

/// Expressions allowed to return nothing, with the reason. Everything else of [`replication_expression_ids`]
/// must return data at some point of the scenario.
const EMPTY_OK: &[(Empty, &str)] = &[
    (Empty::Rule("alert ReplicationLag/ticket"), "needs a standby 5 minutes behind for 10 minutes"),
    (Empty::Rule("alert ReplicationLag/page"), "needs a standby 30 minutes behind for 5 minutes"),
    (Empty::MetricBefore("pg_wal_records_total", 14), "pg_stat_wal is new in PostgreSQL 14"),
    (Empty::MetricBefore("pg_wal_full_page_images_total", 14), "pg_stat_wal is new in PostgreSQL 14"),
    (Empty::MetricBefore("pg_stat_io_bytes_total", 16), "pg_stat_io is new in PostgreSQL 16"),
    (Empty::MetricBefore("pg_stat_io_operations_total", 16), "pg_stat_io is new in PostgreSQL 16"),
];

/// Why the expression `id` (`expr`) may return nothing on `major`, if it may.
fn empty_ok(id: &str, expr: &str, major: u32) -> Option<&'static str> {
    EMPTY_OK.iter().find_map(|(what, reason)| {
        let allowed = match what {
            Empty::Rule(rule) => *rule == id,
            Empty::MetricBefore(metric, since) => major < *since && metric_names(expr).contains(*metric),
        };
        allowed.then_some(*reason)
    })
}

/// The alerts the scenario provokes, with their severity and the target they come from.
const PROVOKED: &[(&str, &str, &str)] = &[
    ("WalArchivingFailing", "ticket", "primary"),
    ("ReplicationSlotRetainingWal", "ticket", "primary"),
    ("CheckpointsMostlyRequested", "ticket", "primary"),
    ("MultixactWraparound", "ticket", "primary"),
    ("MultixactWraparound", "page", "primary"),
    ("PostgresCrashRestarted", "ticket", "primary"),
    ("ChecksumFailure", "page", "primary"),
    ("PostgresRestarted", "ticket", "primary"),
    ("StandbyNotStreaming", "ticket", "primary"),
    ("WalReceiverNotStreaming", "ticket", "standby"),
    ("PostgresPromoted", "ticket", "standby"),
    ("PostgresUnexpectedRecovery", "page", "primary"),
];

/// Alerts the scenario also gives, rightly, with the reason; they are printed, any other as unexpected.
const SIDE_EFFECTS: &[(&str, &str)] = &[
    (
        "AlertInputMissing",
        "the test database has no Ignition tables: the ignition_* and migrations queries are skipped",
    ),
    ("FileSetScanFailing", "the shipped catalogue watches /var/backups/ignition, which the test does not make"),
    ("PostgresDown", "a restart of the primary outlasted the test's for: of 3 s"),
    (
        "MultixactWraparound",
        "the age is server-wide, so the other databases have it too; the promoted standby never replayed the \
         vacuum that followed the crash",
    ),
];

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The shipped catalogue watching the primary and the standby as the targets `primary` and `standby`.
fn two_targets(primary_url: &str, standby_url: &str) -> String {
    format!(
        "targets:\n  primary: {{url: \"{primary_url}\"}}\n  standby: {{url: \"{standby_url}\"}}\n{}",
        read("queries.yaml")
    )
}

/// Makes [`MULTIXACTS`] multixacts in the database of `url`: one session share-locks a row and stays in its
/// transaction (returned); another share-locks the row too, [`MULTIXACTS`] times, each time in a transaction of
/// its own (a backend reuses the multixact of the same members within a transaction). While the first session
/// is open, no VACUUM can advance datminmxid past them.
fn hold_multixacts(url: &str) -> postgres::Client {
    let mut holder = connect_as(url, "e2e-multixact-holder");
    holder.batch_execute("CREATE TABLE shared_row AS SELECT 1 AS id").unwrap();
    holder.batch_execute("BEGIN; SELECT id FROM shared_row FOR SHARE").unwrap();
    let mut other = connect_as(url, "e2e-multixact-sharer");
    other
        .batch_execute(&format!(
            "DO $$ BEGIN
               FOR i IN 1..{MULTIXACTS} LOOP
                 PERFORM id FROM shared_row FOR SHARE;
                 COMMIT;
               END LOOP;
             END $$"
        ))
        .unwrap();
    holder
}

/// Bytes of WAL `slot` retains on the primary, and max_wal_size in bytes.
fn retained_and_max(c: &mut postgres::Client, slot: &str) -> (f64, f64) {
    let r = c
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8,
                    pg_size_bytes(current_setting('max_wal_size'))::float8
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

#[test]
fn replication_wal_integrity_and_restart_alerts_reach_the_webhook_and_every_panel_has_data() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[e2e_replication {:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let dir = tempfile::Builder::new().prefix("rbx-e2e-replication-").tempdir().unwrap();

    // The primary: archiving works for one segment (so that "last archived" has a value), then fails.
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    chown_postgres(&archive);
    let settings = [
        "archive_mode=on",
        "min_wal_size=32MB",
        "max_wal_size=32MB",
        "max_slot_wal_keep_size=1GB",
        "wal_retrieve_retry_interval=1s",
        &format!("autovacuum_multixact_freeze_max_age={FREEZE_MAX_AGE}"),
    ];
    let mut db = Db::on(Cluster::start_with_checksums(&settings), "e2e_replication");
    let mut p = db.client();
    let major = server_major(&mut p);
    let archive_command = format!("cp %p {}/%f", archive.display());
    set_archive_command(&mut p, &archive_command);
    switch_segment(&mut p);
    assert!(
        eventually(WAIT, || scalar(&mut p, "SELECT archived_count::float8 FROM pg_stat_archiver") >= 1.0),
        "no segment archived"
    );
    p.batch_execute(&format!(
        "SELECT pg_create_physical_replication_slot('{UNUSED_SLOT}', true);
         SELECT pg_create_physical_replication_slot('{STANDBY}');
         CREATE TABLE victim AS SELECT g AS id, repeat('x', 50) AS pad FROM generate_series(1, 100) AS g"
    ))
    .unwrap();
    drop(p);

    // The standby, on its own slot; then archiving fails and the multixacts are made (the copy restarts the
    // primary, which would end the transaction holding them).
    let standby_settings = [format!("primary_slot_name={STANDBY}"), "hot_standby_feedback=on".to_owned()];
    let standby_settings: Vec<&str> = standby_settings.iter().map(String::as_str).collect();
    let standby = db.cluster().standby_by_copy(STANDBY, &standby_settings);
    let mut p = db.client();
    set_archive_command(&mut p, "exit 1");
    let multixact_holder = hold_multixacts(&db.url);
    let mxid_age =
        scalar(&mut p, "SELECT mxid_age(datminmxid)::float8 FROM pg_database WHERE datname = current_database()");
    assert!(mxid_age >= MULTIXACTS as f64, "mxid_age {mxid_age} after {MULTIXACTS} multixacts");
    write_wal(&mut p);
    let streaming =
        "SELECT count(*)::float8 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'";
    let standby_streams = |c: &mut postgres::Client| {
        c.query_one(streaming, &[&STANDBY]).map(|r| r.get::<_, f64>(0) == 1.0).unwrap_or(false)
    };
    assert!(eventually(WAIT, || standby_streams(&mut p)), "the standby does not stream");
    phase(&format!("PostgreSQL {major}: primary and streaming standby up, {mxid_age} multixacts held"));

    // The exporter watching both, and the chain.
    let rules_path = dir.path().join("runbook-exporter.rules.yml");
    let records_path = dir.path().join("runbook-exporter.records.yml");
    std::fs::write(&rules_path, shorten_for(&read(RULES), FOR_IN_TEST)).unwrap();
    std::fs::write(&records_path, read(RECORDS)).unwrap();
    let exporter = Exporter::with(&two_targets(&db.url, &standby.url(&db.name))).start();
    let stack = Stack::start(dir.path(), &records_path, &rules_path, &mixin_default("job"), "{}", exporter);
    let rules: Vec<Rule> = rules_in(RULES, &read(RULES)).into_iter().chain(rules_in(RECORDS, &read(RECORDS))).collect();
    let expect = |mark: usize, name: &str, severity: &str, labels: &[(&str, &str)]| {
        let alert = stack.expect_alert(mark, name, severity, labels, &rules);
        phase(&format!("{name}/{severity} {labels:?} received"));
        alert
    };
    // Both targets scraped, and the primary's checkpoint counters seen before any CHECKPOINT of the test.
    stack.wait_for("both targets up", "count(pg_up == 1) == 2", WAIT);
    stack.wait_for("checkpoint counters", "pg_checkpoints_requested_total{target=\"primary\"}", WAIT);
    let scraping_since = now_unix();
    phase("exporter, Alertmanager and Prometheus up, both targets scraped");

    // Archiving failing, a slot retaining more than max_wal_size, requested checkpoints: four segment switches
    // (each wakes the failing archiver; max_wal_size is two segments) and four CHECKPOINTs.
    let mut p = db.client();
    for _ in 0..4 {
        switch_segment(&mut p);
        p.batch_execute("CHECKPOINT").unwrap();
    }
    let (retained, max_wal_size) = retained_and_max(&mut p, UNUSED_SLOT);
    assert!(retained > max_wal_size, "slot {UNUSED_SLOT} retains {retained} bytes, max_wal_size is {max_wal_size}");
    phase(&format!("4 segments switched, 4 CHECKPOINTs, slot {UNUSED_SLOT} retains {retained} bytes"));
    let primary = [("target", "primary")];
    let datname = db.name.clone();
    let on_db = [("target", "primary"), ("datname", datname.as_str())];
    expect(0, "WalArchivingFailing", "ticket", &primary);
    // Archiving works again (and a restart no longer waits for the archiver's retries).
    let mark = stack.webhook.mark();
    set_archive_command(&mut p, &archive_command);
    switch_segment(&mut p);
    expect(0, "ReplicationSlotRetainingWal", "ticket", &[("target", "primary"), ("slot_name", UNUSED_SLOT)]);
    expect(0, "CheckpointsMostlyRequested", "ticket", &primary);
    expect(0, "MultixactWraparound", "ticket", &on_db);
    expect(0, "MultixactWraparound", "page", &on_db);
    let resolved = |a: &Value| s(&a["labels"]["alertname"]) == "WalArchivingFailing" && s(&a["status"]) == "resolved";
    let resolution = stack.webhook.wait_for_since(mark, resolved);
    assert!(
        resolution.is_some(),
        "WalArchivingFailing not resolved by a working archive_command\n{}",
        stack.diagnostics()
    );
    phase("WalArchivingFailing resolved once archiving works again");

    // A crash restart (it also ends the transaction holding the multixacts).
    let mark = stack.webhook.mark();
    db.cluster().crash_a_backend();
    drop(multixact_holder);
    phase("a backend of the primary killed, the server reinitialized");
    expect(mark, "PostgresCrashRestarted", "ticket", &primary);
    assert!(
        !stack.webhook.received("PostgresRestarted"),
        "PostgresRestarted after a crash restart: {:?}",
        stack.webhook.summary()
    );

    // A page corrupted while the server is stopped (a full restart), then read.
    let mark = stack.webhook.mark();
    db.cluster().corrupt_first_page(&datname, "victim");
    let err = db.client().batch_execute("SELECT count(*) FROM victim").expect_err("reading the corrupt page");
    let text = err.as_db_error().map_or_else(|| err.to_string(), |e| e.message().to_owned());
    assert!(text.contains("invalid page"), "{text}");
    phase("a page of victim corrupted on disk across a restart, and read");
    expect(mark, "ChecksumFailure", "page", &on_db);
    expect(mark, "PostgresRestarted", "ticket", &primary);

    // Streaming broken: once a whole minute of the `[1d:1m]` subqueries has seen it, and the standby streams
    // again after the restarts with nothing pending, its primary_conninfo points at a closed port.
    let seen_streaming = [
        format!(
            "max_over_time(timestamp(pg_replication_standby_streaming{{application_name=\"{STANDBY}\"}} == 1)[1d:1m])"
        ),
        "max_over_time(timestamp(pg_wal_receiver_streaming == 1)[1d:1m])".to_owned(),
    ];
    for expr in &seen_streaming {
        stack.wait_for("a minute's point of the subquery saw streaming", expr, WAIT);
    }
    let mut p = db.client();
    assert!(eventually(WAIT, || standby_streams(&mut p)), "the standby does not stream again after the restarts");
    let quiet = "ALERTS{alertname=~\"StandbyNotStreaming|WalReceiverNotStreaming\"} or pg_wal_receiver_streaming == 0";
    assert!(eventually(WAIT, || stack.series(quiet).is_empty()), "not quiet: {:?}", stack.series(quiet));
    let mark = stack.webhook.mark();
    let mut on_standby = standby.connect(&datname);
    let nowhere = format!("host=127.0.0.1 port={} user=postgres application_name={STANDBY}", free_port());
    on_standby.batch_execute(&format!("ALTER SYSTEM SET primary_conninfo = '{nowhere}'")).unwrap();
    on_standby.batch_execute("SELECT pg_reload_conf()").unwrap();
    phase("the standby's primary_conninfo points at a closed port");
    expect(mark, "StandbyNotStreaming", "ticket", &[("target", "primary"), ("application_name", STANDBY)]);
    expect(mark, "WalReceiverNotStreaming", "ticket", &[("target", "standby")]);

    // Failover: the standby promoted, the old primary restarted in recovery.
    let mark = stack.webhook.mark();
    let promoted: bool = on_standby.query_one("SELECT pg_promote()", &[]).unwrap().get(0);
    assert!(promoted, "pg_promote() failed");
    phase("the standby promoted");
    expect(mark, "PostgresPromoted", "ticket", &[("target", "standby")]);
    let mark = stack.webhook.mark();
    db.cluster().restart_in_recovery(None);
    phase("the old primary restarted in recovery");
    expect(mark, "PostgresUnexpectedRecovery", "page", &primary);

    // Every expression returned data at some point of the scenario, as Prometheus evaluates them every second.
    let ids = replication_expression_ids(&rules, &root());
    let mut expressions: Vec<(String, String)> =
        dashboard_expressions(&root()).into_iter().filter(|e| ids.contains(&e.id)).map(|e| (e.id, e.expr)).collect();
    expressions.extend(rules.iter().filter(|r| ids.contains(&r.id())).map(|r| (r.id(), r.expr().to_owned())));
    assert_eq!(expressions.len(), ids.len(), "every expression id found once");
    let end = now_unix();
    let mut problems = Vec::new();
    let mut allowed = Vec::new();
    for (id, expr) in &expressions {
        let expr = match substitute(expr, stack.instance(), &datname) {
            Ok(x) => x,
            Err(err) => {
                problems.push(format!("{id}: {err}"));
                continue;
            }
        };
        match (stack.query_range(&expr, scraping_since, end, 1), empty_ok(id, &expr, major)) {
            (Err(err), _) => problems.push(format!("{id}: not accepted: {err}\n      {expr}")),
            (Ok(data), None) if arr(&data["result"]).is_empty() => {
                problems.push(format!("{id}: no data\n      {expr}"))
            }
            (Ok(data), Some(reason)) if arr(&data["result"]).is_empty() => allowed.push(format!("{id}: {reason}")),
            (Ok(_), Some(reason)) => eprintln!("note: {id} returned data although allowed empty: {reason}"),
            (Ok(_), None) => {}
        }
    }
    // The dashboard's variables offer the exporter's instance and the test's database.
    for (file, name, selector, label) in label_values_variables(&root()) {
        let want = match (file == REPLICATION_DASHBOARD, name.as_str()) {
            (true, "instance") => stack.instance().to_owned(),
            (true, "datname") => datname.clone(),
            _ => continue,
        };
        let selector = substitute(&selector, stack.instance(), &datname).unwrap();
        let values: BTreeSet<String> =
            stack.series(&selector).iter().map(|x| s(&x["metric"][label.as_str()]).to_owned()).collect();
        if !values.contains(&want) {
            problems.push(format!("{file}: variable {name} (label_values({selector}, {label})) offers {values:?}"));
        }
    }
    problems.extend(stack.unhealthy_rules());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{}",
        problems.len(),
        problems.join("\n  "),
        stack.diagnostics()
    );
    phase(&format!(
        "{} expressions accepted, {} with data during the scenario, {} empty as allowed",
        expressions.len(),
        expressions.len() - allowed.len(),
        allowed.len()
    ));
    for a in &allowed {
        eprintln!("    empty: {a}");
    }

    let problems = stack.webhook.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "webhook problems: {problems:?}");
    // For the record, not a failure: what else fired (on a loaded machine a missed scrape deadline can fire more).
    let mut also = BTreeSet::new();
    for a in stack.webhook.alerts.lock().unwrap().iter().filter(|a| s(&a["status"]) == "firing") {
        let l = &a["labels"];
        let (name, severity, target) = (s(&l["alertname"]), s(&l["severity"]), s(&l["target"]));
        if !PROVOKED.contains(&(name, severity, target)) {
            let why = SIDE_EFFECTS.iter().find(|(n, _)| *n == name).map_or("unexpected", |(_, why)| why);
            also.insert(format!("{name}/{severity} on {target:?} ({why})"));
        }
    }
    for a in also {
        eprintln!("note: also received {a}");
    }
    if std::env::var_os("E2E_DUMP").is_some() {
        for a in stack.webhook.alerts.lock().unwrap().iter() {
            eprintln!("{a:#}");
        }
    }
    drop(on_standby);
    drop(stack);
    drop(standby);
    phase("everything stopped");
}

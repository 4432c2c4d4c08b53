//! End-to-end proof of the tickets of issue 12 through real Prometheus → Alertmanager → webhook, with the
//! shipped records and a test copy of the rules (every `for:` at 3 s) and of the catalogue (the one-hour
//! windows of idle_connections and ignition_application_logs shortened to seconds, see [`test_catalogue`]):
//!
//! - one leaked connection gives LeakedConnection (ticket, naming its user and application) and no
//!   ConnectionLeak (page);
//! - log writes that stop give ApplicationLogsStopped, and not while they go on;
//! - `REVOKE SELECT` on application_logs from the exporter's role gives AlertInputMissing carrying the
//!   exporter's skip reason, resolved after `GRANT SELECT`; dropping the table gives it with "not found".
//!
//! One PostgreSQL, one exporter, one Prometheus and one Alertmanager serve all of it, in sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::alerting::{Stack, shorten_for};
use crate::support::cluster::connect_as;
use crate::support::data::{read, replace_once};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::library;
use crate::support::monitoring::{RECORDS, RULES, mixin_default, s};
use crate::support::{Db, Exporter, PASSWORD};

/// The idle_connections threshold in the test copy (shipped: 1 hour).
const IDLE_THRESHOLD: &str = "3 seconds";
/// The ignition_application_logs window in the test copy (shipped: 1 hour).
const LOG_WINDOW: &str = "4 seconds";
/// The exporter's own role: pg_monitor and SELECT on the Ignition tables, as docs/operations.md says.
const ROLE: &str = "rbx_inputs";

/// The shipped catalogue with the two windows shortened and ignition_application_logs run on every scrape;
/// each edit must apply exactly once, and the result is checked with the exporter's own loader.
fn test_catalogue() -> String {
    let idle = format!("state_change < now() - interval '{IDLE_THRESHOLD}'");
    let window = format!("WHERE created_at > now() - interval '{LOG_WINDOW}'");
    let logs_ttl = "    ttl: 0s\n    requires:\n      tables: [application_logs]\n";
    let edits = [
        ("state_change < now() - interval '1 hour'", idle.as_str(), "idle_connections threshold"),
        ("WHERE created_at > now() - interval '1 hour'", window.as_str(), "ignition_application_logs window"),
        ("    ttl: 60s\n    requires:\n      tables: [application_logs]\n", logs_ttl, "ignition_application_logs ttl"),
    ];
    let text = edits.iter().fold(read("queries.yaml"), |text, (from, to, what)| replace_once(&text, from, to, what));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queries.yaml");
    std::fs::write(&path, &text).unwrap();
    let cat = library::load(&path);
    assert_eq!(cat.query("ignition_application_logs").ttl, Duration::ZERO);
    assert!(cat.query("ignition_application_logs").sql.contains(LOG_WINDOW));
    assert!(cat.query("idle_connections").sql.contains(IDLE_THRESHOLD));
    text
}

/// Inserts one info entry into application_logs every 200 ms until stopped.
struct LogWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    fn start(url: &str) -> LogWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = connect_as(url, "e2e-log-writer");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Ends on an error too (the database went away because the test failed elsewhere).
            while !flag.load(Ordering::Relaxed) {
                let insert = "INSERT INTO application_logs (level, logger, message) VALUES ('info', 'api', 'ok')";
                if c.execute(insert, &[]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        LogWriter { stop, thread: Some(thread) }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("log writer panicked");
    }
}

fn is(alert: &Value, name: &str, status: &str) -> bool {
    s(&alert["labels"]["alertname"]) == name && s(&alert["status"]) == status
}

#[test]
fn leak_ticket_log_silence_and_missing_input_reach_the_webhook() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[e2e_inputs {:>5.1}s] {what}", t0.elapsed().as_secs_f64());

    let db = Db::new("e2e_inputs");
    load_ignition(&db, small_seed());
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor;
             GRANT SELECT ON schema_migrations, activity_events, sessions, users, focus_sessions, application_logs
               TO {ROLE};"
        ))
        .unwrap();
    let writer = LogWriter::start(&db.url);
    let mut leaked = connect_as(&db.url, "e2e-leaked-one");
    leaked.batch_execute("SELECT 1").unwrap();
    phase("PostgreSQL seeded, logs being written, one connection leaked");

    let dir = tempfile::Builder::new().prefix("rbx-e2e-inputs-").tempdir().unwrap();
    let rules = dir.path().join("runbook-exporter.rules.yml");
    let records = dir.path().join("runbook-exporter.records.yml");
    std::fs::write(&rules, shorten_for(&read(RULES), "3s")).unwrap();
    std::fs::write(&records, read(RECORDS)).unwrap();
    let exporter_url = db.url_as(ROLE);
    let exporter = Exporter::with(&test_catalogue()).db(&exporter_url).start();
    let stack = Stack::start(dir.path(), &records, &rules, &mixin_default("job"), "{}", exporter);
    let (webhook, exporter) = (&stack.webhook, &stack.exporter);
    phase("exporter, Alertmanager and Prometheus up");

    // One leaked connection: the ticket, with the user and application, and no page. (The test's own admin
    // session, idle between its statements, may get a ticket of its own: it is idle long enough too.)
    let alert = webhook
        .wait_for(|a| is(a, "LeakedConnection", "firing") && s(&a["labels"]["application_name"]) == "e2e-leaked-one")
        .unwrap_or_else(|| panic!("no LeakedConnection: {:?}\n{}", webhook.summary(), exporter.logs()));
    assert_eq!(s(&alert["labels"]["severity"]), "ticket", "{alert}");
    assert_eq!(s(&alert["labels"]["usename"]), "postgres", "{alert}");
    assert_eq!(s(&alert["labels"]["datname"]), db.name, "{alert}");
    assert!(!webhook.received("ConnectionLeak"), "one leaked connection paged: {:?}", webhook.summary());
    assert!(stack.series("ALERTS{alertname=\"ConnectionLeak\"}").is_empty(), "ConnectionLeak pending");
    phase("LeakedConnection ticket, no ConnectionLeak");

    // Logs still being written: the 4-second window has entries, no silence alert (Prometheus has had the
    // series for as long as LeakedConnection took, several `for:` periods).
    let logs_now = "instance:ignition_application_log_entries_1h:sum > 0";
    assert!(!stack.series(logs_now).is_empty(), "the log window is empty while writing");
    assert!(!webhook.received("ApplicationLogsStopped"), "fired while logs are written: {:?}", webhook.summary());
    assert!(stack.series("ALERTS{alertname=\"ApplicationLogsStopped\"}").is_empty());
    writer.stop();
    let stopped = Instant::now();
    let alert = webhook
        .wait_firing("ApplicationLogsStopped")
        .unwrap_or_else(|| panic!("no ApplicationLogsStopped after the writes stopped: {:?}", webhook.summary()));
    assert_eq!(s(&alert["labels"]["severity"]), "ticket", "{alert}");
    phase(&format!("ApplicationLogsStopped {:.1}s after the writes stopped", stopped.elapsed().as_secs_f64()));

    // SELECT revoked: the exporter skips the query with its reason, and the ticket carries it.
    admin.batch_execute(&format!("REVOKE SELECT ON application_logs FROM {ROLE}")).unwrap();
    let reason = "no SELECT privilege on table application_logs";
    let missing = |status: &'static str, reason: &'static str| {
        move |a: &Value| {
            is(a, "AlertInputMissing", status)
                && s(&a["labels"]["query"]) == "ignition_application_logs"
                && s(&a["labels"]["reason"]) == reason
        }
    };
    let alert = webhook.wait_for(missing("firing", reason)).unwrap_or_else(|| {
        panic!("no AlertInputMissing with {reason:?}: {:?}\n{}", webhook.summary(), exporter.scrape())
    });
    assert_eq!(s(&alert["labels"]["severity"]), "ticket", "{alert}");
    assert!(s(&alert["annotations"]["description"]).contains(reason), "{alert}");
    phase("AlertInputMissing with the skip reason");
    admin.batch_execute(&format!("GRANT SELECT ON application_logs TO {ROLE}")).unwrap();
    webhook
        .wait_for(missing("resolved", reason))
        .unwrap_or_else(|| panic!("AlertInputMissing not resolved after GRANT: {:?}", webhook.summary()));
    phase("AlertInputMissing resolved after GRANT SELECT");

    // The table gone: the same ticket, with the exporter's other reason.
    admin.batch_execute("DROP TABLE application_logs").unwrap();
    webhook
        .wait_for(missing("firing", "table application_logs not found"))
        .unwrap_or_else(|| panic!("no AlertInputMissing for the dropped table: {:?}", webhook.summary()));
    phase("AlertInputMissing for the dropped table");

    let problems = webhook.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "webhook problems: {problems:?}");
    drop(leaked);
}

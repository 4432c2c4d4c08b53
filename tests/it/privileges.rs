//! The exporter's role (issue 17): a role without `pg_monitor` does not see other roles' sessions in full, and
//! the connection queries count them as state `hidden` so totals stay right; the one role recipe of
//! `docs/operations.md#database-role`, run as written by psql, serves the whole shipped catalogue.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::cluster::{connect_as, psql_bin};
use crate::support::data::read;
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::{Db, Exporter, Metrics, PASSWORD, eventually};

/// Client backends of database `datname` as a superuser sees them (everything): of roles other than `role`, and
/// all of them.
fn client_backends(admin: &mut postgres::Client, datname: &str, role: &str) -> (f64, f64) {
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE usename <> $2), count(*) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND datname = $1",
            &[&datname, &role],
        )
        .unwrap();
    (row.get::<_, i64>(0) as f64, row.get::<_, i64>(1) as f64)
}

#[test]
fn a_role_without_pg_monitor_counts_other_sessions_as_hidden_with_totals_right() {
    let db = Db::new("hidden");
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE rbx_plain LOGIN PASSWORD '{PASSWORD}'; GRANT CONNECT ON DATABASE {} TO rbx_plain",
            db.name
        ))
        .unwrap();
    // Two sessions of another role (the superuser): one idle, one idle in transaction.
    let mut idle = connect_as(&db.url, "someone-else");
    idle.batch_execute("SELECT 1").unwrap();
    let mut in_tx = connect_as(&db.url, "someone-else");
    in_tx.batch_execute("BEGIN; SELECT 1").unwrap();

    let url = db.url_as("rbx_plain");
    let exporter = Exporter::with(&read("queries.yaml")).db(&url).start();
    let this_db = ("datname", db.name.as_str());
    let hidden_pair = [("usename", "postgres"), ("application_name", "someone-else"), ("state", "hidden")];
    let mut m = Metrics::default();
    // Hidden: the two sessions above and the superuser session of this test (`admin`).
    let mut expected = (0.0, 0.0);
    let right = eventually(Duration::from_secs(20), || {
        m = exporter.metrics();
        expected = client_backends(&mut admin, &db.name, "rbx_plain");
        m.find("pg_connections", &[this_db, ("state", "hidden")]) == vec![expected.0]
            && m.sum("pg_connections", &[this_db]) == expected.1
    });
    assert_eq!(expected.0, 3.0, "the sessions of other roles");
    assert!(
        right,
        "hidden sessions or totals wrong: {:?}, expected {expected:?}",
        m.find("pg_connections", &[this_db])
    );
    assert_eq!(m.get("runbook_exporter_role_sees_all_sessions", &[]), 0.0);
    assert_eq!(m.get("pg_client_backends", &[this_db, hidden_pair[0], hidden_pair[1], hidden_pair[2]]), 2.0);
    assert_eq!(m.sum("pg_client_backends", &[]), m.sum("pg_connections", &[]), "both count every client backend");
    // What the hidden sessions do stays unknown: the idle-in-transaction one is not seen as such. (The
    // exporter's own sessions may be seen idle in transaction between its statements, so ask by user.)
    let other_in_tx = [this_db, ("usename", "postgres"), ("state", "idle in transaction")];
    assert!(m.find("pg_client_backends", &other_in_tx).is_empty(), "{:?}", m.find("pg_client_backends", &[this_db]));

    // With pg_monitor the same sessions show their real state, and nothing is hidden.
    admin.batch_execute("GRANT pg_monitor TO rbx_plain").unwrap();
    let seen = eventually(Duration::from_secs(20), || {
        m = exporter.metrics();
        m.find("runbook_exporter_role_sees_all_sessions", &[]) == vec![1.0]
            && m.find("pg_connections", &[this_db, ("state", "hidden")]).is_empty()
            && m.find("pg_client_backends", &other_in_tx) == vec![1.0]
    });
    assert!(seen, "after GRANT pg_monitor: {:?}", m.find("pg_connections", &[this_db]));
    let idle_of_other = [this_db, ("usename", "postgres"), ("application_name", "someone-else"), ("state", "idle")];
    assert_eq!(m.get("pg_client_backends", &idle_of_other), 1.0);
    drop((idle, in_tx));
}

/// The first ```sql block of the "## Database role" section of docs/operations.md.
fn role_recipe() -> String {
    let doc = read("docs/operations.md");
    let section = doc.split("\n## Database role\n").nth(1).expect("docs/operations.md has ## Database role");
    let section = section.split("\n## ").next().unwrap();
    let block = section.split("```sql\n").nth(1).expect("a ```sql block in Database role");
    block.split("\n```").next().unwrap().to_owned()
}

#[test]
fn the_role_recipe_run_as_written_by_psql_serves_the_whole_catalogue() {
    let db = Db::new("recipe");
    load_ignition(&db, small_seed());
    let recipe = role_recipe();
    assert!(recipe.contains("\\password runbook_exporter"), "the recipe sets the password with \\password:\n{recipe}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recipe.sql");
    std::fs::write(&file, &recipe).unwrap();
    // psql as an operator runs it; \password prompts twice. Without a controlling terminal (setsid) psql reads
    // the answers from stdin.
    let mut child = Command::new("setsid")
        .arg(psql_bin())
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .arg(&db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setsid and psql");
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql -f recipe failed:\n{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");

    let url = db.url_as("runbook_exporter");
    let exporter = Exporter::with(&read("queries.yaml")).db(&url).start();
    let m = exporter.metrics();
    assert_eq!(m.get("pg_up", &[]), 1.0, "{}", exporter.logs());
    assert_eq!(m.get("runbook_exporter_role_sees_all_sessions", &[]), 1.0);
    let mut problems = Vec::new();
    for (name, labels, value) in &m.samples {
        let query = labels.get("query").map_or("", String::as_str);
        if name == "runbook_exporter_query_success" && *value != 1.0 {
            problems.push(format!("{query} fails"));
        }
        if name == "runbook_exporter_query_skipped" {
            let reason = &labels["reason"];
            // By design: the wrong server version or role for this query.
            let by_design = reason.starts_with("server version ") || reason.starts_with("server is a ");
            if !by_design {
                problems.push(format!("{query} skipped: {reason}"));
            }
        }
    }
    assert!(problems.is_empty(), "the recipe's role does not serve the catalogue: {problems:?}\n{}", exporter.logs());
    assert!(m.sum("ignition_retention_backlog_rows", &[]) > 0.0, "the Ignition tables are readable");
}

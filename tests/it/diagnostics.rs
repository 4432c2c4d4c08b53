//! `docs/diagnostics.md`, the SQL an operator runs when an alert fires: every ```sql block runs with the real
//! `psql` against the Ignition demo database on a primary and on a standby (each block where its first line says
//! it runs), as a `pg_monitor` role unless the block needs a superuser, with zero errors; the lock, connection
//! and transaction diagnostics show the sessions they are meant to find, in the order the doc promises; every
//! alert points at and names an existing section, every section has a reader (an alert or a dashboard panel),
//! and nothing sends an operator to the runbook queries that do not run.
//!
//! `scripts/test.sh` runs the SQL test on every PostgreSQL major of the matrix. psql is `$PG_BIN/psql`, else
//! `psql` on PATH (any psql from 13 on talks to every supported server).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use crate::support::cluster::psql_bin;
use crate::support::data::{files, read, rel};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::monitoring::{alerts, dashboards, mixin_default};
use crate::support::tools::output;
use crate::support::{Cluster, Db, assert_no_problems, eventually};

const DOC: &str = "docs/diagnostics.md";
/// The non-superuser the blocks run as: what the exporter's role may have.
const MONITOR: &str = "diag_monitor";

/// Where a block runs, from its first line (`-- run on: primary|standby|either`).
#[derive(Clone, Copy, PartialEq, Debug)]
enum RunOn {
    Primary,
    Standby,
    Either,
}

struct Block {
    sql: String,
    run_on: RunOn,
    superuser: bool,
}

struct Section {
    title: String,
    anchor: String,
    blocks: Vec<Block>,
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The `## ` sections of the doc with their ```sql blocks (headings inside code blocks do not count).
fn sections() -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut fence: Option<(String, Vec<&str>)> = None;
    let text = read(DOC);
    for line in text.lines() {
        match fence.take() {
            None if line.starts_with("```") => fence = Some((line[3..].trim().to_owned(), Vec::new())),
            None => {
                if let Some(title) = line.strip_prefix("## ") {
                    out.push(Section {
                        title: title.trim().to_owned(),
                        anchor: anchor(title.trim()),
                        blocks: Vec::new(),
                    });
                }
            }
            Some((lang, body)) if line.starts_with("```") => {
                if lang == "sql" {
                    let section =
                        out.last_mut().unwrap_or_else(|| panic!("{DOC}: an sql block before the first section"));
                    section.blocks.push(block(&section.title, &body.join("\n")));
                }
            }
            Some((lang, mut body)) => {
                body.push(line);
                fence = Some((lang, body));
            }
        }
    }
    assert!(fence.is_none(), "{DOC}: an unclosed code block");
    out
}

fn block(section: &str, sql: &str) -> Block {
    let first = sql.lines().next().unwrap_or_default();
    let run_on = match first.strip_prefix("-- run on: ").map(|r| r.split([' ', '(']).next().unwrap_or_default()) {
        Some("primary") => RunOn::Primary,
        Some("standby") => RunOn::Standby,
        Some("either") => RunOn::Either,
        _ => panic!("{DOC} / {section}: a block's first line must be `-- run on: primary|standby|either`: {first:?}"),
    };
    let superuser = sql.lines().any(|l| l.starts_with("-- needs: superuser"));
    Block { sql: sql.to_owned(), run_on, superuser }
}

/// What one psql run gave.
struct Psql {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sql` with psql on `cluster`'s database `db` as `user`, with the doc's variables set, stopping at the
/// first error; with `csv`, results come as CSV.
fn psql(cluster: &Cluster, db: &str, user: &str, vars: &BTreeMap<&str, String>, sql: &str, csv: bool) -> Psql {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sql).unwrap();
    let mut cmd = Command::new(psql_bin());
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"]).arg(&cluster.socket_dir);
    cmd.args(["-p", &cluster.port.to_string(), "-U", user, "-d", db]);
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    if csv {
        cmd.arg("--csv");
    }
    cmd.arg("-f").arg(file.path()).env_remove("PGPASSWORD").env_remove("PGOPTIONS");
    let out = output(&mut cmd);
    Psql {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The database for these tests: the Ignition demo data, a `pg_monitor` role that may read its tables, and a
/// replication slot for the block that drops one.
fn ignition_db(test: &str) -> Db {
    let db = Db::on(Cluster::start(), test);
    load_ignition(&db, small_seed());
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MONITOR};
             SELECT pg_create_physical_replication_slot('diag_slot');
             ANALYZE"
        ))
        .unwrap();
    db
}

/// The values of the doc's psql variables on one server; `:pid` is a session opened for it (a block
/// terminates it).
fn variables(cluster: &Cluster, db: &str, victim: &mut postgres::Client) -> BTreeMap<&'static str, String> {
    let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let filenode: i64 =
        cluster.connect(db).query_one("SELECT pg_relation_filenode('public.users')::bigint", &[]).unwrap().get(0);
    BTreeMap::from([
        ("pid", pid.to_string()),
        ("datname", db.to_owned()),
        ("slot_name", "diag_slot".to_owned()),
        ("role", MONITOR.to_owned()),
        ("application_name", "diag-no-such-application".to_owned()),
        ("table", "public.users".to_owned()),
        ("filenode", filenode.to_string()),
    ])
}

#[test]
fn every_sql_block_runs_on_a_primary_and_a_standby() {
    let sections = sections();
    let total: usize = sections.iter().map(|s| s.blocks.len()).sum();
    assert!(total >= 40, "{DOC} has only {total} sql blocks");
    let mut db = ignition_db("diagnostics");
    let name = db.name.clone();
    let standby = db.cluster().standby_by_copy("diag-standby", &[]);
    let primary = db.cluster.as_ref().unwrap();
    let in_recovery =
        |c: &Cluster| c.connect(&name).query_one("SELECT pg_is_in_recovery()", &[]).unwrap().get::<_, bool>(0);
    assert!(!in_recovery(primary) && in_recovery(&standby), "one primary and one standby");

    let mut problems = Vec::new();
    let mut runs = 0;
    for (server, cluster, role) in [("primary", primary, RunOn::Primary), ("standby", &standby, RunOn::Standby)] {
        let mut victim = cluster.connect(&name);
        let vars = variables(cluster, &name, &mut victim);
        for section in &sections {
            for (i, b) in section.blocks.iter().enumerate() {
                if b.run_on != role && b.run_on != RunOn::Either {
                    continue;
                }
                let user = if b.superuser { "postgres" } else { MONITOR };
                let out = psql(cluster, &name, user, &vars, &b.sql, false);
                runs += 1;
                if !out.ok || out.stderr.contains("ERROR:") {
                    problems.push(format!(
                        "{} block {} on the {server} as {user}: {}",
                        section.title,
                        i + 1,
                        out.stderr.trim()
                    ));
                }
            }
        }
    }
    assert_no_problems(&problems, &format!("{DOC}: sql blocks that fail"));
    // Every block ran at least once (a block for neither role would be skipped silently).
    let either = sections.iter().flat_map(|s| &s.blocks).filter(|b| b.run_on == RunOn::Either).count();
    assert_eq!(runs, total + either, "blocks run");
}

/// CSV as psql writes it: rows of fields, the first row the header; fields may be quoted with `""` inside.
fn parse_csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    let header = rows.first().cloned().unwrap_or_default();
    rows.iter().skip(1).map(|r| header.iter().cloned().zip(r.iter().cloned()).collect()).collect()
}

/// Block `index` (from 0) of the section titled `title`.
fn sql_of(sections: &[Section], title: &str, index: usize) -> String {
    let section = sections.iter().find(|s| s.title == title).unwrap_or_else(|| panic!("{DOC}: no section {title:?}"));
    section.blocks.get(index).unwrap_or_else(|| panic!("{DOC} / {title}: no block {}", index + 1)).sql.clone()
}

/// A session with its own application_name whose last statement is `sql`, and its pid.
fn session(db: &Db, application_name: &str, sql: &str) -> (postgres::Client, i32) {
    let mut c = crate::support::cluster::connect_as(&db.url, application_name);
    let pid = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    c.batch_execute(sql).unwrap();
    (c, pid)
}

#[test]
fn lock_connection_and_transaction_diagnostics_show_the_sessions_they_promise() {
    let sections = sections();
    let db = ignition_db("diagnostics_behaviour");
    let cluster = db.cluster.as_ref().unwrap();
    let vars = BTreeMap::new();
    let run = |sql: &str| {
        let out = psql(cluster, &db.name, MONITOR, &vars, sql, true);
        assert!(out.ok, "{sql}\n{}", out.stderr);
        parse_csv(&out.stdout)
    };

    // Transactions: the connection opened first starts its transaction last, so ordering by connection age
    // (the runbook's query) and by transaction age disagree.
    let (mut older_connection, older_pid) = session(&db, "diag-older-connection", "SELECT 1");
    let (mut newer_connection, newer_pid) = session(&db, "diag-newer-connection", "SELECT 1");
    newer_connection.batch_execute("BEGIN; SELECT txid_current()").unwrap();
    older_connection.batch_execute("BEGIN; SELECT txid_current()").unwrap();
    let rows = run(&sql_of(&sections, "Long transactions", 0));
    let pids: Vec<String> = rows.iter().map(|r| r["pid"].clone()).collect();
    let position = |pid: i32| pids.iter().position(|p| *p == pid.to_string());
    assert!(
        matches!((position(newer_pid), position(older_pid)), (Some(a), Some(b)) if a < b),
        "Long transactions lists the older transaction first (newer connection {newer_pid}, older {older_pid}): {rows:?}"
    );
    newer_connection.batch_execute("COMMIT").unwrap();
    older_connection.batch_execute("COMMIT").unwrap();

    // Connections: two idle sessions (the first idle longer) and one idle in transaction.
    let (_idle_long, idle_long_pid) = session(&db, "diag-idle-long", "SELECT 1");
    let (_idle_short, idle_short_pid) = session(&db, "diag-idle-short", "SELECT 1");
    let (_busy, busy_pid) = session(&db, "diag-in-transaction", "BEGIN; SELECT 1");
    let rows = run(&sql_of(&sections, "Connection leak", 0));
    let states: Vec<&str> = rows.iter().map(|r| r["state"].as_str()).collect();
    let first_other = states.iter().position(|s| *s != "idle").unwrap_or(states.len());
    assert!(states[first_other..].iter().all(|s| *s != "idle"), "idle sessions come first: {states:?}");
    let pids: Vec<String> = rows.iter().map(|r| r["pid"].clone()).collect();
    let position = |pid: i32| pids.iter().position(|p| *p == pid.to_string());
    let (long, short, busy) = (position(idle_long_pid), position(idle_short_pid), position(busy_pid));
    assert!(
        matches!((long, short, busy), (Some(l), Some(s), Some(b)) if l < s && s < b),
        "Connection leak lists the longest idle first, then other idle sessions, then the rest: {rows:?}"
    );

    // Lock waits: a holder idle in transaction with a row lock, and a waiter on the same row.
    let holder_sql = "UPDATE users SET updated_at = now() WHERE email = 'user4@example.com'";
    let waiter_sql = "UPDATE users SET last_login_at = now() WHERE email = 'user4@example.com'";
    let (mut holder, holder_pid) = session(&db, "diag-holder", &format!("BEGIN; {holder_sql}"));
    let url = db.url.clone();
    let waiter = std::thread::spawn(move || {
        let mut c = crate::support::cluster::connect_as(&url, "diag-waiter");
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        c.batch_execute(waiter_sql).unwrap();
        pid
    });
    let mut admin = db.client();
    let waiting = eventually(std::time::Duration::from_secs(30), || {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'diag-waiter' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        n == 1
    });
    assert!(waiting, "the waiter never waited for the lock");
    let rows = run(&sql_of(&sections, "Lock waits", 0));
    let pair = rows.iter().find(|r| r["waiting_application"] == "diag-waiter");
    let pair = pair.unwrap_or_else(|| panic!("Lock waits does not list the waiter: {rows:?}"));
    assert_eq!(pair["blocking_pid"], holder_pid.to_string(), "the blocker: {pair:?}");
    assert_eq!(pair["blocking_application"], "diag-holder", "{pair:?}");
    assert!(pair["waiting_query"].contains("SET last_login_at"), "the waiting statement: {pair:?}");
    assert!(pair["blocking_query"].contains("SET updated_at"), "the blocking statement: {pair:?}");
    assert_eq!(pair["blocking_state"], "idle in transaction", "{pair:?}");
    let waiter_pid = pair["waiting_pid"].clone();
    let heads = run(&sql_of(&sections, "Lock waits", 1));
    let head_pids: Vec<&str> = heads.iter().map(|r| r["pid"].as_str()).collect();
    assert_eq!(head_pids, [holder_pid.to_string()], "the head of the queue is the holder alone: {heads:?}");
    assert_eq!(heads[0]["directly_blocked"], "1", "{heads:?}");
    assert!(!head_pids.contains(&waiter_pid.as_str()));
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(waiter.join().unwrap().to_string(), waiter_pid);
}

// ---------------------------------------------------------------- lints

#[test]
fn every_alert_points_at_and_names_an_existing_section() {
    let sections = sections();
    let by_anchor: BTreeMap<&str, &str> = sections.iter().map(|s| (s.anchor.as_str(), s.title.as_str())).collect();
    let base = mixin_default("diagnostics_base_url");
    let mut problems = Vec::new();
    for a in alerts() {
        let url = a.annotations.get("runbook_url").map_or("", String::as_str);
        let Some(anchor) = url.strip_prefix(&format!("{base}#")) else {
            problems.push(format!("{} ({}): runbook_url {url:?} is not {base}#SECTION", a.name(), a.severity()));
            continue;
        };
        let Some(title) = by_anchor.get(anchor) else {
            problems.push(format!("{} ({}): #{anchor} is not a section of {DOC}", a.name(), a.severity()));
            continue;
        };
        let named = format!("{title} diagnostics");
        if !a.annotations["description"].contains(&named) {
            problems.push(format!("{} ({}): the description does not name the {named}", a.name(), a.severity()));
        }
    }
    assert_no_problems(&problems, "alerts and their diagnostics");
}

#[test]
fn every_section_has_a_reader() {
    let base = mixin_default("diagnostics_base_url");
    let mut read_by: BTreeSet<String> = alerts()
        .iter()
        .filter_map(|a| a.annotations.get("runbook_url")?.strip_prefix(&format!("{base}#")).map(str::to_owned))
        .collect();
    for d in dashboards() {
        let text = d.json.to_string();
        read_by.extend(text.split("docs/diagnostics.md#").skip(1).map(|rest| {
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect::<String>()
        }));
    }
    let sections = sections();
    let anchors: BTreeSet<&str> = sections.iter().map(|s| s.anchor.as_str()).collect();
    let mut problems: Vec<String> = sections
        .iter()
        .filter(|s| !read_by.contains(&s.anchor))
        .map(|s| format!("{}: no alert or dashboard panel points at #{}", s.title, s.anchor))
        .collect();
    problems.extend(read_by.iter().filter(|a| !anchors.contains(a.as_str())).map(|a| format!("#{a} is no section")));
    assert_no_problems(&problems, DOC);
}

/// The runbook's diagnostic queries that do not run or hide what they look for (see the doc's corrections).
const BROKEN_RUNBOOK_QUERIES: &[&str] = &["Find blocked queries", "Check Index Usage", "Identify connections"];

#[test]
fn no_alert_panel_or_test_names_the_broken_runbook_queries() {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (dir, suffix) in [("alerts", ".yml"), ("alerts", ".md"), ("alerts/tests", ".yml"), ("dashboards", ".json")] {
        paths.extend(files(dir, suffix));
    }
    paths.extend(files("tests/it", ".rs").into_iter().filter(|p| !p.ends_with("diagnostics.rs")));
    paths.extend(files("tests/it/support", ".rs"));
    let mut problems = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        for name in BROKEN_RUNBOOK_QUERIES {
            if text.contains(name) {
                problems.push(format!("{} names {name:?}", rel(path)));
            }
        }
    }
    assert_no_problems(&problems, "references to runbook queries that do not run");
}

//! Replication, WAL, archiving, slots, checksums and restarts (issue 11) on real servers: a primary with a
//! streaming standby, a failing `archive_command`, a slot nobody consumes, a cluster made with
//! `initdb --data-checksums` with a page corrupted on disk, a restart and a crash restart. Every value the
//! exporter serves is compared with the SQL an operator would type, read while the values are still (the same
//! before and after the scrape).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::catalogue::{assert_no_errors, expected_skips, scalar, server_major, shipped_text};
use crate::support::library::{Catalogue, shipped};
use crate::support::{Cluster, Db, Exporter, Metrics, eventually};

/// Longest wait for a server-side change (a standby catching up, the archiver, the statistics).
const WAIT: Duration = Duration::from_secs(60);
/// The standby's application_name in primary_conninfo.
const STANDBY: &str = "standby_a";

/// The exporter's metrics and a direct reading that was the same before and after the scrape.
fn still<T: PartialEq + std::fmt::Debug>(exporter: &Exporter, mut direct: impl FnMut() -> T) -> (T, Metrics) {
    let mut last = None;
    for _ in 0..50 {
        let before = direct();
        let m = exporter.metrics();
        let after = direct();
        if before == after {
            return (after, m);
        }
        last = Some((before, after));
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the values never stood still during a scrape: {last:?}");
}

/// [`still`] until `settled` holds for the reading and the metrics, up to [`WAIT`]: a primary writes a little
/// WAL of its own now and then (the running-transactions record of the background writer every 15 s), which
/// can be in flight to the standby during one scrape and replayed before the reading after it.
fn still_until<T: PartialEq + std::fmt::Debug>(
    exporter: &Exporter,
    mut direct: impl FnMut() -> T,
    mut settled: impl FnMut(&T, &Metrics) -> bool,
) -> (T, Metrics) {
    let start = std::time::Instant::now();
    loop {
        let (view, m) = still(exporter, &mut direct);
        if settled(&view, &m) || start.elapsed() > WAIT {
            return (view, m);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two Unix times are the same (the exporter and `::float8` round the last microsecond digits differently).
fn same_time(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

/// Asserts that the times `got` (served) and `want` (direct) are the same, pairwise.
fn assert_times(what: &str, got: &[f64], want: &[f64]) {
    assert!(
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| same_time(*a, *b)),
        "{what}: served {got:?}, direct {want:?}"
    );
}

/// Polls `f` until it holds, up to [`WAIT`]; panics with `what`.
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(eventually(WAIT, f), "{what} within {WAIT:?}");
}

/// Writes a little WAL on `c` (a row into `t`, created if need be).
pub(crate) fn write_wal(c: &mut postgres::Client) {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS t (id serial, pad text); INSERT INTO t (pad) VALUES (repeat('x', 100))",
    )
    .unwrap();
}

/// Every query that is not skipped succeeded, and the skips are the ones `requires:`/`role:` give on this
/// server (all extensions and tables of a fresh database aside).
fn assert_catalogue_healthy(cat: &Catalogue, m: &Metrics, exporter: &Exporter, c: &mut postgres::Client) {
    let major = server_major(c);
    let in_recovery = scalar(c, "SELECT pg_is_in_recovery()::int::float8") == 1.0;
    let skipped = assert_no_errors(cat, m, exporter);
    let optional = |q: &crate::support::library::Query| {
        (!q.requires.tables.is_empty()).then(|| format!("table {} not found", q.requires.tables[0]))
    };
    assert_eq!(skipped, expected_skips(cat, major, in_recovery, optional), "skipped (in recovery: {in_recovery})");
}

// ---------------------------------------------------------------- streaming

/// What the primary's pg_stat_replication says of the standby: (state, sync_state, replay bytes behind).
fn primary_view(c: &mut postgres::Client) -> Option<(String, String, f64)> {
    c.query_opt(
        "SELECT state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8
         FROM pg_stat_replication WHERE application_name = $1",
        &[&STANDBY],
    )
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

/// What the standby says of itself: (received, replayed, bytes received but not replayed, paused, receiver
/// status). A standby made by copy replays its own pg_wal before streaming starts at a segment boundary, so
/// the received position can trail the replayed one; like the catalogue, that is nothing to replay (0).
fn standby_view(c: &mut postgres::Client) -> (f64, f64, f64, bool, String) {
    let r = c
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::float8,
                    pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8,
                    greatest(0, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()))::float8,
                    pg_is_wal_replay_paused(),
                    (SELECT status FROM pg_stat_wal_receiver)",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

fn on_standby(m: &Metrics, name: &str) -> f64 {
    m.get(name, &[])
}

fn for_standby(m: &Metrics, name: &str) -> f64 {
    m.get(name, &[("application_name", STANDBY), ("client_addr", "")])
}

#[test]
fn a_streaming_standby_is_seen_from_both_sides_as_direct_sql_sees_it() {
    let mut db = Db::on(Cluster::start(), "streaming");
    let mut p = db.client();
    write_wal(&mut p);
    let standby = db.cluster().standby_by_copy(STANDBY, &[]);
    let mut p = db.client();
    let mut s = standby.connect(&db.name);
    let cat = shipped();
    let primary_exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let standby_exporter = Exporter::with(&shipped_text()).db(&standby.url(&db.name)).start();
    wait_until("the standby streams", || primary_view(&mut p).is_some_and(|v| v.0 == "streaming" && v.2 == 0.0));

    // Caught up: both sides agree with the direct view, and nothing is behind.
    let (view, m) = still_until(
        &primary_exporter,
        || primary_view(&mut p),
        |v, m| {
            v.as_ref().is_some_and(|v| v.2 == 0.0) && for_standby(m, "pg_replication_standby_replay_lag_bytes") == 0.0
        },
    );
    let (state, sync_state, behind) = view.unwrap();
    assert_eq!((state.as_str(), sync_state.as_str(), behind), ("streaming", "async", 0.0));
    let labels = [("application_name", STANDBY), ("client_addr", ""), ("state", "streaming"), ("sync_state", "async")];
    assert_eq!(m.get("pg_replication_standby_senders", &labels), 1.0);
    assert_eq!(for_standby(&m, "pg_replication_standby_streaming"), 1.0);
    assert_eq!(for_standby(&m, "pg_replication_standby_replay_lag_bytes"), 0.0);
    for lag in ["write", "flush", "replay"] {
        let v = for_standby(&m, &format!("pg_replication_standby_{lag}_lag_seconds"));
        assert!((0.0..5.0).contains(&v), "{lag} lag {v} while caught up");
    }
    assert_catalogue_healthy(&cat, &m, &primary_exporter, &mut p);

    let (view, m) = still_until(
        &standby_exporter,
        || standby_view(&mut s),
        |v, m| v.2 == 0.0 && on_standby(m, "pg_replication_replay_lag_bytes") == 0.0,
    );
    assert_eq!(on_standby(&m, "pg_replication_receive_position_bytes"), view.0);
    assert_eq!(on_standby(&m, "pg_replication_replay_position_bytes"), view.1);
    assert_eq!(on_standby(&m, "pg_replication_replay_lag_bytes"), view.2);
    assert_eq!(view.2, 0.0);
    assert_eq!(on_standby(&m, "pg_replication_replay_paused"), 0.0);
    assert_eq!(on_standby(&m, "pg_wal_receiver_streaming"), 1.0);
    assert_eq!(view.4, "streaming");
    let socket = standby_socket_of_primary(&db);
    assert_eq!(
        m.get("pg_wal_receiver_info", &[("status", "streaming"), ("sender_host", &socket), ("slot_name", "")]),
        1.0
    );
    assert!(on_standby(&m, "pg_wal_receiver_last_message_age_seconds") >= 0.0);
    assert_eq!(m.get("pg_in_recovery", &[]), 1.0);
    assert_catalogue_healthy(&cat, &m, &standby_exporter, &mut s);

    // Replay paused: both sides show the bytes behind, and the primary's replay lag grows.
    s.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
    wait_until("replay pauses", || standby_view(&mut s).3);
    for _ in 0..3 {
        write_wal(&mut p);
    }
    wait_until("the standby receives what it does not replay", || standby_view(&mut s).2 > 0.0);
    wait_until("the primary sees the standby behind", || primary_view(&mut p).is_some_and(|v| v.2 > 0.0));
    let (view, m) = still(&standby_exporter, || standby_view(&mut s));
    assert!(view.2 > 0.0);
    assert_eq!(on_standby(&m, "pg_replication_replay_lag_bytes"), view.2);
    assert_eq!(on_standby(&m, "pg_replication_receive_position_bytes"), view.0);
    assert_eq!(on_standby(&m, "pg_replication_replay_position_bytes"), view.1);
    assert_eq!(on_standby(&m, "pg_replication_replay_paused"), 1.0);
    let (view, m) = still(&primary_exporter, || primary_view(&mut p));
    let behind = view.unwrap().2;
    assert!(behind > 0.0);
    assert_eq!(for_standby(&m, "pg_replication_standby_replay_lag_bytes"), behind);
    let mut last = for_standby(&m, "pg_replication_standby_replay_lag_seconds");
    let mut grew = 0;
    wait_until("the primary's replay lag grows while replay is paused", || {
        write_wal(&mut p);
        std::thread::sleep(Duration::from_millis(500));
        let now = for_standby(&primary_exporter.metrics(), "pg_replication_standby_replay_lag_seconds");
        if now > last {
            grew += 1;
        }
        last = now;
        grew >= 2
    });
    assert!(last > 0.5, "replay lag {last} s after a paused replay");

    // Resumed: back to nothing behind on both sides.
    s.batch_execute("SELECT pg_wal_replay_resume()").unwrap();
    wait_until("the standby catches up (primary's exporter)", || {
        for_standby(&primary_exporter.metrics(), "pg_replication_standby_replay_lag_bytes") == 0.0
    });
    wait_until("the standby catches up (standby's exporter)", || {
        let m = standby_exporter.metrics();
        on_standby(&m, "pg_replication_replay_lag_bytes") == 0.0
            && on_standby(&m, "pg_replication_replay_paused") == 0.0
    });
    let m = primary_exporter.metrics();
    assert_catalogue_healthy(&cat, &m, &primary_exporter, &mut p);
    let m = standby_exporter.metrics();
    assert_catalogue_healthy(&cat, &m, &standby_exporter, &mut s);
}

/// The primary's socket directory, the standby's `sender_host` (it connects over the Unix socket).
fn standby_socket_of_primary(db: &Db) -> String {
    db.cluster.as_ref().unwrap().socket_dir.display().to_string()
}

#[test]
fn on_a_primary_and_a_standby_no_family_is_fed_by_two_queries_at_once() {
    let mut db = Db::on(Cluster::start(), "families");
    write_wal(&mut db.client());
    let standby = db.cluster().standby_by_copy(STANDBY, &[]);
    let cat = shipped();
    let primary = Exporter::with(&shipped_text()).db(&db.url).start();
    let replica = Exporter::with(&shipped_text()).db(&standby.url(&db.name)).start();
    for (side, exporter) in [("primary", &primary), ("standby", &replica)] {
        let m = exporter.metrics();
        let ran: BTreeSet<&str> = m
            .samples
            .iter()
            .filter(|(n, _, _)| n == "runbook_exporter_query_success")
            .map(|(_, l, _)| l["query"].as_str())
            .collect();
        for f in &cat.families {
            let feeding: Vec<&str> =
                f.sources.iter().map(|(q, _)| cat.queries[*q].name.as_str()).filter(|q| ran.contains(q)).collect();
            assert!(feeding.len() <= 1, "on the {side}, {} is fed by {feeding:?}", f.name);
        }
        if side == "primary" {
            for family in ["pg_wal_bytes_total", "pg_checkpoints_timed_total", "pg_checkpoints_requested_total"] {
                assert!(m.has(family), "no {family} on the primary");
            }
        }
    }
}

// ---------------------------------------------------------------- archiving

/// pg_stat_archiver as an operator reads it: archived, failed, last archived and last failed as Unix times.
fn archiver(c: &mut postgres::Client) -> (f64, f64, Option<f64>, Option<f64>) {
    let r = c
        .query_one(
            "SELECT archived_count::float8, failed_count::float8,
                    extract(epoch FROM last_archived_time)::float8, extract(epoch FROM last_failed_time)::float8
             FROM pg_stat_archiver",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Sets archive_command and waits until the server runs with it.
pub(crate) fn set_archive_command(c: &mut postgres::Client, command: &str) {
    c.batch_execute(&format!("ALTER SYSTEM SET archive_command = '{}'", command.replace('\'', "''"))).unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_until("the new archive_command is in effect", || {
        let now: String = c.query_one("SELECT current_setting('archive_command')", &[]).unwrap().get(0);
        now == command
    });
}

pub(crate) fn switch_segment(c: &mut postgres::Client) {
    write_wal(c);
    c.batch_execute("SELECT pg_switch_wal()").unwrap();
}

#[test]
fn a_failing_archive_command_counts_failures_per_segment_after_working_archiving() {
    let archive = tempfile::tempdir().unwrap();
    crate::support::cluster::chown_postgres(archive.path());
    // archive_command through ALTER SYSTEM: a -c setting on the command line would win over a later one.
    let db = Db::on(Cluster::start_with(&["archive_mode=on"]), "archiving");
    let mut c = db.client();
    set_archive_command(&mut c, &format!("cp %p {}/%f", archive.path().display()));
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();

    switch_segment(&mut c);
    wait_until("a segment is archived", || archiver(&mut c).0 >= 1.0);
    let (direct, m) = still(&exporter, || archiver(&mut c));
    assert_eq!(m.get("pg_archiver_archived_total", &[]), direct.0);
    assert_eq!(m.get("pg_archiver_failed_total", &[]), 0.0);
    assert_times("last archived", &[m.get("pg_archiver_last_archived_timestamp_seconds", &[])], &[direct.2.unwrap()]);
    assert!(m.find("pg_archiver_last_failed_timestamp_seconds", &[]).is_empty(), "no failure yet");
    assert_eq!(m.get("pg_settings_archive_mode_info", &[("archive_mode", "on")]), 1.0);

    set_archive_command(&mut c, "exit 1");
    let mut failed = 0.0;
    for round in 0..2 {
        switch_segment(&mut c);
        wait_until("the archiver fails on the new segment", || archiver(&mut c).1 > failed);
        // The archiver retries a failing segment a few times in a row: wait until it rests.
        let (direct, m) = still(&exporter, || {
            std::thread::sleep(Duration::from_millis(1500));
            archiver(&mut c)
        });
        let now = m.get("pg_archiver_failed_total", &[]);
        assert_eq!(now, direct.1, "round {round}");
        assert!(now > failed, "round {round}: failures {now} after {failed}");
        failed = now;
        let last_failed = m.get("pg_archiver_last_failed_timestamp_seconds", &[]);
        let last_archived = m.get("pg_archiver_last_archived_timestamp_seconds", &[]);
        assert_times(
            "last failed, last archived",
            &[last_failed, last_archived],
            &[direct.3.unwrap(), direct.2.unwrap()],
        );
        assert!(last_failed > last_archived, "round {round}: last failure {last_failed} not after {last_archived}");
        assert_eq!(m.get("pg_archiver_archived_total", &[]), direct.0);
    }
}

// ---------------------------------------------------------------- slots

/// The slot as an operator reads it: retained bytes, safe_wal_size, active, wal_status.
fn slot(c: &mut postgres::Client) -> (f64, f64, bool, String) {
    let r = c
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8, safe_wal_size::float8, active, wal_status
             FROM pg_replication_slots WHERE slot_name = 'unused'",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[test]
fn an_unused_physical_slot_retains_more_wal_each_round() {
    let db = Db::on(Cluster::start_with(&["max_slot_wal_keep_size=1GB"]), "slot");
    let mut c = db.client();
    c.batch_execute("SELECT pg_create_physical_replication_slot('unused', true)").unwrap();
    let segment = scalar(&mut c, "SELECT pg_size_bytes(current_setting('wal_segment_size'))::float8");
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let labels = [("slot_name", "unused"), ("slot_type", "physical")];
    let mut last: Option<(f64, f64)> = None;
    for round in 0..3 {
        if round > 0 {
            // A switch moves to the next segment boundary: two of them are at least a whole segment.
            switch_segment(&mut c);
            switch_segment(&mut c);
        }
        let (direct, m) = still(&exporter, || slot(&mut c));
        let retained = m.get("pg_replication_slot_retained_wal_bytes", &labels);
        let safe = m.get("pg_replication_slot_safe_wal_size_bytes", &labels);
        assert_eq!((retained, safe), (direct.0, direct.1), "round {round}");
        assert!(!direct.2);
        assert_eq!(m.get("pg_replication_slot_active", &labels), 0.0);
        let status = [("slot_name", "unused"), ("slot_type", "physical"), ("wal_status", direct.3.as_str())];
        assert_eq!(m.get("pg_replication_slot_wal_status", &status), 1.0);
        if let Some((before, safe_before)) = last {
            assert!(retained >= before + segment, "round {round}: retained {retained} after {before}");
            assert!(safe < safe_before, "round {round}: safe_wal_size {safe} after {safe_before}");
        }
        last = Some((retained, safe));
    }
}

// ---------------------------------------------------------------- checksums

/// pg_stat_database.checksum_failures per database (NULL without checksums).
fn checksum_failures(c: &mut postgres::Client) -> BTreeMap<String, Option<f64>> {
    c.query("SELECT coalesce(datname, ''), checksum_failures::float8 FROM pg_stat_database", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_corrupted_page_counts_as_a_checksum_failure_once_read() {
    let mut db = Db::on(Cluster::start_with_checksums(&[]), "checksums");
    db.client()
        .batch_execute("CREATE TABLE victim AS SELECT g AS id, repeat('x', 50) AS pad FROM generate_series(1, 100) g")
        .unwrap();
    let name = db.name.clone();
    db.cluster().corrupt_first_page(&name, "victim");
    let mut c = db.client();
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();

    let (direct, m) = still(&exporter, || checksum_failures(&mut c));
    assert_eq!(m.get("pg_settings_data_checksums", &[]), 1.0);
    for (datname, n) in &direct {
        assert_eq!(*n, Some(0.0), "{datname}");
        assert_eq!(m.get("pg_database_checksum_failures_total", &[("datname", datname)]), 0.0, "{datname}");
    }
    assert!(m.find("pg_database_checksum_last_failure_timestamp_seconds", &[]).is_empty());

    let err = c.batch_execute("SELECT count(*) FROM victim").expect_err("reading the corrupt page");
    let text = err.as_db_error().map_or_else(|| err.to_string(), |e| e.message().to_owned());
    assert!(text.contains("invalid page"), "{text}");
    wait_until("the exporter counts the failure", || {
        exporter.metrics().find("pg_database_checksum_failures_total", &[("datname", &name)]) == vec![1.0]
    });
    let (direct, m) = still(&exporter, || {
        let last = scalar(
            &mut c,
            "SELECT extract(epoch FROM checksum_last_failure)::float8 FROM pg_stat_database WHERE datname = current_database()",
        );
        (checksum_failures(&mut c), last)
    });
    for (datname, n) in &direct.0 {
        let want = if *datname == name { 1.0 } else { 0.0 };
        assert_eq!(*n, Some(want), "{datname}");
        assert_eq!(m.get("pg_database_checksum_failures_total", &[("datname", datname)]), want, "{datname}");
    }
    assert_eq!(m.find("pg_database_checksum_last_failure_timestamp_seconds", &[]).len(), 1, "only {name} failed");
    let last = m.get("pg_database_checksum_last_failure_timestamp_seconds", &[("datname", &name)]);
    assert_times("last checksum failure", &[last], &[direct.1]);
}

// ---------------------------------------------------------------- restarts

/// (postmaster start, checkpointer start) as Unix times.
fn start_times(c: &mut postgres::Client) -> (f64, f64) {
    let r = c
        .query_one(
            "SELECT extract(epoch FROM pg_postmaster_start_time())::float8,
                    (SELECT extract(epoch FROM backend_start)::float8 FROM pg_stat_activity WHERE backend_type = 'checkpointer')",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

fn served_start_times(m: &Metrics) -> (f64, f64) {
    (m.get("pg_postmaster_start_time_seconds", &[]), m.get("pg_checkpointer_start_time_seconds", &[]))
}

/// Scrapes until the exporter serves `want` (it reconnects after a restart).
fn wait_served(exporter: &Exporter, what: &str, want: (f64, f64)) {
    let mut got = None;
    let ok = eventually(WAIT, || {
        let m = exporter.metrics();
        got = (m.find("pg_up", &[]) == vec![1.0] && m.has("pg_checkpointer_start_time_seconds"))
            .then(|| served_start_times(&m));
        got.is_some_and(|g| same_time(g.0, want.0) && same_time(g.1, want.1))
    });
    assert!(ok, "{what}: the exporter serves {got:?}, the server says {want:?}");
}

#[test]
fn a_restart_changes_the_start_time_and_a_crash_only_the_checkpointers() {
    // Durable, so that the crash keeps pg_stat_statements (see `Cluster::crash_a_backend`).
    let mut db = Db::on(Cluster::start_with(&["fsync=on", "synchronous_commit=on"]), "restarts");
    let exporter = Exporter::with(&shipped_text()).db(&db.url).start();
    let first = start_times(&mut db.client());
    let served = served_start_times(&exporter.metrics());
    assert_times("start times", &[served.0, served.1], &[first.0, first.1]);

    db.cluster().crash_a_backend();
    let crashed = start_times(&mut db.client());
    assert_eq!(crashed.0, first.0, "a crash restart keeps the postmaster's start time");
    assert!(crashed.1 > first.1, "the checkpointer started again: {crashed:?} after {first:?}");
    wait_served(&exporter, "after the crash", crashed);

    let cluster = db.cluster();
    cluster.stop();
    cluster.launch();
    let restarted = start_times(&mut db.client());
    assert!(restarted.0 > crashed.0 && restarted.1 > crashed.1, "{restarted:?} after {crashed:?}");
    wait_served(&exporter, "after the restart", restarted);

    // Started again with a stray standby.signal: the same server is now in recovery.
    db.cluster().restart_in_recovery(None);
    let mut c = db.client();
    assert_eq!(scalar(&mut c, "SELECT pg_is_in_recovery()::int::float8"), 1.0);
    let cat = shipped();
    // The role gates follow the server's facts, which a scrape may reuse for up to a second (PROBE_REUSE): wait
    // until the replica-only query is no longer skipped as well.
    wait_until("the exporter sees the server in recovery", || {
        let m = exporter.metrics();
        m.find("pg_in_recovery", &[]) == vec![1.0]
            && m.find("runbook_exporter_query_skipped", &[("query", "replication_receiver")]).is_empty()
    });
    assert_catalogue_healthy(&cat, &exporter.metrics(), &exporter, &mut c);
}

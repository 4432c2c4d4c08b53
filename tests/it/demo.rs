//! `scripts/demo.sh` as a user starts it in the background (`scripts/demo.sh &`, where the shell ignores SIGINT
//! for it): it comes up with the banner listing every URL and the next commands, serves `pg_up 1`, and two quick
//! SIGINTs stop everything it started and remove its temporary directory. It runs the suite's own exporter
//! (`DEMO_EXPORTER`) on a small seed, with Prometheus and Alertmanager when they are installed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::cluster::pg_bin;
use crate::support::data::root;
use crate::support::exposition::Metrics;
use crate::support::http::{Client, Reply};
use crate::support::process::{Guard, signal};
use crate::support::{eventually, free_port};

/// Longest the demo may take to print its banner (initdb, a small seed, a dump, Prometheus and Alertmanager).
const UP: Duration = Duration::from_secs(180);
/// Longest its cleanup may take after the second SIGINT (each process group gets TERM, then KILL after 10 s).
const DOWN: Duration = Duration::from_secs(60);

#[test]
fn the_demo_started_in_the_background_shows_every_url_and_two_sigints_stop_it_all() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("env");
    // As `scripts/demo.sh &` from a non-interactive shell: SIGINT ignored on entry.
    cmd.args(["--ignore-signal=INT", "bash", "scripts/demo.sh"])
        .current_dir(root())
        .env("PG_BIN", pg_bin())
        .env("DEMO_EXPORTER", env!("CARGO_BIN_EXE_runbook-exporter"))
        .env("DEMO_SEED_SCALE", "0.02")
        .env("DEMO_LISTEN", &listen)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut demo = Guard::spawn("scripts/demo.sh", &mut cmd, "TERM");
    let stderr = demo.child().stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    // Reads to the end even when the test no longer listens: a closed pipe would be the demo's SIGPIPE.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    let read_until = |log: &mut Vec<String>, wanted: &dyn Fn(&str) -> bool, bound: Duration| {
        let start = Instant::now();
        while let Some(left) = bound.checked_sub(start.elapsed()) {
            match received.recv_timeout(left) {
                Ok(line) => {
                    let found = wanted(&line);
                    log.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };

    let up = read_until(&mut log, &|l| l.contains("Ctrl-C stops"), UP);
    assert!(up, "no banner within {UP:?}:\n{}", log.join("\n"));
    let text = log.join("\n");
    let tmp: PathBuf = text
        .lines()
        .find_map(|l| l.strip_prefix("demo: initdb in ")?.strip_suffix("/data"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the demo did not say where its temporary directory is:\n{text}"));
    for part in ["Metrics:", "Landing page:", "Prometheus:", "Alertmanager:", "Alert sink:", "Next commands to try:"] {
        assert!(text.contains(part), "the banner has no {part:?}:\n{text}");
    }
    assert!(text.contains(&format!("http://{listen}/metrics")), "{text}");
    // The exporter starts right after the banner.
    let serving = eventually(Duration::from_secs(30), || {
        match Client::new(Duration::from_secs(5)).get(&format!("http://{listen}/metrics"), &[]).0 {
            Reply::Answer(200, body) => Metrics::parse(&body).find("pg_up", &[]) == vec![1.0],
            _ => false,
        }
    });
    assert!(serving, "the demo's exporter does not serve pg_up 1:\n{text}");

    // Two Ctrl-Cs in quick succession: the second must not cut the cleanup short.
    signal(demo.pid(), "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(demo.pid(), "INT");
    let status = demo.wait_within(DOWN);
    let _ = read_until(&mut log, &|_| false, Duration::from_secs(2));
    let text = log.join("\n");
    assert!(status.is_some(), "the demo still runs {DOWN:?} after two SIGINTs:\n{text}");
    assert!(text.contains(&format!("demo: removed {}", tmp.display())), "{text}");
    assert!(!tmp.exists(), "{} is left behind", tmp.display());
    // Nothing it started runs on: no process has the temporary directory on its command line, and the exporter's
    // port is closed.
    let left = Command::new("pgrep").args(["-f", &tmp.display().to_string()]).output().unwrap();
    assert!(left.stdout.is_empty(), "processes left behind: {}", String::from_utf8_lossy(&left.stdout));
    assert!(std::net::TcpStream::connect(&listen).is_err(), "the exporter still listens on {listen}");
}

//! The status page `/`: each target (up, role, version, pool use, why it is
//! down) and each query (status, last run, series, result age, ttl, the last
//! error or the skip reason), as of the last scrape.
//!
//! One self-contained page: inline CSS, no script, no external asset, laid
//! out for a phone as well as a desktop. [`render`] is a pure function of the
//! running configuration and the last snapshots, so the page can be
//! compared byte for byte in tests.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use super::AppState;
use crate::catalogue::spoken_duration;
use crate::engine::{QuerySnapshot, Running, Status, TargetSnapshot, UnitSnapshot};
use crate::exposition::{Endpoint, Process};

pub(super) async fn handler(State(state): State<Arc<AppState>>) -> Html<String> {
    let running = state.current();
    let last = state.last.read().unwrap_or_else(|p| p.into_inner()).clone();
    Html(render(&running, &state.process(Endpoint::Probe), &last, &state.settings.telemetry_path))
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:.8em;color:#1b1f24;background:#fff}\
h1{font-size:1.4em;margin:.2em 0}h1 small{font-weight:normal;color:#57606a}h2{font-size:1.15em;margin:1.4em 0 .5em}\
h3{font-size:1em;margin:1em 0 .4em}code{font-size:.9em;word-break:break-all}a{color:#0550ae}\
.nav a{margin-right:.8em}.summary{background:#f6f8fa;border-radius:6px;padding:.5em .8em}\
.badge{display:inline-block;border-radius:1em;padding:0 .6em;font-size:.85em;font-weight:600;white-space:nowrap}\
.ok,.up{background:#dafbe1;color:#116329}.failed,.down,.warn{background:#ffebe9;color:#a40e26}\
.skipped,.idle{background:#fff8c5;color:#7d4e00}.cached{background:#ddf4ff;color:#0550ae}\
.target{border:1px solid #d0d7de;border-radius:6px;padding:.4em .8em;margin:.6em 0}\
.target dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1em .8em;margin:.4em 0}.target dt{color:#57606a}.target dd{margin:0;overflow-wrap:anywhere}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid #d0d7de;vertical-align:top}\
th{font-size:.85em;color:#57606a}td.detail{color:#57606a;font-size:.9em}tr.failed td.detail{color:#a40e26}\
@media (max-width:40em){thead{display:none}table,tbody,tr,td{display:block;width:auto}tr{border:1px solid #d0d7de;border-radius:6px;margin:.5em 0;padding:.3em .5em}\
td{border:0;padding:.15em 0}td[data-label]::before{content:attr(data-label) \": \";color:#57606a;font-size:.85em}td:empty{display:none}\
.target dl{display:block}.target dt{font-size:.85em;margin-top:.3em}}";

/// The page for `running`, with the last snapshot of each target by name.
pub fn render(
    running: &Running,
    process: &Process,
    last: &HashMap<String, TargetSnapshot>,
    telemetry_path: &str,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let reload = if process.last_reload_ok {
        "<span class=\"badge ok\">configuration loaded</span>"
    } else {
        "<span class=\"badge failed\">RELOAD FAILED: running the previous configuration</span>"
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>runbook-exporter</title><style>{STYLE}</style></head><body>\
         <h1>runbook-exporter <small>{version}</small></h1>\
         <p>revision {revision} · {reload}</p>\
         <p class=\"nav\"><a href=\"{path}\">Metrics</a><a href=\"/healthz\">Health</a><a href=\"/readyz\">Readiness</a></p>",
        version = escape(process.version),
        revision = escape(process.revision),
        path = escape(telemetry_path),
    );
    summary(&mut out, running, last);
    out.push_str("<h2>Targets</h2>");
    for t in &running.targets {
        target(&mut out, &t.name, &t.masked_dsn, last.get(&t.name));
    }
    let _ = write!(out, "<h2>Queries of <code>{}</code></h2>", escape(&running.catalogue.source));
    for t in &running.targets {
        match last.get(&t.name) {
            None => {
                let _ = write!(out, "<h3>{}</h3><p>Not scraped yet.</p>", escape(&t.name));
            }
            Some(snap) => {
                for unit in &snap.units {
                    queries(&mut out, running, &t.name, unit);
                }
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// One line: targets up, and queries by status over every target.
fn summary(out: &mut String, running: &Running, last: &HashMap<String, TargetSnapshot>) {
    let snaps: Vec<&TargetSnapshot> = running.targets.iter().filter_map(|t| last.get(&t.name)).collect();
    let up = snaps.iter().filter(|s| s.up).count();
    let all = snaps.iter().flat_map(|s| &s.units).flat_map(|u| &u.queries);
    let (mut ok, mut failed, mut skipped) = (0, 0, 0);
    for q in all {
        match q.status {
            Status::Served { .. } => ok += 1,
            Status::Failed(_) | Status::NotRun => failed += 1,
            Status::Skipped(_) => skipped += 1,
            Status::NotApplicable => {}
        }
    }
    let _ = write!(
        out,
        "<p class=\"summary\">{up} of {} target(s) up · {ok} query result(s) served, {failed} failed, {skipped} skipped</p>",
        running.targets.len()
    );
}

fn target(out: &mut String, name: &str, dsn: &str, snap: Option<&TargetSnapshot>) {
    let (class, state) = match snap {
        None => ("idle", "not scraped yet".to_owned()),
        Some(s) if s.up => ("up", "up".to_owned()),
        Some(_) => ("down", "DOWN".to_owned()),
    };
    let _ = write!(
        out,
        "<article class=\"target {class}\"><h3>{name} <span class=\"badge {class}\">{state}</span> \
         <a href=\"/probe?target={name}\">probe</a></h3><dl><dt>database</dt><dd><code>{dsn}</code></dd>",
        name = escape(name),
        dsn = escape(dsn)
    );
    if let Some(s) = snap {
        if let Some(f) = &s.facts {
            let role = if f.in_recovery { "replica (in recovery)" } else { "primary" };
            let _ = write!(out, "<dt>server</dt><dd>PostgreSQL {}, {role}</dd>", escape(&f.version));
            if !f.sees_all_sessions {
                let _ = write!(
                    out,
                    "<dt>privileges</dt><dd><span class=\"badge warn\">role {} cannot see other roles' sessions</span> \
                     GRANT pg_monitor to it</dd>",
                    escape(&f.role)
                );
            }
        }
        let p = &s.pool;
        let _ = write!(
            out,
            "<dt>connections</dt><dd>{} of {} open, {} idle, {} waiting</dd>",
            p.open, p.max, p.idle, p.waiting
        );
        let reason = s.down_because.as_deref().map_or_else(|| "none".to_owned(), escape);
        let _ = write!(out, "<dt>last probe error</dt><dd>{reason}</dd>");
        let failures: u64 = s.probe_errors.values().sum();
        let _ = write!(out, "<dt>failed connection attempts</dt><dd>{failures}</dd>");
    }
    out.push_str("</dl></article>");
}

/// The table of one unit's queries (those that run on it).
fn queries(out: &mut String, running: &Running, target: &str, unit: &UnitSnapshot) {
    let title = match &unit.datname {
        Some(db) => format!("{} / database {}", escape(target), escape(db)),
        None => escape(target),
    };
    let _ = write!(
        out,
        "<h3>{title}</h3><table><thead><tr><th>query</th><th>status</th><th>last run</th><th>series</th>\
         <th>result age</th><th>ttl</th><th>detail</th></tr></thead><tbody>"
    );
    for (q, query) in unit.queries.iter().zip(&running.catalogue.queries) {
        if matches!(q.status, Status::NotApplicable) {
            continue;
        }
        let (class, status, detail) = status(q);
        let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let (series, age) = match &q.status {
            Status::Served { result, age, .. } => {
                (result.series_count().to_string(), format!("{:.0} s", age.as_secs_f64()))
            }
            _ => ("0".to_owned(), "-".to_owned()),
        };
        let ttl = if query.ttl.is_zero() { "every scrape".to_owned() } else { spoken_duration(query.ttl) };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td data-label=\"query\"><b>{name}</b></td>\
             <td data-label=\"status\"><span class=\"badge {class}\">{status}</span></td>\
             <td data-label=\"last run\">{last}</td><td data-label=\"series\">{series}</td>\
             <td data-label=\"result age\">{age}</td><td data-label=\"ttl\">{ttl}</td>\
             <td class=\"detail\" data-label=\"detail\">{detail}</td></tr>",
            name = escape(&query.name),
            last = q.stats.last_duration.map_or_else(|| "-".to_owned(), ms),
        );
    }
    out.push_str("</tbody></table>");
}

/// The class, the status text and the detail (error, skip reason, or the query's help) of one query.
fn status(q: &QuerySnapshot) -> (&'static str, String, String) {
    match &q.status {
        Status::Served { cached: true, .. } => ("cached", "ok (cached)".to_owned(), String::new()),
        Status::Served { result, .. } if result.truncated_rows > 0 => {
            ("ok", "ok".to_owned(), format!("{} rows past max_series dropped", result.truncated_rows))
        }
        Status::Served { .. } => ("ok", "ok".to_owned(), String::new()),
        Status::Failed(kind) => {
            let detail = q.stats.last_error.as_deref().map_or_else(String::new, escape);
            ("failed", format!("failed: {}", kind.as_str()), detail)
        }
        Status::Skipped(reason) => ("skipped", "skipped".to_owned(), escape(reason)),
        Status::NotRun => ("failed", "not run".to_owned(), "the database is down".to_owned()),
        Status::NotApplicable => ("", String::new(), String::new()),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

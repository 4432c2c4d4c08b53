//! The properties the fuzzers check, shared by the proptest suite
//! (`it::fuzz`, run by CI on stable) and the cargo-fuzz targets under
//! `fuzz/` (nightly, libFuzzer). Each function panics when a property fails;
//! both harnesses turn a panic into a reported, minimised input.
//!
//! With `support/library.rs`, the only test code that calls the library.
//! The including module's parent must also declare `mod openmetrics` (`support/openmetrics.rs`) beside it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use runbook_exporter::catalogue::{self, MetricKind};
use runbook_exporter::config::dsn;
use runbook_exporter::db::decode::{Label, Sample, interval_seconds, numeric_to_f64};
use runbook_exporter::db::{PoolStats, QueryResult, Series};
use runbook_exporter::engine::{QuerySnapshot, QueryStats, Snapshot, Status, TargetSnapshot, UnitSnapshot};
use runbook_exporter::exposition::labels::render_label;
use runbook_exporter::exposition::{Endpoint, Format, Process, encode};
use tokio_postgres::types::{FromSql, Type};

use super::openmetrics::{self, Dialect};

/// Catalogue loader + validator: never panics; every error names the file and carries a line (and column) number;
/// a catalogue that loads has legal names and consistent families.
pub fn catalogue(text: &str) {
    match catalogue::parse(text, "fuzz.yaml") {
        Ok(cat) => {
            assert!(!cat.queries.is_empty(), "a catalogue without queries loaded");
            for f in &cat.families {
                assert!(catalogue::is_metric_name(&f.name), "illegal family name {:?} accepted", f.name);
                assert!(
                    !(f.kind == MetricKind::Gauge && f.name.ends_with("_total")),
                    "gauge {:?} ends in _total",
                    f.name
                );
                assert!(!f.name.starts_with(catalogue::SELF_PREFIX) && f.name != "pg_up", "reserved name {:?}", f.name);
                for l in &f.label_names {
                    assert!(catalogue::is_label_name(l), "illegal label name {l:?} accepted");
                }
                for s in &f.sources {
                    let m = &cat.queries[s.query].metrics[s.metric];
                    let mut labels: Vec<String> = m.label_columns.clone();
                    labels.extend(m.const_labels.iter().map(|(k, _)| k.clone()));
                    labels.sort();
                    assert_eq!(labels, f.label_names, "family {:?} fed with other labels", f.name);
                }
            }
            for q in &cat.queries {
                assert!(!q.timeout.is_zero() && !q.lock_timeout.is_zero(), "zero timeout accepted in {}", q.name);
                assert!(q.max_series >= 1, "max_series 0 accepted");
                for m in &q.metrics {
                    assert!(m.family < cat.families.len());
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml"), "error does not name the file: {shown}");
            match &e {
                catalogue::Error::Syntax { line, .. } => {
                    assert!(*line >= 1, "syntax error without a line: {shown:?}");
                }
                catalogue::Error::Invalid { diagnostics, .. } => {
                    assert!(!diagnostics.is_empty(), "invalid catalogue with no diagnostic");
                    for d in diagnostics {
                        assert!(d.line >= 1, "diagnostic without a line: {d:?} in {shown:?}");
                        assert!(!d.field.is_empty() && !d.message.is_empty(), "empty diagnostic {d:?}");
                    }
                }
                other => panic!("parse() returned an I/O error: {other}"),
            }
        }
    }
}

/// `password` percent-encoded as in a URL.
pub fn percent_encoded(password: &str) -> String {
    password
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A different password with the same shape: letters rotated by 13, digits by 5, everything else kept.
fn twin(password: &str) -> String {
    password
        .chars()
        .map(|c| match c {
            'a'..='z' => (b'a' + (c as u8 - b'a' + 13) % 26) as char,
            'A'..='Z' => (b'A' + (c as u8 - b'A' + 13) % 26) as char,
            '0'..='9' => (b'0' + (c as u8 - b'0' + 5) % 10) as char,
            c => c,
        })
        .collect()
}

/// What `resolve` shows for `template` with the password filled in: the error, or (when `well_formed`) the
/// masked form and `Debug`. `{PW}` stands for the password, `{PWENC}` for it percent-encoded, `{PWQ}` for it
/// escaped for a single-quoted key=value value.
fn dsn_shown(template: &str, password: &str, well_formed: bool) -> Option<String> {
    let url = template
        .replace("{PWENC}", &percent_encoded(password))
        .replace("{PWQ}", &password.replace('\\', "\\\\").replace('\'', "\\'"))
        .replace("{PW}", password);
    let source = dsn::Source { url: Some(&url), origin: "DATABASE_URL", ..Default::default() };
    match dsn::resolve(&source) {
        Ok(db) => {
            assert!(db.masked.starts_with("postgres://"), "masked form {:?}", db.masked);
            well_formed.then(|| format!("{} {:?}", db.masked, db))
        }
        Err(e) => Some(format!("{e} {e:?}")),
    }
}

/// DSN parser: never panics, and its error never contains the password (raw, percent-encoded or escaped).
/// With `well_formed` (the password sits in the password position of a URL or key=value string whose other
/// parts need no escaping) the masked form and `Debug` never contain it either.
///
/// A password counts as shown only if a twin password of the same shape is shown too when put in its place:
/// short passwords otherwise match fixed words of messages ("on st" in "connection string").
pub fn dsn(template: &str, password: &str, well_formed: bool) {
    let other = twin(password);
    if other.chars().zip(password.chars()).filter(|(a, b)| a != b).count() < 3 {
        return;
    }
    let (Some(shown), Some(shown_other)) =
        (dsn_shown(template, password, well_formed), dsn_shown(template, &other, well_formed))
    else {
        return;
    };
    let forms = |p: &str| {
        [p.to_owned(), percent_encoded(p), p.escape_debug().to_string(), format!("{:?}", p.escape_debug().to_string())]
    };
    for (needle, twin_needle) in forms(password).iter().zip(forms(&other).iter()) {
        if needle.len() >= 4 && shown.contains(needle.as_str()) && shown_other.contains(twin_needle.as_str()) {
            panic!("password {password:?} echoed as {needle:?} for {template:?}: {shown}");
        }
    }
}

/// Binary decoders: never panic on any input; a well-formed finite numeric never decodes to NaN.
pub fn decoders(raw: &[u8]) {
    let _ = numeric_to_f64(raw);
    if let Ok(v) = interval_seconds(raw) {
        assert!(v.is_finite(), "interval gave {v}");
    }
    for ty in [
        Type::NUMERIC,
        Type::INTERVAL,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::DATE,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::BOOL,
        Type::OID,
        Type::UUID,
        Type::INET,
        Type::CIDR,
        Type::JSONB,
        Type::CHAR,
        Type::TEXT,
    ] {
        let _ = Sample::from_sql(&ty, raw);
        let _ = Label::from_sql(&ty, raw);
    }
}

/// Encodes a numeric in PostgreSQL's binary form.
pub fn numeric_bytes(weight: i16, negative: bool, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(8 + 2 * digits.len());
    raw.extend_from_slice(&(digits.len() as u16).to_be_bytes());
    raw.extend_from_slice(&weight.to_be_bytes());
    raw.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    raw.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        raw.extend_from_slice(&d.to_be_bytes());
    }
    raw
}

/// A well-formed numeric (digits 0..=9999) decodes to the nearest f64 of its decimal value (±Inf past f64's range),
/// never NaN, and its label text is the same decimal.
pub fn numeric_value(weight: i16, negative: bool, dscale: u16, digits: &[u16]) {
    let raw = numeric_bytes(weight, negative, dscale, digits);
    let v = numeric_to_f64(&raw).unwrap_or_else(|e| panic!("well-formed numeric refused: {e}"));
    // The exact decimal value as text, parsed by Rust's correctly rounded parser.
    let mut text = String::from(if negative { "-0." } else { "0." });
    for d in digits {
        text.push_str(&format!("{d:04}"));
    }
    if digits.is_empty() {
        text.push('0');
    }
    text.push_str(&format!("e{}", (i32::from(weight) + 1) * 4));
    let expected: f64 = text.parse().unwrap();
    assert!(!v.is_nan(), "numeric {text} decoded to NaN (weight {weight}, digits {digits:?})");
    if expected.is_infinite() || v.is_infinite() {
        // At the very edge of f64's range rounding may go either way.
        let edge = v.abs().min(expected.abs()) > 1e307;
        assert!(v == expected || edge, "numeric {text}: got {v}, expected {expected}");
    } else {
        let tolerance = expected.abs() * 1e-12 + f64::MIN_POSITIVE;
        assert!((v - expected).abs() <= tolerance, "numeric {text}: got {v:e}, expected {expected:e}");
    }
    let Label(label) = Label::from_sql(&Type::NUMERIC, &raw).unwrap();
    assert!(!label.is_empty());
}

const CATALOGUE_HEAD: &str = "queries:\n";

/// One family to expose: name, counter or gauge, HELP text, label names, rows (label values, value).
#[derive(Debug, Clone)]
pub struct FamilySpec {
    pub name: String,
    pub counter: bool,
    pub help: String,
    pub labels: Vec<String>,
    pub rows: Vec<(Vec<String>, f64)>,
}

/// Exposition encoder: for any HELP text, label values and sample values, both formats pass the strict grammar
/// check, and HELP, label values and values read back exactly as they went in.
pub fn exposition(families: &[FamilySpec], target_label: Option<&str>) {
    // A catalogue with one query per family gives the encoder its names and kinds; HELP is set afterwards so
    // that any text (also what YAML could not carry) reaches the encoder.
    let mut yaml = String::from(CATALOGUE_HEAD);
    for (i, f) in families.iter().enumerate() {
        let kind = if f.counter { "counter" } else { "gauge" };
        yaml.push_str(&format!(
            "  q{i}:\n    help: h\n    sql: SELECT 1\n    metrics: [{{name: \"{}\", type: {kind}, value: fuzz_value_col, labels: [{}]}}]\n",
            f.name,
            f.labels.iter().map(|l| format!("\"{l}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut cat =
        catalogue::parse(&yaml, "fuzz.yaml").unwrap_or_else(|e| panic!("generated catalogue refused: {e}\n{yaml}"));
    let mut queries = Vec::new();
    for (i, f) in families.iter().enumerate() {
        cat.families[i].help = f.help.clone();
        let series: Vec<Series> = f
            .rows
            .iter()
            .map(|(values, v)| {
                let mut labels = String::new();
                for (name, value) in f.labels.iter().zip(values) {
                    if !labels.is_empty() {
                        labels.push(',');
                    }
                    labels.push_str(&render_label(name, value));
                }
                if let Some(t) = target_label {
                    if !labels.is_empty() {
                        labels.push(',');
                    }
                    labels.push_str(&render_label("target", t));
                }
                Series { labels: labels.into_boxed_str(), value: *v }
            })
            .collect();
        let rows = series.len();
        let result = Arc::new(QueryResult { series: vec![series], rows, null_values: 0, truncated_rows: 0 });
        queries.push(QuerySnapshot {
            status: Status::Served { result, age: Duration::from_millis(1500), cached: true },
            stats: QueryStats::default(),
        });
    }
    let label = target_label.map(|t| render_label("target", t));
    let target = TargetSnapshot {
        label: label.clone(),
        up: true,
        facts: None,
        down_because: None,
        units: vec![UnitSnapshot { datname: None, label, queries }],
        pool: PoolStats { max: 2, open: 1, idle: 1, waiting: 0 },
        probe_errors: Default::default(),
    };
    let snapshot = Snapshot {
        catalogue: Arc::new(cat),
        targets: vec![target],
        files: Vec::new(),
        duration: Duration::from_millis(3),
    };
    let process = Process {
        version: "fuzz",
        revision: "fuzz\"\\\n",
        last_reload_ok: true,
        last_reload_success: 0.0,
        started_at: 0.0,
        resources: None,
        http: Default::default(),
    };
    for (format, dialect) in [(Format::OpenMetrics, Dialect::OpenMetrics), (Format::PrometheusText, Dialect::Text004)] {
        let text = encode(&snapshot, &process, format, Endpoint::Metrics);
        let (samples, helps) = openmetrics::check_with_help(&text, dialect)
            .unwrap_or_else(|e| panic!("{dialect:?} output rejected: {e}\n{text}"));
        for f in families {
            let family_name =
                if f.counter && dialect == Dialect::Text004 { format!("{}_total", f.name) } else { f.name.clone() };
            let sample_name = if f.counter { format!("{}_total", f.name) } else { f.name.clone() };
            if !f.rows.is_empty() {
                let help = helps.iter().find(|(n, _)| *n == family_name).map(|(_, h)| h.as_str());
                assert_eq!(help, Some(f.help.as_str()), "{dialect:?}: HELP of {family_name} changed\n{text}");
            }
            let got: Vec<&openmetrics::Sample> = samples.iter().filter(|s| s.name == sample_name).collect();
            assert_eq!(got.len(), f.rows.len(), "{dialect:?}: samples of {sample_name}\n{text}");
            for ((values, v), s) in f.rows.iter().zip(got) {
                let mut want: Vec<(String, String)> = f.labels.iter().cloned().zip(values.iter().cloned()).collect();
                if let Some(t) = target_label {
                    want.push(("target".into(), t.to_owned()));
                }
                assert_eq!(s.labels, want, "{dialect:?}: labels changed\n{text}");
                let back = s.number();
                assert!(back == *v || (back.is_nan() && v.is_nan()), "{dialect:?}: value {v:?} came back as {back:?}");
            }
        }
    }
}

/// Replays every file under `dir` through `check`; returns how many there were.
pub fn replay(dir: &Path, check: impl Fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        assert!(outcome.is_ok(), "regression input {} fails again", f.display());
    }
    files.len()
}

/// Splits a raw fuzz input into a template and a password: `password \0 template`, where `{PW}`, `{PWENC}` and
/// `{PWQ}` in the template stand for the password (see [`dsn`]).
pub fn dsn_from_bytes(data: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(data).ok()?;
    let (password, template) = text.split_once('\0')?;
    if password.len() < 4
        || template.contains(password)
        || template.contains(&twin(password))
        || password.contains("PW")
    {
        return None;
    }
    Some((template.to_owned(), password.to_owned()))
}

/// Turns raw fuzz bytes into families for [`exposition`]: HELP text and label values are arbitrary UTF-8 pieces.
pub fn families_from_bytes(data: &[u8]) -> Vec<FamilySpec> {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let mut families = Vec::new();
    for i in 0..3 {
        let Some(help) = parts.next() else { break };
        let mut rows = Vec::new();
        for j in 0..3 {
            let Some(value) = parts.next() else { break };
            if rows.iter().any(|(v, _): &(Vec<String>, f64)| v[0] == value) {
                continue;
            }
            let x = match j {
                0 => f64::NAN,
                1 => value.len() as f64 * -1.5e-300,
                _ => f64::INFINITY,
            };
            rows.push((vec![value.to_owned(), format!("{i}{j}")], x));
        }
        families.push(FamilySpec {
            name: format!("fuzz_family_{i}"),
            counter: i == 1,
            help: help.to_owned(),
            labels: vec!["value".into(), "row".into()],
            rows,
        });
    }
    families
}

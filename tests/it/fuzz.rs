//! Property-based fuzzing on the stable toolchain, so CI runs it on every
//! change: the catalogue loader and validator, the DSN parser, the binary
//! decoders and the exposition encoder (checked by a strict grammar).
//!
//! Cases per property: 2000 by default (about half a minute for the whole
//! file in a debug build on 2 cores); `FUZZ_CASES=N` overrides it. A failing
//! case is shrunk and saved under `tests/fuzz-regressions/proptest/`, where
//! proptest replays it first on the next run. Inputs that crashed the
//! cargo-fuzz targets (`fuzz/`, `scripts/fuzz.sh`) are kept as files under
//! `tests/fuzz-regressions/<target>/` and replayed by `regressions_replay`.
//! The properties themselves live in `support/fuzz_checks.rs`, shared
//! with the cargo-fuzz targets.

use std::path::Path;

use crate::support::fuzz_checks::{self as checks, FamilySpec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn config(persist: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persist))),
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

// --- catalogue ---------------------------------------------------------------

/// Catalogues the mutations start from (besides queries.yaml); scripts/fuzz.sh adds them to the cargo-fuzz corpus.
const SEEDS: &[&str] = &[
    include_str!("../data/fuzz-seeds/connections.yaml"),
    include_str!("../data/fuzz-seeds/every_field.yaml"),
    include_str!("../data/fuzz-seeds/shared_family.yaml"),
    include_str!("../data/fuzz-seeds/anchors.yaml"),
];

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "&a ",
    "*a",
    "&b [*a, *a]",
    "{",
    "}",
    "[",
    "]",
    "\n",
    "\n  ",
    "\n    ",
    "  ",
    "\t",
    "# c",
    "\"",
    "'",
    "|",
    "|-",
    ">",
    "!!str ",
    "!!binary ",
    "!tag ",
    "<<: *a",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\\u0000",
    "\\x",
    "~",
    "null",
    "0x1F",
    "1e999",
    "-1",
    "0",
    "99999999999999999999",
    "1_000",
    "_total",
    "pg_up",
    "runbook_exporter_x",
    "__name",
    "counter",
    "gauge",
    "histogram",
    "0s",
    "-5s",
    "5 years",
    "18446744073709551616ms",
    "pg_terminate_backend(",
    "nextval(",
    "lo_import(",
    "queries:",
    "metrics:",
    "labels:",
    "const_labels:",
    "requires:",
    "targets:",
    "defaults:",
    "?",
    "? key\n: value",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "\r\n",
    "\r",
    "é",
    "\u{10FFFF}",
    "\0",
];

fn mutated_catalogue() -> impl Strategy<Value = String> {
    let op = (any::<Index>(), 0u8..6, any::<Index>(), any::<char>(), any::<Index>());
    (0..SEEDS.len() + 1, prop::collection::vec(op, 0..10)).prop_map(|(seed, ops)| {
        let base = if seed == SEEDS.len() { include_str!("../../queries.yaml") } else { SEEDS[seed] };
        let mut text: Vec<char> = base.chars().collect();
        for (pos, op, tok, ch, other) in ops {
            let i = pos.index(text.len() + 1);
            match op {
                0 => text.insert(i, ch),
                1 if i < text.len() => {
                    text.remove(i);
                }
                2 if i < text.len() => text[i] = ch,
                3 | 4 => {
                    for (k, c) in TOKENS[tok.index(TOKENS.len())].chars().enumerate() {
                        text.insert(i + k, c);
                    }
                }
                _ => {
                    // Copy a slice of the text somewhere else (duplicate keys, repeated blocks).
                    let j = other.index(text.len() + 1);
                    let (a, b) = (i.min(j), i.max(j).min(i.min(j) + 200));
                    let piece: Vec<char> = text[a..b].to_vec();
                    let at = tok.index(text.len() + 1);
                    for (k, c) in piece.into_iter().enumerate() {
                        text.insert(at + k, c);
                    }
                }
            }
        }
        text.into_iter().collect()
    })
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,10}",
        "[a-zA-Z0-9_:\\-. ]{0,12}",
        any::<String>(),
        Just("_total".to_owned()),
        Just("pg_up".to_owned()),
        Just("runbook_exporter_up".to_owned()),
        Just("__reserved".to_owned()),
        Just("x_total".to_owned()),
        Just(String::new()),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}(ms|s|m|h)",
        Just("0s".to_owned()),
        Just("-1s".to_owned()),
        "[a-z0-9 ]{0,6}",
        any::<String>()
    ]
}

/// A catalogue built field by field with legal and illegal values everywhere.
fn structured_catalogue() -> impl Strategy<Value = String> {
    let metric = (
        scalar(),
        prop_oneof![Just("gauge"), Just("counter"), Just("histogram"), Just("")],
        scalar(),
        prop::collection::vec(scalar(), 0..3),
        prop::collection::vec((scalar(), scalar()), 0..2),
        prop::option::of(scalar()),
    );
    let query = (
        scalar(),
        scalar(),
        prop_oneof![
            Just("SELECT 1 AS v".to_owned()),
            Just("SELECT pg_terminate_backend(1) AS v".to_owned()),
            Just("SELECT nextval('s') AS v".to_owned()),
            Just(String::new()),
            any::<String>()
        ],
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(any::<i64>()),
        prop::option::of((any::<i64>(), any::<i64>())),
        prop::collection::vec(metric, 0..3),
        prop::collection::vec(scalar(), 0..2),
    );
    (
        prop::option::of((duration(), any::<i64>())),
        prop::collection::vec(scalar(), 0..3),
        prop::collection::vec(query, 0..4),
    )
        .prop_map(|(defaults, targets, queries)| {
            let mut y = String::new();
            if let Some((d, n)) = defaults {
                y.push_str(&format!("defaults: {{timeout: {}, max_series: {n}}}\n", json(&d)));
            }
            if !targets.is_empty() {
                y.push_str("targets:\n");
                for t in &targets {
                    y.push_str(&format!("  {}: {{url: \"postgres://u@h/d\"}}\n", json(t)));
                }
            }
            y.push_str("queries:\n");
            for (name, help, sql, timeout, ttl, max_series, versions, metrics, qtargets) in queries {
                y.push_str(&format!("  {}:\n    help: {}\n    sql: {}\n", json(&name), json(&help), json(&sql)));
                if let Some(t) = timeout {
                    y.push_str(&format!("    timeout: {}\n", json(&t)));
                }
                if let Some(t) = ttl {
                    y.push_str(&format!("    ttl: {}\n", json(&t)));
                }
                if let Some(n) = max_series {
                    y.push_str(&format!("    max_series: {n}\n"));
                }
                if let Some((min, max)) = versions {
                    y.push_str(&format!("    requires: {{min_version: {min}, max_version: {max}}}\n"));
                }
                if !qtargets.is_empty() {
                    let list: Vec<String> = qtargets.iter().map(|t| json(t)).collect();
                    y.push_str(&format!("    targets: [{}]\n", list.join(", ")));
                }
                y.push_str("    metrics:\n");
                for (mname, kind, value, labels, consts, help) in metrics {
                    let labels: Vec<String> = labels.iter().map(|l| json(l)).collect();
                    let consts: Vec<String> = consts.iter().map(|(k, v)| format!("{}: {}", json(k), json(v))).collect();
                    y.push_str(&format!(
                        "      - {{name: {}, type: {}, value: {}, labels: [{}], const_labels: {{{}}}{}}}\n",
                        json(&mname),
                        json(kind),
                        json(&value),
                        labels.join(", "),
                        consts.join(", "),
                        help.map(|h| format!(", help: {}", json(&h))).unwrap_or_default()
                    ));
                }
            }
            y
        })
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/catalogue_mutated.txt"))]
    #[test]
    fn catalogue_mutated_never_panics_and_errors_carry_a_line(text in mutated_catalogue()) {
        checks::catalogue(&text);
    }
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/catalogue_structured.txt"))]
    #[test]
    fn catalogue_structured_never_panics_and_errors_carry_a_line(text in structured_catalogue()) {
        checks::catalogue(&text);
    }
}

// --- DSN -----------------------------------------------------------------------

/// Pieces of a URL: plain, or with the characters that make URL parsing fail.
fn part() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_.\\-]{0,10}", "[a-z0-9_.%@:/?=&' \\\\\\[\\]\\-]{0,10}", "[a-z]{0,3}=[a-z0-9%']{0,4}"]
}

/// Connection strings with the password in them; `{PW}`, `{PWENC}` and `{PWQ}` stand for the password (see
/// `checks::dsn`), the other names for the parts [`fill`] puts in.
const DSN_FORMS: [&str; 10] = [
    "postgres://{user}:{PW}@{host}:{port}/{db}?{params}",
    "postgresql://{user}:{PWENC}@{host}/{db}",
    "host={khost} user={kuser} password='{PWQ}' port={kport} dbname={kdb}",
    "host={khost} password='{PWQ}' {params}",
    "postgres://{user}@{host}:{port}/{db}?password={PWENC}&{params}",
    "postgres://{user}:{PWENC}@[{host}]:{port}/{db}",
    "postgres://{user}:{PWENC}@{host}:{port},{host}:{port}/{db}?sslmode={params}",
    "user={kuser} password='{PWQ}' {kdb}={khost}",
    // A mistyped scheme makes the whole string a key=value string.
    "postgress://{kuser}:{PWENC}@{khost}/{kdb} sslmode=disable",
    "postgresql//{kuser}:{PW}@{khost}/{kdb}",
];

/// Well-formed connection strings: the password in the password position, the other parts needing no escaping
/// (`u`, `h`, `d` are the percent-encoded user, host and database).
const WELL_FORMED_DSN_FORMS: [&str; 5] = [
    "postgres://{u}:{PWENC}@{h}:{port}/{d}",
    "postgresql://{u}:{PWENC}@{h}/{d}?sslmode=disable",
    "postgres://{u}@{h}:{port}/{d}?password={PWENC}",
    "host={host} user={user} password='{PWQ}' port={port} dbname={db}",
    "password='{PWQ}' host={host}",
];

/// `template` with every `{name}` of `parts` replaced by its value (values hold no braces).
fn fill(template: &str, parts: &[(&str, &String)]) -> String {
    parts.iter().fold(template.to_owned(), |t, (name, value)| t.replace(&format!("{{{name}}}"), value))
}

/// Values of the key=value form: never empty and without blanks or quotes, so that the password stays the
/// password (with `host= password=x` libpq and tokio-postgres both read `password=x` as the host).
fn kv() -> impl Strategy<Value = String> {
    "[a-z0-9_.%@:/?&\\-]{1,10}"
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/dsn.txt"))]
    #[test]
    fn dsn_never_panics_nor_echoes_the_password(
        password in "Zq[A-Za-z0-9!#$%^&*()_+=:/?'@ \\\\-]{4,14}",
        user in part(), host in part(), port in prop_oneof!["[0-9]{1,6}", "[a-z]{1,3}", Just(String::new())],
        db in part(), params in part(), form in 0u8..DSN_FORMS.len() as u8,
        (kuser, khost, kport, kdb) in (kv(), kv(), prop_oneof!["[0-9]{1,6}", "[a-z]{1,3}"], kv()),
    ) {
        prop_assume!(![&user, &host, &port, &db, &params, &kuser, &khost, &kdb].iter().any(|p| p.contains("Zq")));
        let parts = [
            ("user", &user), ("host", &host), ("port", &port), ("db", &db), ("params", &params),
            ("kuser", &kuser), ("khost", &khost), ("kport", &kport), ("kdb", &kdb),
        ];
        let template = fill(DSN_FORMS[usize::from(form)], &parts);
        checks::dsn(&template, &password, false);
    }
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/dsn_well_formed.txt"))]
    #[test]
    fn dsn_well_formed_never_shows_the_password(
        password in "Zq[A-Za-z0-9!#$%^&*()_+=:/?'@ \\\\-]{4,14}",
        (user, host, port, db) in (kv(), kv(), "[0-9]{1,5}", kv()),
        form in 0u8..WELL_FORMED_DSN_FORMS.len() as u8,
    ) {
        prop_assume!(![&user, &host, &db].iter().any(|p| p.contains("Zq")));
        let enc = |s: &str| checks::percent_encoded(s);
        let (u, h, d) = (enc(&user), enc(&host), enc(&db));
        let parts = [("u", &u), ("h", &h), ("d", &d), ("user", &user), ("host", &host), ("port", &port), ("db", &db)];
        let template = fill(WELL_FORMED_DSN_FORMS[usize::from(form)], &parts);
        checks::dsn(&template, &password, true);
    }
}

// --- decoders --------------------------------------------------------------------

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/decoders.txt"))]
    #[test]
    fn decoders_never_panic(raw in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 16..=16),
        (any::<u16>(), any::<i16>(), prop_oneof![Just(0u16), Just(0x4000), Just(0xC000), Just(0xD000), Just(0xF000), any::<u16>()],
         any::<u16>(), prop::collection::vec(any::<u16>(), 0..6))
            .prop_map(|(_, weight, sign, dscale, digits)| {
                let mut raw = checks::numeric_bytes(weight, false, dscale, &digits);
                raw[4..6].copy_from_slice(&sign.to_be_bytes());
                raw
            }),
    ]) {
        checks::decoders(&raw);
    }
}

fn weight() -> impl Strategy<Value = i16> {
    prop_oneof![-3i16..4, -90i16..90, any::<i16>()]
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/numeric_value.txt"))]
    #[test]
    fn numeric_decodes_to_its_value_never_nan(
        weight in weight(), negative in any::<bool>(), dscale in 0u16..40,
        first in 1u16..10000, middle in prop::collection::vec(prop_oneof![Just(0u16), 0u16..10000], 0..6), last in 1u16..10000,
        len in 0usize..2,
    ) {
        // What PostgreSQL sends: no leading or trailing zero digit groups, internal zeros allowed.
        let mut digits = vec![first];
        if len >= 1 {
            digits.extend(middle);
            digits.push(last);
        }
        checks::numeric_value(weight, negative, dscale, &digits);
    }
}

// --- exposition --------------------------------------------------------------------

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\\\\"\n\r\t a{}=,#\u{2028}\u{0}\u{85}é]{0,12}",
        Just("\\n".to_owned()),
        Just("\\\"".to_owned())
    ]
}

fn sample_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE / 4.0),
        Just(1e21),
        Just(9007199254740993.0)
    ]
}

fn family() -> impl Strategy<Value = FamilySpec> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,14}",
        any::<bool>(),
        text_value(),
        prop::collection::vec("[a-zA-Z_][a-zA-Z0-9_]{0,8}", 0..3),
        prop::collection::vec((prop::collection::vec(text_value(), 3), sample_value()), 0..4),
    )
        .prop_map(|(name, counter, help, labels, rows)| {
            let mut name = name;
            if name.ends_with("_total") || name.starts_with("runbook_exporter_") || name == "pg_up" {
                name.push_str("_x");
            }
            let mut label_names: Vec<String> = Vec::new();
            for l in labels {
                if !l.starts_with("__") && l != "target" && !label_names.contains(&l) {
                    label_names.push(l);
                }
            }
            let mut kept: Vec<(Vec<String>, f64)> = Vec::new();
            for (values, v) in rows {
                let values: Vec<String> = values.into_iter().take(label_names.len()).collect();
                if !kept.iter().any(|(k, _)| *k == values) {
                    kept.push((values, v));
                }
            }
            FamilySpec { name, counter, help, labels: label_names, rows: kept }
        })
}

proptest! {
    #![proptest_config(config("tests/fuzz-regressions/proptest/exposition.txt"))]
    #[test]
    fn exposition_is_strictly_valid_and_round_trips(
        families in prop::collection::vec(family(), 1..4),
        target in prop::option::of(text_value()),
    ) {
        let mut seen: Vec<String> = Vec::new();
        let mut unique = Vec::new();
        for f in families {
            if !seen.contains(&f.name) {
                seen.push(f.name.clone());
                unique.push(f);
            }
        }
        checks::exposition(&unique, target.as_deref());
    }
}

// --- regressions ------------------------------------------------------------------

/// Found by the numeric property: 1.00000001e316 is past f64's range and must be +Inf, as 1e316 is, not NaN
/// (`0 * 10000^78` is `0 * inf` in the digit sum). `SELECT '1.00000001e316'::numeric AS v` showed `NaN`.
#[test]
fn numeric_past_the_f64_range_is_infinite_not_nan() {
    checks::numeric_value(79, false, 0, &[1, 0, 1]);
    checks::numeric_value(79, true, 0, &[1, 0, 1]);
}

/// Found by cargo-fuzz (tests/fuzz-regressions/dsn/): with a mistyped scheme the string is read as key=value,
/// the driver's error quotes the first token, and the exporter only scrubs the input when it is quoted whole.
#[test]
fn dsn_error_for_a_mistyped_scheme_does_not_echo_the_password() {
    checks::dsn("postgress://u:{PW}@db.example/app sslmode=disable", "Secret-pw1", false);
    checks::dsn("postgress://u:{PW}@db.example/app", "Secret\"pw2", false);
}

/// Inputs that once crashed a cargo-fuzz target, replayed through the same checks.
#[test]
fn regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    n += checks::replay(&root.join("catalogue"), |b| checks::catalogue(&String::from_utf8_lossy(b)));
    n += checks::replay(&root.join("dsn"), |b| {
        if let Some((template, pw)) = checks::dsn_from_bytes(b) {
            checks::dsn(&template, &pw, false);
        }
    });
    n += checks::replay(&root.join("decoders"), checks::decoders);
    n += checks::replay(&root.join("exposition"), |b| checks::exposition(&checks::families_from_bytes(b), None));
    println!("replayed {n} regression input(s)");
}

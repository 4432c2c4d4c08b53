//! Checks `alerts/render.py`, the one configuration (`alerts/mixin.json`) that renders the rules, their
//! promtool tests and the dashboards: the shipped files are its default rendering byte for byte, a rendering
//! for another environment (job `pg`, an extra selector, other URLs, a changed threshold, another data source)
//! passes `promtool check rules` and every promtool unit test, and a bad configuration is refused naming the
//! field while nothing is written. The live proof of a non-default rendering is `e2e`.
//!
//! Needs python3 and promtool; a missing tool fails the test.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::assert_no_problems;
use crate::support::data::{files, read, root};
use crate::support::monitoring::{
    DASHBOARDS, RECORDS, RENDER_PY, RULE_TESTS, RULES, Rule, arr, dashboards_in, metric_names, mixin_default,
    render_mixin, rules_in, s,
};
use crate::support::tools::{output, promtool, python3, run};

/// The extra selector of the non-default rendering.
const LABEL: (&str, &str) = ("cluster", "eu1");
const JOB: &str = "pg";
const RUNBOOK: &str = "https://wiki.example.org/ops/runbook-database-operations.md";
/// Where render.py puts diagnostics.md when only the runbook's base is given: next to it.
pub const DIAGNOSTICS: &str = "https://wiki.example.org/ops/diagnostics.md";

/// The configuration of an environment that differs from the default in every field. The threshold moves
/// between the shipped tests' firing (95 %) and quiet values, so every shipped case still holds.
pub fn other_environment() -> Value {
    json!({
        "job": JOB,
        "selectors": {LABEL.0: LABEL.1},
        "thresholds": {"ConnectionsNearMax/page": 0.91},
        "runbook_base_url": RUNBOOK,
        "datasource": {"uid": "prom-eu1", "name": "Prometheus EU1"},
    })
}

/// The rendered files below `out`, relative to it, sorted.
fn rendered_files(out: &Path) -> Vec<String> {
    let mut list = Vec::new();
    for dir in ["alerts", RULE_TESTS, DASHBOARDS] {
        for e in std::fs::read_dir(out.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                list.push(format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    list.sort();
    list
}

/// Where a metric of `expr` is read without `matcher` in its selector: `metric` or `metric{...}` lacking it.
fn selectors_without(expr: &str, matcher: &str) -> Vec<String> {
    let mut out = Vec::new();
    for metric in metric_names(expr) {
        let mut from = 0;
        while let Some(i) = expr[from..].find(metric.as_str()).map(|i| i + from) {
            from = i + metric.len();
            let before = expr[..i].chars().next_back();
            let after = expr[from..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            // Inside a string (a label value) or part of a longer name: not a selector of this metric.
            if word(before) || word(after) || expr[..i].matches('"').count() % 2 == 1 {
                continue;
            }
            let rest = expr[from..].trim_start();
            let braces = rest.strip_prefix('{').and_then(|r| r.split_once('}')).map(|(body, _)| body);
            if rest.starts_with('(') {
                continue;
            }
            if !braces.is_some_and(|b| b.split(',').any(|m| m.trim() == matcher)) {
                out.push(format!("{metric} in {expr}"));
            }
        }
    }
    out
}

#[test]
fn the_default_configuration_renders_the_shipped_files_byte_for_byte() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    run(python3().arg(RENDER_PY).arg(&out));
    let shipped: Vec<String> = [RULES.to_owned(), RECORDS.to_owned()]
        .into_iter()
        .chain(
            files(RULE_TESTS, ".test.yml")
                .iter()
                .map(|p| format!("{RULE_TESTS}/{}", p.file_name().unwrap().to_string_lossy())),
        )
        .chain(
            files(DASHBOARDS, ".json")
                .iter()
                .map(|p| format!("{DASHBOARDS}/{}", p.file_name().unwrap().to_string_lossy())),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(rendered_files(&out), shipped, "render.py renders exactly the rules, the tests and the dashboards");
    let mut problems = Vec::new();
    for f in &shipped {
        if std::fs::read(out.join(f)).unwrap() != std::fs::read(root().join(f)).unwrap() {
            problems.push(format!("{f} differs from its default rendering (python3 {RENDER_PY} OUT; diff -r OUT .)"));
        }
    }
    assert_no_problems(&problems, "drift");
}

#[test]
fn another_environment_renders_rules_that_pass_promtool_and_every_unit_test() {
    let scratch = tempfile::tempdir().unwrap();
    let out = render_mixin(&other_environment(), scratch.path());
    let rules_path = out.join(RULES);
    let records_path = out.join(RECORDS);
    let checked = run(promtool().args(["check", "rules"]).arg(&records_path).arg(&rules_path));
    assert_eq!(checked.matches("SUCCESS").count(), 2, "promtool check rules:\n{checked}");
    let tests: Vec<_> =
        files(RULE_TESTS, ".test.yml").iter().map(|p| out.join(RULE_TESTS).join(p.file_name().unwrap())).collect();
    let tested = run(promtool().args(["test", "rules"]).args(&tests));
    assert_eq!(tested.matches("SUCCESS").count(), tests.len(), "promtool test rules:\n{tested}");

    let shipped: Vec<Rule> =
        rules_in(RULES, &read(RULES)).into_iter().chain(rules_in(RECORDS, &read(RECORDS))).collect();
    let rules_text = std::fs::read_to_string(&rules_path).unwrap();
    let rendered: Vec<Rule> = rules_in("rendered rules", &rules_text)
        .into_iter()
        .chain(rules_in("rendered records", &std::fs::read_to_string(&records_path).unwrap()))
        .collect();
    assert_eq!(rendered.len(), shipped.len());
    let matcher = format!("{}=\"{}\"", LABEL.0, LABEL.1);
    let mut problems = Vec::new();
    for (before, after) in shipped.iter().zip(&rendered) {
        let id = after.id();
        if after.labels.get(LABEL.0).map(String::as_str) != Some(LABEL.1) {
            problems.push(format!("{id}: no label {matcher}"));
        }
        problems.extend(selectors_without(after.expr(), &matcher).into_iter().map(|p| format!("{id}: {p}")));
        if let Some(url) = after.annotations.get("runbook_url") {
            let want = before.annotations["runbook_url"]
                .replace(&format!("{}#", mixin_default("runbook_base_url")), &format!("{RUNBOOK}#"))
                .replace(&format!("{}#", mixin_default("diagnostics_base_url")), &format!("{DIAGNOSTICS}#"));
            if *url != want || url == &before.annotations["runbook_url"] {
                problems.push(format!("{id}: runbook_url {url}, want {want}"));
            }
        }
        if before.hold != after.hold || before.annotations.get("summary") != after.annotations.get("summary") {
            problems.push(format!("{id}: for: or summary changed"));
        }
    }
    let page = rendered.iter().find(|r| r.id() == "alert ConnectionsNearMax/page").unwrap();
    assert!(page.expr().ends_with("> 0.91"), "the threshold is not rendered: {}", page.expr());
    let ticket = rendered.iter().find(|r| r.id() == "alert ConnectionsNearMax/ticket").unwrap();
    assert!(ticket.expr().ends_with("> 0.80"), "the other severity's threshold changed: {}", ticket.expr());
    for f in rendered_files(&out).iter().filter(|f| !f.starts_with(DASHBOARDS)) {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        for left in ["job=\"runbook-exporter\"", "job: \"runbook-exporter\"", &mixin_default("runbook_base_url")] {
            if text.contains(left) {
                problems.push(format!("{f}: still has {left}"));
            }
        }
    }
    assert_no_problems(&problems, "rendered rules");
}

#[test]
fn a_changed_threshold_is_what_promtool_evaluates() {
    // LongRunningTransaction's shipped tests keep a transaction open for 3600 s and expect no alert: under
    // a 3000 s threshold exactly those cases must fail, and nothing else.
    let scratch = tempfile::tempdir().unwrap();
    let mut config = other_environment();
    config["thresholds"] = json!({"LongRunningTransaction": 3000});
    let out = render_mixin(&config, scratch.path());
    let result = output(promtool().current_dir(out.join(RULE_TESTS)).args(["test", "rules", "transactions.test.yml"]));
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(!result.status.success(), "promtool passed with a 3000 s threshold:\n{text}");
    let failed: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("alertname: "))
        .map(|l| l.split(',').next().unwrap_or_default())
        .collect();
    assert_eq!(failed, BTreeSet::from(["LongRunningTransaction"]), "{text}");
}

#[test]
fn rendered_dashboards_read_every_metric_through_the_selectors_and_the_data_source() {
    let scratch = tempfile::tempdir().unwrap();
    let out = render_mixin(&other_environment(), scratch.path());
    let matcher = format!("{}=\"{}\"", LABEL.0, LABEL.1);
    let mut problems = Vec::new();
    let mut exprs = 0;
    let mut moved_lines = 0;
    for d in dashboards_in(&out) {
        let text = d.json.to_string();
        // The dashed line of ConnectionsNearMax's page follows its threshold (0.9 -> 0.91).
        for p in d.panels().into_iter().filter(|p| s(&p["description"]).contains("ConnectionsNearMax")) {
            let steps: Vec<f64> = arr(&p["fieldConfig"]["defaults"]["thresholds"]["steps"])
                .iter()
                .filter_map(|x| x["value"].as_f64())
                .collect();
            if steps.contains(&0.9) {
                problems.push(format!("{}: panel {:?} still draws 0.9", d.file, s(&p["title"])));
            }
            moved_lines += usize::from(steps.contains(&0.91));
        }
        if text.contains("runbook-exporter\\\"") {
            problems.push(format!("{}: still selects job runbook-exporter", d.file));
        }
        for p in d.panels() {
            for t in arr(&p["targets"]) {
                if let Some(expr) = t["expr"].as_str() {
                    exprs += 1;
                    problems.extend(selectors_without(expr, &matcher).into_iter().map(|x| format!("{}: {x}", d.file)));
                }
            }
        }
        for v in d.variables() {
            match s(&v["type"]) {
                "query" => {
                    for q in [s(&v["definition"]), s(&v["query"]["query"])] {
                        let selector = q.strip_prefix("label_values(").and_then(|r| r.rsplit_once(',')).map(|x| x.0);
                        match selector {
                            Some(sel) => problems.extend(selectors_without(sel, &matcher)),
                            None => problems.push(format!("{}: variable {} query {q:?}", d.file, s(&v["name"]))),
                        }
                    }
                }
                "datasource" if v["current"]["value"] != "prom-eu1" || v["current"]["text"] != "Prometheus EU1" => {
                    problems.push(format!("{}: datasource variable {}", d.file, v["current"]));
                }
                _ => {}
            }
        }
    }
    assert!(exprs > 50, "only {exprs} panel expressions");
    assert!(moved_lines > 0, "no panel draws ConnectionsNearMax's rendered threshold 0.91");
    assert_no_problems(&problems, "rendered dashboards");
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field_and_nothing_is_written() {
    let cases: &[(&str, &str)] = &[
        (
            "{\n  \"job\": \"pg\",\n  \"runbok_base_url\": \"https://x\"\n}",
            "mixin.json:3: runbok_base_url: unknown field",
        ),
        ("{\"job\": \"p\\\"g\"}", "mixin.json:1: job: must be"),
        ("{\"selectors\": {\"instance\": \"db1\"}}", "selectors.instance:"),
        ("{\"selectors\": {\"cluster\": \"e\\\"u\"}}", "selectors.cluster: must be"),
        ("{\"selectors\": {\"job\": \"other\"}}", "selectors.job: must equal `job`"),
        ("{\"runbook_base_url\": \"ftp://runbooks\"}", "runbook_base_url: must be an http"),
        ("{\"thresholds\": {\"LockWaits\": \"60\"}}", "thresholds.LockWaits: must be a number"),
        ("{\"thresholds\": {\"NoSuchAlert\": 1}}", "thresholds.NoSuchAlert: no alert of that name"),
        (
            "{\"thresholds\": {\"ConnectionsNearMax\": 0.5}}",
            "thresholds.ConnectionsNearMax: ConnectionsNearMax has 2 alerts",
        ),
        ("{\"thresholds\": {\"HighErrorRate\": 0.1}}", "thresholds.HighErrorRate: alert HighErrorRate/page"),
        ("{\"datasource\": {\"name\": \"Prometheus\"}}", "datasource: must be null or"),
        ("{\n  \"job\": \"pg\",\n  \"selectors\": {\"cluster\": }\n}", "mixin.json:3:28: not valid JSON"),
    ];
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("mixin.json");
    let out = scratch.path().join("out");
    let mut problems = Vec::new();
    for (text, want) in cases {
        std::fs::write(&config, text).unwrap();
        let result = output(python3().arg(RENDER_PY).arg("--config").arg(&config).arg(&out));
        let stderr = String::from_utf8_lossy(&result.stderr);
        if result.status.code() != Some(2) || !stderr.contains(want) || !stderr.contains(&config.display().to_string())
        {
            problems.push(format!("{text}\n    exit {:?}, stderr {stderr:?}, want {want:?}", result.status.code()));
        }
        if out.exists() {
            problems.push(format!("{text}\n    wrote {}", out.display()));
        }
    }
    assert_no_problems(&problems, "bad configurations");
}

//! Checks `alerts/` and `dashboards/`: the Prometheus rules, their promtool unit
//! tests, the Alertmanager example and the Grafana dashboards.
//!
//! Needs promtool and amtool (`apt-get install -y prometheus prometheus-alertmanager`);
//! a missing tool fails the test, it is never skipped. `PROMTOOL` / `AMTOOL`
//! override the binaries and `RUNBOOK_EXPORTER_ROOT` the repository root.
//!
//! YAML is read with the small parser at the bottom of this file (std and
//! serde_json only). It covers the subset these files use and reports anything
//! else as an error, so a file drifting outside it fails loudly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RULES: &str = "alerts/runbook-exporter.rules.yml";
const RECORDS: &str = "alerts/runbook-exporter.records.yml";
const RULE_TESTS: &str = "alerts/tests";
const ALERTMANAGER: &str = "alerts/alertmanager.example.yml";
const RENDER: &str = "alerts/render.sh";
const ALERTS_README: &str = "alerts/README.md";
const DASHBOARDS: &str = "dashboards";
const RUNBOOK: &str = "docs/runbook-database-operations.md";
const CATALOGUE: &str = "queries.yaml";
const INSTALL: &str = "apt-get install -y prometheus prometheus-alertmanager";

/// Metrics the exporter exposes about itself; the catalogue's come from queries.yaml.
const EXPORTER_METRICS: &[&str] = &[
    "pg_up",
    "runbook_exporter_scrape_duration_seconds",
    "runbook_exporter_query_duration_seconds",
    "runbook_exporter_query_success",
    "runbook_exporter_query_errors_total",
    "runbook_exporter_query_series",
    "runbook_exporter_query_skipped",
    "runbook_exporter_query_cache_hits_total",
    "runbook_exporter_query_executions_total",
    "runbook_exporter_query_result_age_seconds",
    "runbook_exporter_build_info",
    "runbook_exporter_config_last_reload_successful",
];

/// Alerts whose value is a constant (absent() gives 1, a failed state 0): their
/// annotations need not print `$value`.
const VALUE_FREE_ALERTS: &[&str] = &["ExporterAbsent", "CatalogueQueryFailing", "ExporterConfigReloadFailed"];

/// Template variables a dashboard expression may use (the end-to-end test substitutes exactly these).
const EXPR_VARIABLES: &[&str] = &["instance", "datname", "__rate_interval", "__interval", "__range"];

// ---------------------------------------------------------------- helpers

fn root() -> PathBuf {
    std::env::var_os("RUNBOOK_EXPORTER_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_yaml(rel: &str) -> Value {
    yaml::parse(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `name` from `$ENV_VAR` or `PATH`; panics with the install command when missing.
fn tool(name: &str, env_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH (or set {env_var}); install it with: {INSTALL}"))
}

fn promtool() -> Command {
    let mut c = Command::new(tool("promtool", "PROMTOOL"));
    c.current_dir(root());
    c
}

fn amtool() -> Command {
    let mut c = Command::new(tool("amtool", "AMTOOL"));
    c.current_dir(root());
    c
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, panics with its output unless it succeeds, returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("runbook-exporter-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let path = root().join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{suffix} in {dir}");
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Panics listing every problem, if there is any.
fn assert_none(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

/// One alerting rule of the rules file.
struct Alert {
    name: String,
    severity: String,
    /// The `for` duration, "–" when there is none (as the README table writes it).
    hold: String,
    expr: String,
    annotations: BTreeMap<String, String>,
}

fn alerts() -> Vec<Alert> {
    let doc = read_yaml(RULES);
    let mut out = Vec::new();
    for group in arr(&doc["groups"]) {
        for rule in arr(&group["rules"]) {
            let Some(name) = rule["alert"].as_str() else { continue };
            let annotations = rule["annotations"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v).to_owned())).collect())
                .unwrap_or_default();
            out.push(Alert {
                name: name.to_owned(),
                severity: s(&rule["labels"]["severity"]).to_owned(),
                hold: rule["for"].as_str().unwrap_or("–").to_owned(),
                expr: s(&rule["expr"]).to_owned(),
                annotations,
            });
        }
    }
    assert!(!out.is_empty(), "no alerts in {RULES}");
    out
}

/// `(record name, expr)` of every recording rule.
fn records() -> Vec<(String, String)> {
    let doc = read_yaml(RECORDS);
    let mut out = Vec::new();
    for group in arr(&doc["groups"]) {
        for rule in arr(&group["rules"]) {
            if let Some(name) = rule["record"].as_str() {
                out.push((name.to_owned(), s(&rule["expr"]).to_owned()));
            }
        }
    }
    assert!(!out.is_empty(), "no recording rules in {RECORDS}");
    out
}

/// The GitHub anchors of the runbook's headings (code blocks skipped).
fn runbook_anchors() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in read(RUNBOOK).lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim().to_lowercase();
        let slug: String = title
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.insert(slug);
    }
    out
}

/// The default base URL, defined once in render.sh.
fn default_runbook_base() -> String {
    let script = read(RENDER);
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix("DEFAULT_RUNBOOK_BASE_URL="))
        .unwrap_or_else(|| panic!("{RENDER} defines no DEFAULT_RUNBOOK_BASE_URL"));
    line.trim().trim_matches('\'').trim_matches('"').to_owned()
}

/// Metric names in a PromQL expression that this project owns (`pg_*`,
/// `ignition_*`, `runbook_exporter_*`) or that are recording rules (contain `:`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let owned = ["pg_", "ignition_", "runbook_exporter_"].iter().any(|p| word.starts_with(p));
            if owned || word.contains(':') {
                out.insert(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every metric name the exporter exposes: its own and the catalogue's
/// (counters end in `_total` whether or not the catalogue writes the suffix).
fn exposed_metrics() -> BTreeSet<String> {
    let catalogue = read_yaml(CATALOGUE);
    let mut out: BTreeSet<String> = EXPORTER_METRICS.iter().map(|m| (*m).to_owned()).collect();
    let queries = catalogue["queries"].as_object().unwrap_or_else(|| panic!("{CATALOGUE}: no queries"));
    for query in queries.values() {
        for metric in arr(&query["metrics"]) {
            let name = s(&metric["name"]);
            if s(&metric["type"]) == "counter" && !name.ends_with("_total") {
                out.insert(format!("{name}_total"));
            } else {
                out.insert(name.to_owned());
            }
        }
    }
    assert!(out.len() > EXPORTER_METRICS.len(), "{CATALOGUE} declares no metrics");
    out
}

/// A dashboard file, parsed.
struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    files(DASHBOARDS, ".json")
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", rel(&p)));
            Dashboard { file: rel(&p), json }
        })
        .collect()
}

/// All panels, including those nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in arr(&d["panels"]) {
        out.push(p);
        out.extend(arr(&p["panels"]));
    }
    out
}

fn is_layout_panel(p: &Value) -> bool {
    matches!(s(&p["type"]), "row" | "text")
}

/// `(where, expr)` of every panel target.
fn dashboard_exprs(d: &Dashboard) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(&d.json) {
        for t in arr(&p["targets"]) {
            let place = format!("{} / {:?} / {}", d.file, s(&p["title"]), s(&t["refId"]));
            out.push((place, s(&t["expr"]).to_owned()));
        }
    }
    out
}

/// Template variables referenced as `$name` or `${name}`.
fn variables(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String =
            rest.trim_start_matches('{').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.insert(name);
    }
    out
}

// ---------------------------------------------------------------- promtool / amtool

#[test]
fn promtool_check_rules_accepts_both_rule_files() {
    let out = run(promtool().args(["check", "rules", RECORDS, RULES]));
    assert_eq!(out.matches("SUCCESS").count(), 2, "promtool check rules:\n{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let tests = files(RULE_TESTS, ".test.yml");
    let out = run(promtool().args(["test", "rules"]).args(&tests));
    assert_eq!(out.matches("SUCCESS").count(), tests.len(), "promtool test rules:\n{out}");
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    run(amtool().args(["check-config", ALERTMANAGER]));
}

#[test]
fn alertmanager_routes_pages_to_the_pager_and_tickets_to_the_ticket_queue() {
    for (severity, receiver) in [("page", "pager"), ("ticket", "ticket"), ("unknown", "ticket")] {
        let config = format!("--config.file={ALERTMANAGER}");
        let label = format!("severity={severity}");
        let out = run(amtool().args(["config", "routes", "test", &config, &label, "alertname=PostgresDown"]));
        assert_eq!(out.trim(), receiver, "severity={severity} is routed to {out:?}");
    }
}

#[test]
fn alertmanager_groups_and_inhibits_per_instance() {
    let am = read_yaml(ALERTMANAGER);
    let group_by: Vec<&str> = arr(&am["route"]["group_by"]).iter().map(s).collect();
    assert_eq!(group_by, ["alertname", "instance"], "route.group_by");
    for source in ["PostgresDown", "ExporterDown"] {
        let matcher = format!("alertname=\"{source}\"");
        let rule = arr(&am["inhibit_rules"])
            .iter()
            .find(|r| arr(&r["source_matchers"]).iter().map(s).eq([matcher.as_str()]))
            .unwrap_or_else(|| panic!("no inhibit rule with source {matcher}"));
        let targets: Vec<&str> = arr(&rule["target_matchers"]).iter().map(s).collect();
        assert_eq!(targets, [format!("alertname!=\"{source}\"")], "{source} must inhibit every other alert");
        assert!(arr(&rule["equal"]).iter().any(|l| s(l) == "instance"), "{source} inhibits per instance");
    }
}

// ---------------------------------------------------------------- rules

#[test]
fn every_alert_has_a_severity_and_the_annotations() {
    let mut problems = Vec::new();
    for a in alerts() {
        if a.severity != "page" && a.severity != "ticket" {
            problems.push(format!("{}: severity {:?} is not page or ticket", a.name, a.severity));
        }
        for key in ["summary", "description", "runbook_url"] {
            if a.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{} ({}): no {key} annotation", a.name, a.severity));
            }
        }
        let text = format!("{} {}", a.annotations["summary"], a.annotations["description"]);
        if !text.contains("$labels.instance") && !text.contains("$labels.job") {
            problems.push(format!("{}: summary/description name neither the instance nor the job", a.name));
        }
        if !VALUE_FREE_ALERTS.contains(&a.name.as_str()) && !text.contains("$value") {
            problems.push(format!("{}: summary/description do not show $value", a.name));
        }
    }
    assert_none(&problems, "alert rules");
}

#[test]
fn runbook_urls_point_at_sections_of_the_runbook() {
    let anchors = runbook_anchors();
    assert!(anchors.contains("connection-leak") && anchors.contains("lock-contention"), "anchors: {anchors:?}");
    let base = default_runbook_base();
    let mut problems = Vec::new();
    for a in alerts() {
        let url = a.annotations.get("runbook_url").map_or("", String::as_str);
        match url.strip_prefix(&format!("{base}#")) {
            Some(anchor) if anchors.contains(anchor) => {}
            Some(anchor) => problems.push(format!("{}: #{anchor} is not a heading of {RUNBOOK}", a.name)),
            None => problems.push(format!("{}: runbook_url {url:?} does not start with {base}#", a.name)),
        }
    }
    assert_none(&problems, "runbook_url");
}

#[test]
fn alerts_for_lock_and_connection_problems_name_the_runbook_query() {
    for a in alerts() {
        let url = &a.annotations["runbook_url"];
        let query = if url.ends_with("#lock-contention") && a.name != "Deadlocks" {
            "\"Find blocked queries\""
        } else if url.ends_with("#connection-leak") {
            "\"Identify connections\""
        } else {
            continue;
        };
        assert!(a.annotations["description"].contains(query), "{}: description does not name {query}", a.name);
    }
}

#[test]
fn render_script_changes_only_the_runbook_base_url_and_the_job() {
    let scratch = Scratch::new("render");
    let out = scratch.0.join("rules");
    let new_base = "https://wiki.example.org/ops/runbook-database-operations";
    run(Command::new("sh")
        .arg(root().join(RENDER))
        .arg(&out)
        .env("RUNBOOK_BASE_URL", format!("{new_base}/"))
        .env("EXPORTER_JOB", "postgres-runbook"));

    let base = default_runbook_base();
    let original = read(RULES);
    let rendered = fs::read_to_string(out.join("runbook-exporter.rules.yml")).unwrap();
    assert_eq!(original.lines().count(), rendered.lines().count());
    let (mut urls, mut jobs) = (0, 0);
    for (before, after) in original.lines().zip(rendered.lines()) {
        if before == after {
            continue;
        }
        if before.replace(&format!("\"{base}#"), &format!("\"{new_base}#")) == after {
            urls += 1;
        } else if before.replace("job=\"runbook-exporter\"", "job=\"postgres-runbook\"") == after {
            jobs += 1;
        } else {
            panic!("render.sh changed an unrelated line:\n- {before}\n+ {after}");
        }
    }
    assert_eq!(urls, alerts().len(), "every runbook_url is rewritten");
    assert_eq!(jobs, 2, "ExporterDown and ExporterAbsent select the job");
    assert!(!rendered.contains(&base), "the default base is left in the output");
    assert_eq!(read(RECORDS), fs::read_to_string(out.join("runbook-exporter.records.yml")).unwrap());
    let files = [out.join("runbook-exporter.records.yml"), out.join("runbook-exporter.rules.yml")];
    run(promtool().args(["check", "rules"]).args(files));

    let bad = output(Command::new("sh").arg(root().join(RENDER)).arg(&out).env("RUNBOOK_BASE_URL", "ftp://x|y"));
    assert!(!bad.status.success(), "render.sh accepted a base URL that breaks sed");
}

/// What the promtool tests say about one alert name.
#[derive(Default)]
struct Coverage {
    quiet: usize,
    firing_severities: BTreeSet<String>,
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_case() {
    let alerts = alerts();
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    let mut coverage: BTreeMap<String, Coverage> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files(RULE_TESTS, ".test.yml") {
        let file_name = rel(&file);
        let doc = yaml::parse(&fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{file_name}: {e}"));
        for group in arr(&doc["tests"]) {
            for case in arr(&group["alert_rule_test"]) {
                let name = s(&case["alertname"]);
                if !known.contains(name) {
                    problems.push(format!("{file_name}: test for unknown alert {name:?}"));
                }
                let entry = coverage.entry(name.to_owned()).or_default();
                let expected = arr(&case["exp_alerts"]);
                if expected.is_empty() {
                    entry.quiet += 1;
                }
                for exp in expected {
                    entry.firing_severities.insert(s(&exp["exp_labels"]["severity"]).to_owned());
                    for key in ["summary", "description", "runbook_url"] {
                        if exp["exp_annotations"][key].as_str().is_none() {
                            problems.push(format!("{file_name}: a firing {name} case does not expect its {key}"));
                        }
                    }
                    // A label that identifies the alert's object must appear in its description.
                    let description = alerts
                        .iter()
                        .find(|a| a.name == name && a.severity == s(&exp["exp_labels"]["severity"]))
                        .map_or("", |a| a.annotations["description"].as_str());
                    for label in ["datname", "query", "table", "relname"] {
                        let wanted = format!("$labels.{label}");
                        if !exp["exp_labels"][label].is_null() && !description.contains(&wanted) {
                            problems.push(format!("{name}: description does not show {wanted}"));
                        }
                    }
                }
            }
        }
    }
    for a in &alerts {
        let c = coverage.get(&a.name);
        if !c.is_some_and(|c| c.firing_severities.contains(&a.severity)) {
            problems.push(format!("{} ({}): no test case where it fires", a.name, a.severity));
        }
        if c.is_none_or(|c| c.quiet == 0) {
            problems.push(format!("{}: no test case where it stays quiet (exp_alerts: [])", a.name));
        }
    }
    problems.dedup();
    assert_none(&problems, "promtool test coverage");
}

#[test]
fn readme_table_lists_every_alert_with_its_for_and_severity() {
    let readme = read(ALERTS_README);
    let mut problems = Vec::new();
    for a in alerts() {
        let prefix = format!("| {} |", a.name);
        let columns = format!("| {} | {} |", a.hold, a.severity);
        if !readme.lines().any(|l| l.starts_with(&prefix) && l.contains(&columns)) {
            problems.push(format!("{} with {columns}", a.name));
        }
    }
    assert_none(&problems, &format!("{ALERTS_README} has no table row for"));
}

#[test]
fn recording_rules_are_named_level_metric_operations_and_tested() {
    let tests: String = files(RULE_TESTS, ".test.yml").iter().map(|f| fs::read_to_string(f).unwrap()).collect();
    let users: String = alerts().iter().map(|a| a.expr.clone()).chain(records().into_iter().map(|r| r.1)).collect();
    let dashboard_text: String = dashboards().iter().map(|d| d.json.to_string()).collect();
    let mut problems = Vec::new();
    for (name, _) in records() {
        let parts: Vec<&str> = name.split(':').collect();
        let well_formed = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        if !well_formed {
            problems.push(format!("{name}: not level:metric:operations"));
        }
        if !tests.contains(&format!("expr: {name}\n")) {
            problems.push(format!("{name}: no promql_expr_test"));
        }
        let used_elsewhere = users.matches(name.as_str()).count() > 0 || dashboard_text.contains(&name);
        if !used_elsewhere {
            problems.push(format!("{name}: used by no alert, recording rule or dashboard"));
        }
    }
    assert_none(&problems, "recording rules");
}

#[test]
fn rules_use_only_metrics_the_exporter_exposes() {
    let mut known = exposed_metrics();
    known.extend(records().into_iter().map(|r| r.0));
    let mut problems = Vec::new();
    let exprs = alerts().into_iter().map(|a| (a.name, a.expr)).chain(records());
    for (name, expr) in exprs {
        for metric in metric_names(&expr) {
            if !known.contains(&metric) {
                problems.push(format!("{name}: {metric}"));
            }
        }
    }
    assert_none(&problems, "rules use metrics that neither the catalogue nor the exporter exposes");
}

// ---------------------------------------------------------------- dashboards

#[test]
fn dashboards_have_stable_unique_uids_and_a_current_schema() {
    let mut uids = BTreeSet::new();
    let mut problems = Vec::new();
    for d in dashboards() {
        let uid = s(&d.json["uid"]);
        let uid_ok = !uid.is_empty()
            && uid.len() <= 40
            && uid.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !uid_ok {
            problems.push(format!("{}: uid {uid:?} is not a short lower-case slug", d.file));
        }
        if !uids.insert(uid.to_owned()) {
            problems.push(format!("{}: uid {uid:?} is used twice", d.file));
        }
        if d.json["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
            problems.push(format!("{}: schemaVersion {} < 39", d.file, d.json["schemaVersion"]));
        }
        if s(&d.json["title"]).is_empty() {
            problems.push(format!("{}: no title", d.file));
        }
        if !d.json["id"].is_null() {
            problems.push(format!("{}: id must be null so that imports create the dashboard", d.file));
        }
    }
    assert_none(&problems, "dashboards");
}

/// Every `"datasource"` value anywhere in the JSON, with its path.
fn datasource_refs<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "datasource" {
                    out.push((format!("{path}.{k}"), child));
                }
                datasource_refs(child, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                datasource_refs(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_use_the_datasource_variable_everywhere() {
    let wanted = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let mut problems = Vec::new();
    for d in dashboards() {
        let vars = arr(&d.json["templating"]["list"]);
        let ds_var = vars.iter().find(|v| s(&v["name"]) == "datasource");
        if !ds_var.is_some_and(|v| s(&v["type"]) == "datasource" && s(&v["query"]) == "prometheus") {
            problems.push(format!("{}: no `datasource` variable of type datasource/prometheus", d.file));
        }
        if !vars.iter().any(|v| s(&v["name"]) == "instance") {
            problems.push(format!("{}: no `instance` variable", d.file));
        }
        for p in panels(&d.json).into_iter().filter(|p| !is_layout_panel(p)) {
            let title = s(&p["title"]);
            if p["datasource"] != wanted {
                problems.push(format!("{}: panel {title:?} datasource is {}", d.file, p["datasource"]));
            }
            if arr(&p["targets"]).is_empty() {
                problems.push(format!("{}: panel {title:?} has no targets", d.file));
            }
            for t in arr(&p["targets"]) {
                if t["datasource"] != wanted || s(&t["expr"]).trim().is_empty() {
                    problems.push(format!("{}: panel {title:?} target {} lacks ${{datasource}} or expr", d.file, t));
                }
            }
        }
        // No hard-coded datasource anywhere, e.g. in variables or annotations.
        let mut refs = Vec::new();
        datasource_refs(&d.json, String::new(), &mut refs);
        for (path, v) in refs {
            if *v != wanted {
                problems.push(format!("{}: {path} is {v}", d.file));
            }
        }
    }
    assert_none(&problems, "datasource");
}

#[test]
fn every_dashboard_panel_has_a_unit() {
    let mut problems = Vec::new();
    for d in dashboards() {
        for p in panels(&d.json).into_iter().filter(|p| !is_layout_panel(p)) {
            if s(&p["fieldConfig"]["defaults"]["unit"]).is_empty() {
                problems.push(format!("{}: panel {:?}", d.file, s(&p["title"])));
            }
        }
    }
    assert_none(&problems, "panels without fieldConfig.defaults.unit");
}

#[test]
fn dashboard_panels_do_not_overlap() {
    let mut problems = Vec::new();
    for d in dashboards() {
        let mut rects: Vec<(String, [u64; 4])> = Vec::new();
        let mut ids = BTreeSet::new();
        for p in panels(&d.json) {
            let title = format!("{:?}", s(&p["title"]));
            let g = &p["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap_or(u64::MAX));
            if [x, y, w, h].contains(&u64::MAX) || w == 0 || h == 0 || x + w > 24 {
                problems.push(format!("{}: panel {title} has gridPos {g}", d.file));
                continue;
            }
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) || p["id"].as_u64().is_none() {
                problems.push(format!("{}: panel {title} id {} is missing or repeated", d.file, p["id"]));
            }
            for (other, [ox, oy, ow, oh]) in &rects {
                if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                    problems.push(format!("{}: panel {title} overlaps {other}", d.file));
                }
            }
            rects.push((title, [x, y, w, h]));
        }
    }
    assert_none(&problems, "gridPos");
}

#[test]
fn dashboard_expressions_use_known_variables_and_metrics() {
    let mut known = exposed_metrics();
    known.extend(records().into_iter().map(|r| r.0));
    let mut problems = Vec::new();
    for d in dashboards() {
        let defined: BTreeSet<&str> = arr(&d.json["templating"]["list"]).iter().map(|v| s(&v["name"])).collect();
        for (place, expr) in dashboard_exprs(&d) {
            if expr.contains("[[") {
                problems.push(format!("{place}: old [[variable]] syntax"));
            }
            for var in variables(&expr) {
                let builtin = var.starts_with("__");
                if !EXPR_VARIABLES.contains(&var.as_str()) || (!builtin && !defined.contains(var.as_str())) {
                    problems.push(format!("{place}: variable ${var}"));
                }
            }
            for metric in metric_names(&expr) {
                if !known.contains(&metric) {
                    problems.push(format!("{place}: unknown metric {metric}"));
                }
            }
        }
    }
    assert_none(&problems, "dashboard expressions");
}

#[test]
fn dashboard_expressions_are_valid_promql() {
    let mut places = Vec::new();
    let mut rules = String::from("groups:\n  - name: dashboard-expressions\n    rules:\n");
    for d in dashboards() {
        for (place, expr) in dashboard_exprs(&d) {
            let expr = expr
                .replace("${instance}", ".+")
                .replace("$instance", ".+")
                .replace("${datname}", ".+")
                .replace("$datname", ".+")
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h");
            rules.push_str(&format!(
                "      - record: dashboard_expr_{}\n        expr: {}\n",
                places.len(),
                Value::String(expr)
            ));
            places.push(place);
        }
    }
    assert!(places.len() > 40, "only {} dashboard expressions found", places.len());
    let scratch = Scratch::new("dashboard-exprs");
    let file = scratch.0.join("dashboard-exprs.yml");
    fs::write(&file, rules).unwrap();
    let out = output(promtool().arg("check").arg("rules").arg(&file));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let index: Vec<String> = places.iter().enumerate().map(|(i, p)| format!("dashboard_expr_{i} = {p}")).collect();
    assert!(out.status.success(), "promtool rejects a dashboard expression:\n{text}\n{}", index.join("\n"));
}

// ---------------------------------------------------------------- the YAML reader

#[test]
fn yaml_reader_handles_the_subset_and_rejects_the_rest() {
    let doc = yaml::parse(concat!(
        "# comment\n",
        "a: plain value # trailing comment\n",
        "b: 'single ''quoted'' # not a comment'\n",
        "c: \"double \\\"quoted\\\" \\\\ #\"\n",
        "d: []\n",
        "e: [x, 'y=\"1\"', \"z\"]\n",
        "f:\n",
        "  - k: v\n",
        "    l: w\n",
        "  -   m: n\n",
        "  - scalar\n",
        "g: |\n",
        "  line one\n",
        "    indented\n",
        "\n",
        "h: >-\n",
        "  folded\n",
        "  text\n",
        "\n",
        "  para\n",
        "i:\n",
        "- compact\n",
        "j: {p: q}\n",
        "k: http://127.0.0.1:9093/x\n",
    ))
    .unwrap();
    let want = serde_json::json!({
        "a": "plain value",
        "b": "single 'quoted' # not a comment",
        "c": "double \"quoted\" \\ #",
        "d": [],
        "e": ["x", "y=\"1\"", "z"],
        "f": [{"k": "v", "l": "w"}, {"m": "n"}, "scalar"],
        "g": "line one\n  indented\n",
        "h": "folded text\npara",
        "i": ["compact"],
        "j": {"p": "q"},
        "k": "http://127.0.0.1:9093/x",
    });
    assert_eq!(doc, want);

    for bad in ["a: 1\na: 2\n", "a: b\n  c\n", "a:\n\t- b\n", "a: &anchor b\n", "a: \"open\n", "a: [x\n"] {
        assert!(yaml::parse(bad).is_err(), "accepted {bad:?}");
    }
}

mod yaml {
    //! A reader for the YAML subset of the files under test: block mappings
    //! and sequences, plain / single-quoted / double-quoted scalars, block
    //! scalars (`|`, `>`, with `-` / `+` chomping), one-line flow collections
    //! and comments. Every scalar is a string. Anything else is an error
    //! naming the line.

    use serde_json::{Map, Value};

    pub fn parse(src: &str) -> Result<Value, String> {
        let mut p = Parser { lines: src.lines().collect(), pos: 0, over: None };
        p.skip_blank()?;
        if !p.eof() && p.text(p.pos).trim_end() == "---" {
            p.pos += 1;
            p.skip_blank()?;
        }
        if p.eof() {
            return Ok(Value::Null);
        }
        let v = p.block(p.indent(p.pos))?;
        p.skip_blank()?;
        if !p.eof() {
            return Err(p.err("content outside the document's indentation"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        lines: Vec<&'a str>,
        pos: usize,
        /// `(line, column)`: the line is read from this column (after a `- `).
        over: Option<(usize, usize)>,
    }

    fn is_item(t: &str) -> bool {
        t == "-" || t.starts_with("- ")
    }

    impl<'a> Parser<'a> {
        fn eof(&self) -> bool {
            self.pos >= self.lines.len()
        }

        fn err(&self, msg: &str) -> String {
            format!("line {}: {msg}", self.pos + 1)
        }

        fn indent(&self, i: usize) -> usize {
            match self.over {
                Some((line, col)) if line == i => col,
                _ => self.lines[i].len() - self.lines[i].trim_start_matches(' ').len(),
            }
        }

        fn text(&self, i: usize) -> &'a str {
            &self.lines[i][self.indent(i)..]
        }

        fn is_blank(&self, i: usize) -> bool {
            let t = self.text(i).trim();
            t.is_empty() || t.starts_with('#')
        }

        fn advance(&mut self) {
            if self.over.is_some_and(|(line, _)| line == self.pos) {
                self.over = None;
            }
            self.pos += 1;
        }

        fn skip_blank(&mut self) -> Result<(), String> {
            while !self.eof() && self.is_blank(self.pos) {
                self.advance();
            }
            if !self.eof() && self.text(self.pos).starts_with('\t') {
                return Err(self.err("tab in indentation"));
            }
            Ok(())
        }

        /// The node starting at the current line, indented by `ind`.
        fn block(&mut self, ind: usize) -> Result<Value, String> {
            let t = strip_comment(self.text(self.pos));
            if is_item(t) {
                self.seq(ind)
            } else if split_key(t).is_some() {
                self.map(ind)
            } else if t.starts_with('|') || t.starts_with('>') {
                Err(self.err("block scalars are only supported as mapping values"))
            } else {
                let v = inline(t).map_err(|e| self.err(&e))?;
                self.advance();
                self.no_continuation(ind)?;
                Ok(v)
            }
        }

        fn seq(&mut self, ind: usize) -> Result<Value, String> {
            let mut items = Vec::new();
            loop {
                self.skip_blank()?;
                if self.eof() || self.indent(self.pos) < ind {
                    break;
                }
                if self.indent(self.pos) > ind {
                    return Err(self.err("unexpected indentation"));
                }
                let line = self.text(self.pos);
                if !is_item(strip_comment(line)) {
                    break;
                }
                if strip_comment(line) == "-" {
                    self.advance();
                    self.skip_blank()?;
                    if self.eof() || self.indent(self.pos) <= ind {
                        items.push(Value::Null);
                    } else {
                        let inner = self.indent(self.pos);
                        items.push(self.block(inner)?);
                    }
                } else {
                    let rest = &line[1..];
                    let col = ind + 1 + (rest.len() - rest.trim_start_matches(' ').len());
                    self.over = Some((self.pos, col));
                    items.push(self.block(col)?);
                }
            }
            Ok(Value::Array(items))
        }

        fn map(&mut self, ind: usize) -> Result<Value, String> {
            let mut m = Map::new();
            loop {
                self.skip_blank()?;
                if self.eof() || self.indent(self.pos) < ind {
                    break;
                }
                if self.indent(self.pos) > ind {
                    return Err(self.err("unexpected indentation"));
                }
                let t = strip_comment(self.text(self.pos));
                if is_item(t) {
                    return Err(self.err("sequence item where a mapping key was expected"));
                }
                let (key, rest) = split_key(t).ok_or_else(|| self.err("expected `key: value`"))?;
                if m.contains_key(&key) {
                    return Err(self.err(&format!("duplicate key {key:?}")));
                }
                let rest = rest.trim();
                let line = self.pos;
                self.advance();
                let v = if rest.is_empty() {
                    self.skip_blank()?;
                    if self.eof() {
                        Value::Null
                    } else if self.indent(self.pos) > ind {
                        let inner = self.indent(self.pos);
                        self.block(inner)?
                    } else if self.indent(self.pos) == ind && is_item(strip_comment(self.text(self.pos))) {
                        self.seq(ind)?
                    } else {
                        Value::Null
                    }
                } else if rest.starts_with('|') || rest.starts_with('>') {
                    self.block_scalar(ind, rest)?
                } else {
                    let v = inline(rest).map_err(|e| format!("line {}: {e}", line + 1))?;
                    self.no_continuation(ind)?;
                    v
                };
                m.insert(key, v);
            }
            Ok(Value::Object(m))
        }

        /// Plain and quoted scalars must fit on one line here.
        fn no_continuation(&self, ind: usize) -> Result<(), String> {
            let mut j = self.pos;
            while j < self.lines.len() && self.is_blank(j) {
                j += 1;
            }
            if j < self.lines.len() && self.indent(j) > ind {
                return Err(format!("line {}: multi-line scalars must use | or >", j + 1));
            }
            Ok(())
        }

        fn block_scalar(&mut self, parent: usize, header: &str) -> Result<Value, String> {
            let folded = header.starts_with('>');
            let (mut strip, mut keep, mut explicit) = (false, false, None);
            for c in header[1..].chars() {
                match c {
                    '-' => strip = true,
                    '+' => keep = true,
                    '1'..='9' => explicit = Some(parent + c.to_digit(10).unwrap_or(0) as usize),
                    _ => return Err(self.err(&format!("bad block scalar header {header:?}"))),
                }
            }
            let mut lines: Vec<&str> = Vec::new();
            let mut block_ind = explicit;
            while !self.eof() {
                let raw = self.lines[self.pos];
                if raw.trim().is_empty() {
                    lines.push("");
                    self.pos += 1;
                    continue;
                }
                let ind = raw.len() - raw.trim_start_matches(' ').len();
                if ind <= parent || block_ind.is_some_and(|b| ind < b) {
                    break;
                }
                let b = *block_ind.get_or_insert(ind);
                lines.push(&raw[b..]);
                self.pos += 1;
            }
            let trailing = lines.iter().rev().take_while(|l| l.is_empty()).count();
            lines.truncate(lines.len() - trailing);
            let mut out = String::new();
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    let prev = lines[i - 1];
                    let fold = folded && !l.is_empty() && !prev.is_empty();
                    let fold = fold && !l.starts_with(' ') && !prev.starts_with(' ');
                    if fold {
                        out.push(' ');
                    } else if !(folded && !l.is_empty() && prev.is_empty()) {
                        out.push('\n');
                    }
                }
                out.push_str(l);
            }
            if !strip && !lines.is_empty() {
                out.push('\n');
                if keep {
                    out.push_str(&"\n".repeat(trailing));
                }
            }
            Ok(Value::String(out))
        }
    }

    /// The line without its comment and trailing spaces.
    fn strip_comment(s: &str) -> &str {
        let b = s.as_bytes();
        let mut quote: Option<u8> = None;
        let mut prev = b' ';
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match quote {
                Some(b'"') if c == b'\\' => {
                    i += 2;
                    prev = b'x';
                    continue;
                }
                Some(b'\'') if c == b'\'' && b.get(i + 1) == Some(&b'\'') => {
                    i += 2;
                    prev = b'x';
                    continue;
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'#' && prev == b' ' => return s[..i].trim_end(),
                None if (c == b'"' || c == b'\'') && b" [{,:".contains(&prev) => quote = Some(c),
                None => {}
            }
            prev = c;
            i += 1;
        }
        s.trim_end()
    }

    /// `key: rest` (rest may be empty), with a plain or quoted key.
    fn split_key(t: &str) -> Option<(String, &str)> {
        if t.starts_with('"') || t.starts_with('\'') {
            let (key, used) = quoted(t).ok()?;
            let after = &t[used..];
            let rest = after.strip_prefix(':')?;
            return (rest.is_empty() || rest.starts_with(' ')).then_some((key, rest));
        }
        if t.starts_with('[') || t.starts_with('{') {
            return None;
        }
        let bytes = t.as_bytes();
        let i = (0..bytes.len()).find(|&i| bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' '))?;
        let key = t[..i].trim_end();
        (!key.is_empty()).then(|| (key.to_owned(), &t[i + 1..]))
    }

    /// A quoted scalar at the start of `t`: its value and the bytes it used.
    fn quoted(t: &str) -> Result<(String, usize), String> {
        let q = t.chars().next().ok_or("empty scalar")?;
        let mut out = String::new();
        let mut chars = t.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' if q == '\'' => {
                    if t[i + 1..].starts_with('\'') {
                        out.push('\'');
                        chars.next();
                    } else {
                        return Ok((out, i + 1));
                    }
                }
                '"' if q == '"' => return Ok((out, i + 1)),
                '\\' if q == '"' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(e @ ('"' | '\\' | '/')) => out.push(e),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, h)| h)).collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\u{hex}"))?;
                        out.push(char::from_u32(code).ok_or("bad \\u escape")?);
                    }
                    other => return Err(format!("unsupported escape \\{}", other.unwrap_or(' '))),
                },
                _ => out.push(c),
            }
        }
        Err("unterminated quoted scalar".to_owned())
    }

    /// A scalar or a one-line flow collection.
    fn inline(t: &str) -> Result<Value, String> {
        let t = t.trim();
        if t.starts_with('"') || t.starts_with('\'') {
            let (v, used) = quoted(t)?;
            if !t[used..].trim().is_empty() {
                return Err(format!("text after a quoted scalar: {:?}", &t[used..]));
            }
            return Ok(Value::String(v));
        }
        if let Some(inner) = t.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or("unterminated flow sequence")?;
            return Ok(Value::Array(flow_items(inner)?.iter().map(|i| inline(i)).collect::<Result<_, _>>()?));
        }
        if let Some(inner) = t.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or("unterminated flow mapping")?;
            let mut m = Map::new();
            for item in flow_items(inner)? {
                let (k, v) = split_key(item).ok_or_else(|| format!("expected `key: value` in {{{inner}}}"))?;
                m.insert(k, inline(v)?);
            }
            return Ok(Value::Object(m));
        }
        if t.starts_with(['&', '*', '!', '%', '@', '`', '|', '>']) {
            return Err(format!("unsupported YAML construct {t:?}"));
        }
        Ok(Value::String(t.to_owned()))
    }

    /// The comma-separated items of a flow collection (quotes respected).
    fn flow_items(inner: &str) -> Result<Vec<&str>, String> {
        if inner.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut quote = None;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '[' | '{') => return Err("nested flow collections are not supported".to_owned()),
                (None, ',') => {
                    items.push(inner[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(inner[start..].trim());
        Ok(items)
    }
}

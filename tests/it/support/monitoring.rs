//! What `alerts/` and `dashboards/` hold, read once for the areas that check them (`alerts`, `dashboards`,
//! `e2e`, `e2e_replication`): the Prometheus rules, the Alertmanager example, the promtool unit tests, the Grafana
//! dashboards and their panels' PromQL with Grafana's variables substituted, and the metric names the exporter
//! exposes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::data::{files, read, rel, yaml};
use super::library;
use super::tools::{python3, run};

pub const RULES: &str = "alerts/runbook-exporter.rules.yml";
pub const RECORDS: &str = "alerts/runbook-exporter.records.yml";
pub const RULE_TESTS: &str = "alerts/tests";
pub const ALERTMANAGER: &str = "alerts/alertmanager.example.yml";
pub const RENDER: &str = "alerts/render.sh";
/// The default configuration of the rendering (alerts/render.py), of which the shipped files are the output.
pub const MIXIN: &str = "alerts/mixin.json";
pub const RENDER_PY: &str = "alerts/render.py";
pub const DASHBOARDS: &str = "dashboards";
const CATALOGUE: &str = "queries.yaml";

// ---------------------------------------------------------------- rules

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// One rule of a rules file: an alert or a recording rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    #[serde(rename = "for")]
    pub hold: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The name of the group the rule is in.
    #[serde(skip)]
    pub group: String,
}

impl Rule {
    /// The alert's or the record's name.
    pub fn name(&self) -> &str {
        self.alert.as_deref().or(self.record.as_deref()).unwrap_or_default()
    }

    /// `alert NAME/severity` or `record NAME`: unique within the rules files.
    pub fn id(&self) -> String {
        match &self.alert {
            Some(name) => format!("alert {name}/{}", self.severity()),
            None => format!("record {}", self.name()),
        }
    }

    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("", String::as_str)
    }

    /// The expression without surrounding white space (block scalars end in a line feed).
    pub fn expr(&self) -> &str {
        self.expr.trim()
    }
}

/// Every rule of the rules file `rel` (YAML text `text`), in file order; panics if one is neither or both of
/// alert and record, or if there is none.
pub fn rules_in(rel: &str, text: &str) -> Vec<Rule> {
    let file: RuleFile = serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let rules: Vec<Rule> = file
        .groups
        .into_iter()
        .flat_map(|g| g.rules.into_iter().map(move |r| Rule { group: g.name.clone(), ..r }))
        .collect();
    for r in &rules {
        assert!(
            r.alert.is_some() != r.record.is_some(),
            "{rel}: a rule with neither or both of alert and record: {r:?}"
        );
    }
    assert!(!rules.is_empty(), "{rel} has no rules");
    rules
}

/// The alerting rules of the shipped rules file.
pub fn alerts() -> Vec<Rule> {
    rules_in(RULES, &read(RULES)).into_iter().filter(|r| r.alert.is_some()).collect()
}

/// The recording rules of the shipped records file.
pub fn records() -> Vec<Rule> {
    rules_in(RECORDS, &read(RECORDS)).into_iter().filter(|r| r.record.is_some()).collect()
}

/// A string default of alerts/mixin.json (`runbook_base_url`, `job`, ...).
pub fn mixin_default(key: &str) -> String {
    let config: Value = serde_json::from_str(&read(MIXIN)).unwrap_or_else(|e| panic!("{MIXIN}: {e}"));
    config[key].as_str().unwrap_or_else(|| panic!("{MIXIN} has no string {key}")).to_owned()
}

/// Renders alerts/ and dashboards/ with `config` (written to `dir/mixin.json`) into `dir/out`, which it returns;
/// panics unless alerts/render.py succeeds.
pub fn render_mixin(config: &Value, dir: &Path) -> PathBuf {
    let path = dir.join("mixin.json");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let out = dir.join("out");
    run(python3().arg(RENDER_PY).arg("--config").arg(&path).arg(&out));
    out
}

// ---------------------------------------------------------------- promtool unit tests

#[derive(Deserialize)]
pub struct RuleTests {
    pub tests: Vec<RuleTestGroup>,
}

#[derive(Deserialize)]
pub struct RuleTestGroup {
    #[serde(default)]
    pub alert_rule_test: Vec<AlertCase>,
}

#[derive(Deserialize)]
pub struct AlertCase {
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// Every `alerts/tests/*.test.yml`: (path relative to the root, parsed).
pub fn rule_tests() -> Vec<(String, RuleTests)> {
    files(RULE_TESTS, ".test.yml").iter().map(|f| (rel(f), yaml(&rel(f)))).collect()
}

// ---------------------------------------------------------------- Alertmanager

#[derive(Deserialize)]
pub struct Alertmanager {
    pub route: Route,
    pub inhibit_rules: Vec<InhibitRule>,
}

#[derive(Deserialize)]
pub struct Route {
    pub group_by: Vec<String>,
}

#[derive(Deserialize)]
pub struct InhibitRule {
    #[serde(default)]
    pub source_matchers: Vec<String>,
    #[serde(default)]
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

// ---------------------------------------------------------------- dashboards

/// A dashboard file, parsed.
pub struct Dashboard {
    /// `dashboards/NAME.json`.
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    /// Every panel, including panels nested in rows (collapsed rows and the old `rows` layout).
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for p in arr(panels) {
                out.push(p);
                walk(&p["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        for row in arr(&self.json["rows"]) {
            walk(&row["panels"], &mut out);
        }
        out
    }

    /// The template variables (`templating.list`).
    pub fn variables(&self) -> &[Value] {
        arr(&self.json["templating"]["list"])
    }
}

/// Every dashboard of `dashboards/`, sorted by file name.
pub fn dashboards() -> Vec<Dashboard> {
    dashboards_in(&super::data::root())
}

/// Every dashboard of `base/dashboards/` (the repository or a rendering), sorted by file name; `file` is
/// `dashboards/NAME.json` either way.
pub fn dashboards_in(base: &Path) -> Vec<Dashboard> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(base.join(DASHBOARDS))
        .unwrap_or_else(|e| panic!("cannot list {}/{DASHBOARDS}: {e}", base.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no dashboards in {}", base.display());
    paths
        .into_iter()
        .map(|p| {
            let file = format!("{DASHBOARDS}/{}", p.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            Dashboard { file, json }
        })
        .collect()
}

/// A PromQL expression to check, with where it comes from.
pub struct Expression {
    pub id: String,
    pub expr: String,
}

/// `targets[].expr` of every panel of every dashboard below `base`, including panels nested in rows.
pub fn dashboard_expressions(base: &Path) -> Vec<Expression> {
    let mut out = Vec::new();
    for d in dashboards_in(base) {
        for p in d.panels() {
            for (i, t) in arr(&p["targets"]).iter().enumerate() {
                if t.get("expr").is_none() {
                    continue;
                }
                let ref_id = t["refId"].as_str().map_or_else(|| format!("#{i}"), str::to_owned);
                // Titles repeat (a stat and a graph of the same number); panel ids do not.
                out.push(Expression {
                    id: format!("{} / panel {} {:?} / {ref_id}", d.file, p["id"], s(&p["title"])),
                    expr: s(&t["expr"]).to_owned(),
                });
            }
        }
    }
    out
}

/// `(dashboard, variable, selector, label)` of every `label_values(selector, label)` query variable.
pub fn label_values_variables(base: &Path) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for d in dashboards_in(base) {
        for v in d.variables() {
            if s(&v["type"]) != "query" {
                continue;
            }
            let query = v["query"].as_str().unwrap_or_else(|| s(&v["query"]["query"]));
            let Some(args) = query.trim().strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) else {
                continue;
            };
            let (selector, label) = args.rsplit_once(',').unwrap_or_else(|| panic!("{}: {query}", d.file));
            out.push((d.file.clone(), s(&v["name"]).to_owned(), selector.trim().to_owned(), label.trim().to_owned()));
        }
    }
    out
}

/// Grafana's template variables replaced as a dashboard would send them for one instance
/// and one database: `$instance` / `${instance}`, `$datname`, `$__rate_interval` (1m),
/// `$__interval` (15s), `$__range` (1h). Any other variable is an error.
pub fn substitute(expr: &str, instance: &str, datname: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if braced && !body[name.len()..].starts_with('}') {
            return Err(format!("malformed variable in {expr:?}"));
        }
        let value = match name.as_str() {
            "instance" => instance,
            "datname" => datname,
            "__rate_interval" => "1m",
            "__interval" => "15s",
            "__range" => "1h",
            _ => return Err(format!("unknown template variable ${name} in {expr:?}")),
        };
        out.push_str(value);
        rest = &body[name.len() + usize::from(braced)..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The elements of a JSON array (none for anything else).
pub fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A JSON string ("" for anything else).
pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

// ---------------------------------------------------------------- metric names

#[derive(Deserialize)]
struct CatalogueFile {
    queries: BTreeMap<String, CatalogueQuery>,
}

#[derive(Deserialize)]
struct CatalogueQuery {
    #[serde(default)]
    metrics: Vec<CatalogueMetric>,
}

#[derive(Deserialize)]
struct CatalogueMetric {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// Every metric name the exporter exposes: its own (from the library's self-metrics table), the catalogue's
/// (counters end in `_total` whether or not the catalogue writes the suffix) and its file sets', plus the
/// recording rules'.
pub fn known_metrics() -> BTreeSet<String> {
    let catalogue: CatalogueFile = yaml(CATALOGUE);
    let own = library::self_metric_names();
    let mut out: BTreeSet<String> = own.iter().cloned().collect();
    out.extend(library::file_set_metric_names(&super::data::root().join(CATALOGUE)));
    for metric in catalogue.queries.values().flat_map(|q| &q.metrics) {
        if metric.kind == "counter" && !metric.name.ends_with("_total") {
            out.insert(format!("{}_total", metric.name));
        } else {
            out.insert(metric.name.clone());
        }
    }
    assert!(out.len() > own.len(), "{CATALOGUE} declares no metrics");
    out.extend(records().iter().map(|r| r.name().to_owned()));
    out
}

/// Metric names in a PromQL expression that this project owns (`pg_*`, `ignition_*`, `runbook_exporter_*`) or
/// that are recording rules (contain `:`); strings and `[...]` ranges/subqueries are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
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
        } else if c == '[' {
            // A range or subquery (`[5m]`, `[1d:1m]`): durations, never metric names.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
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

//! Checks the Grafana dashboards of `dashboards/`: uids and schema, the datasource
//! variable, units, layout, and that every expression uses known variables and
//! metrics and is valid PromQL (checked by the real promtool).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::assert_no_problems;
use crate::support::monitoring::{Dashboard, arr, dashboards, known_metrics, metric_names, s};
use crate::support::tools::{output, promtool};

/// Template variables a dashboard expression may use (the end-to-end test substitutes exactly these).
const EXPR_VARIABLES: &[&str] = &["instance", "datname", "__rate_interval", "__interval", "__range"];

fn is_layout_panel(p: &Value) -> bool {
    matches!(s(&p["type"]), "row" | "text")
}

/// `(where, expr)` of every panel target.
fn dashboard_exprs(d: &Dashboard) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d.panels() {
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
    assert_no_problems(&problems, "dashboards");
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
        let vars = d.variables();
        let ds_var = vars.iter().find(|v| s(&v["name"]) == "datasource");
        if !ds_var.is_some_and(|v| s(&v["type"]) == "datasource" && s(&v["query"]) == "prometheus") {
            problems.push(format!("{}: no `datasource` variable of type datasource/prometheus", d.file));
        }
        if !vars.iter().any(|v| s(&v["name"]) == "instance") {
            problems.push(format!("{}: no `instance` variable", d.file));
        }
        for p in d.panels().into_iter().filter(|p| !is_layout_panel(p)) {
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
    assert_no_problems(&problems, "datasource");
}

#[test]
fn every_dashboard_panel_has_a_unit() {
    let mut problems = Vec::new();
    for d in dashboards() {
        for p in d.panels().into_iter().filter(|p| !is_layout_panel(p)) {
            if s(&p["fieldConfig"]["defaults"]["unit"]).is_empty() {
                problems.push(format!("{}: panel {:?}", d.file, s(&p["title"])));
            }
        }
    }
    assert_no_problems(&problems, "panels without fieldConfig.defaults.unit");
}

#[test]
fn dashboard_panels_do_not_overlap() {
    let mut problems = Vec::new();
    for d in dashboards() {
        let mut rects: Vec<(String, [u64; 4])> = Vec::new();
        let mut ids = BTreeSet::new();
        for p in d.panels() {
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
    assert_no_problems(&problems, "gridPos");
}

#[test]
fn dashboard_expressions_use_known_variables_and_metrics() {
    let known = known_metrics();
    let mut problems = Vec::new();
    for d in dashboards() {
        let defined: BTreeSet<&str> = d.variables().iter().map(|v| s(&v["name"])).collect();
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
    assert_no_problems(&problems, "dashboard expressions");
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
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("dashboard-exprs.yml");
    std::fs::write(&file, rules).unwrap();
    let out = output(promtool().arg("check").arg("rules").arg(&file));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let index: Vec<String> = places.iter().enumerate().map(|(i, p)| format!("dashboard_expr_{i} = {p}")).collect();
    assert!(out.status.success(), "promtool rejects a dashboard expression:\n{text}\n{}", index.join("\n"));
}

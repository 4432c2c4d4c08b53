//! Checks `alerts/`: the Prometheus rules, their promtool unit tests and the
//! Alertmanager example, with the real promtool and amtool.
//!
//! Needs promtool and amtool (`apt-get install -y prometheus prometheus-alertmanager`);
//! a missing tool fails the test, it is never skipped. `PROMTOOL` / `AMTOOL`
//! override the binaries and `RUNBOOK_EXPORTER_ROOT` the repository root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::support::assert_no_problems;
use crate::support::data::{files, read, root, yaml};
use crate::support::monitoring::{
    ALERTMANAGER, Alertmanager, RECORDS, RENDER, RULE_TESTS, RULES, alerts, dashboards, known_metrics, metric_names,
    mixin_default, records, rule_tests,
};
use crate::support::tools::{amtool, output, promtool, run};

const ALERTS_README: &str = "alerts/README.md";
const RUNBOOK: &str = "docs/runbook-database-operations.md";
const DIAGNOSTICS: &str = "docs/diagnostics.md";

/// Alerts whose value is a constant (absent() gives 1, a failed state 0): their
/// annotations need not print `$value`.
const VALUE_FREE_ALERTS: &[&str] = &[
    "ExporterAbsent",
    "CatalogueQueryFailing",
    "ExporterConfigReloadFailed",
    "AlertInputMissing",
    "FileSetScanFailing",
];

/// The GitHub anchors of the headings of the Markdown file `rel` (code blocks skipped).
fn anchors(rel: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in read(rel).lines() {
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

/// The default base URLs of the links, defined once in alerts/mixin.json: (runbook, diagnostics).
fn default_bases() -> (String, String) {
    (mixin_default("runbook_base_url"), mixin_default("diagnostics_base_url"))
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
    let am: Alertmanager = yaml(ALERTMANAGER);
    assert_eq!(am.route.group_by, ["alertname", "instance"], "route.group_by");
    for source in ["PostgresDown", "ExporterDown"] {
        let matcher = format!("alertname=\"{source}\"");
        let rule = am
            .inhibit_rules
            .iter()
            .find(|r| r.source_matchers == [matcher.as_str()])
            .unwrap_or_else(|| panic!("no inhibit rule with source {matcher}"));
        assert_eq!(
            rule.target_matchers,
            [format!("alertname!=\"{source}\"")],
            "{source} must inhibit every other alert"
        );
        assert!(rule.equal.iter().any(|l| l == "instance"), "{source} inhibits per instance");
    }
}

// ---------------------------------------------------------------- rules

#[test]
fn every_alert_has_a_severity_and_the_annotations() {
    let mut problems = Vec::new();
    for a in alerts() {
        if a.severity() != "page" && a.severity() != "ticket" {
            problems.push(format!("{}: severity {:?} is not page or ticket", a.name(), a.severity()));
        }
        for key in ["summary", "description", "runbook_url"] {
            if a.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{} ({}): no {key} annotation", a.name(), a.severity()));
            }
        }
        let text = format!("{} {}", a.annotations["summary"], a.annotations["description"]);
        if !text.contains("$labels.instance") && !text.contains("$labels.job") {
            problems.push(format!("{}: summary/description name neither the instance nor the job", a.name()));
        }
        if !VALUE_FREE_ALERTS.contains(&a.name()) && !text.contains("$value") {
            problems.push(format!("{}: summary/description do not show $value", a.name()));
        }
    }
    assert_no_problems(&problems, "alert rules");
}

#[test]
fn runbook_urls_point_at_sections_of_the_runbook_or_the_diagnostics() {
    let (runbook_base, diagnostics_base) = default_bases();
    let targets = [(runbook_base, RUNBOOK, anchors(RUNBOOK)), (diagnostics_base, DIAGNOSTICS, anchors(DIAGNOSTICS))];
    assert!(targets[0].2.contains("connection-leak") && targets[0].2.contains("lock-contention"), "{:?}", targets[0].2);
    assert!(targets[1].2.contains("replication-lag"), "{DIAGNOSTICS} anchors: {:?}", targets[1].2);
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for a in alerts() {
        let url = a.annotations.get("runbook_url").map_or("", String::as_str);
        let found = targets.iter().find_map(|(base, file, anchors)| {
            url.strip_prefix(&format!("{base}#")).map(|anchor| (*file, anchors, anchor))
        });
        match found {
            Some((file, anchors, anchor)) if anchors.contains(anchor) => {
                used.insert(file);
            }
            Some((file, _, anchor)) => problems.push(format!("{}: #{anchor} is not a heading of {file}", a.name())),
            None => problems.push(format!(
                "{}: runbook_url {url:?} starts with neither {}# nor {}#",
                a.name(),
                targets[0].0,
                targets[1].0
            )),
        }
    }
    assert_no_problems(&problems, "runbook_url");
    // Every alert links to its section of the diagnostics (checked by it::diagnostics), which link to the runbook.
    assert!(used.contains(DIAGNOSTICS), "no alert links to {DIAGNOSTICS}: {used:?}");
}

/// Runs alerts/render.sh into `out` with the environment `env`.
fn render(out: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join(RENDER)).arg(out).env_remove("RUNBOOK_BASE_URL").env_remove("DIAGNOSTICS_BASE_URL");
    cmd.env_remove("EXPORTER_JOB").envs(env.iter().copied());
    output(&mut cmd)
}

/// Renders with `env` and checks that only the link bases (to `runbook` and `diagnostics`) and the job changed.
fn check_render(env: &[(&str, &str)], runbook: &str, diagnostics: &str, job: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("rules");
    let result = render(&out, env);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "render.sh with {env:?} failed: {stderr}");

    let (runbook_base, diagnostics_base) = default_bases();
    let original = read(RULES);
    let rendered = std::fs::read_to_string(out.join("runbook-exporter.rules.yml")).unwrap();
    assert_eq!(original.lines().count(), rendered.lines().count());
    let (mut runbook_urls, mut diagnostics_urls, mut jobs) = (0, 0, 0);
    for (before, after) in original.lines().zip(rendered.lines()) {
        if before == after {
            continue;
        }
        if before.replace(&format!("\"{runbook_base}#"), &format!("\"{runbook}#")) == after {
            runbook_urls += 1;
        } else if before.replace(&format!("\"{diagnostics_base}#"), &format!("\"{diagnostics}#")) == after {
            diagnostics_urls += 1;
        } else if before.replace(&format!("job=\"{}\"", mixin_default("job")), &format!("job=\"{job}\"")) == after {
            jobs += 1;
        } else {
            panic!("render.sh with {env:?} changed an unrelated line:\n- {before}\n+ {after}");
        }
    }
    let urls =
        |base: &str| alerts().iter().filter(|a| a.annotations["runbook_url"].starts_with(&format!("{base}#"))).count();
    assert!(urls(&diagnostics_base) > 0, "the shipped rules link to the diagnostics");
    assert_eq!(runbook_urls, urls(&runbook_base), "every runbook link is rewritten to {runbook}");
    assert_eq!(diagnostics_urls, urls(&diagnostics_base), "every diagnostics link is rewritten to {diagnostics}");
    let default_job = mixin_default("job");
    assert_eq!(jobs, if job == default_job { 0 } else { 2 }, "job lines rewritten from {default_job} to {job}");
    assert_eq!(rendered.matches(&format!("job=\"{job}\"")).count(), 2, "ExporterDown and ExporterAbsent select {job}");
    assert!(!rendered.contains(&runbook_base), "the default runbook base is left in the output");
    assert!(!rendered.contains(&diagnostics_base), "the default diagnostics base is left in the output");
    assert_eq!(read(RECORDS), std::fs::read_to_string(out.join("runbook-exporter.records.yml")).unwrap());
    let files = [out.join("runbook-exporter.records.yml"), out.join("runbook-exporter.rules.yml")];
    run(promtool().args(["check", "rules"]).args(files));
}

#[test]
fn render_script_changes_only_the_link_bases_and_the_job() {
    let wiki = "https://wiki.example.org/ops";
    // The diagnostics file sits next to the runbook unless told otherwise; a trailing slash is dropped.
    check_render(
        &[("RUNBOOK_BASE_URL", &format!("{wiki}/runbook-database-operations/")), ("EXPORTER_JOB", "postgres-runbook")],
        &format!("{wiki}/runbook-database-operations"),
        &format!("{wiki}/diagnostics"),
        "postgres-runbook",
    );
    // A base naming the Markdown file keeps the extension for its companion.
    check_render(
        &[("RUNBOOK_BASE_URL", "https://git.example.org/ops/blob/main/docs/runbook-database-operations.md")],
        "https://git.example.org/ops/blob/main/docs/runbook-database-operations.md",
        "https://git.example.org/ops/blob/main/docs/diagnostics.md",
        "runbook-exporter",
    );
    // DIAGNOSTICS_BASE_URL overrides the companion's place.
    check_render(
        &[("RUNBOOK_BASE_URL", &format!("{wiki}/runbook")), ("DIAGNOSTICS_BASE_URL", "https://diag.example.org/pg/")],
        &format!("{wiki}/runbook"),
        "https://diag.example.org/pg",
        "runbook-exporter",
    );
}

#[test]
fn render_script_refuses_bad_bases_and_writes_nothing() {
    let bad = [
        ("RUNBOOK_BASE_URL", "ftp://x"),
        ("RUNBOOK_BASE_URL", "https://x|y"),
        ("RUNBOOK_BASE_URL", "https://x/a b"),
        ("DIAGNOSTICS_BASE_URL", "ftp://x"),
        ("DIAGNOSTICS_BASE_URL", "https://x/\"y"),
        ("DIAGNOSTICS_BASE_URL", "https://x/#y"),
        ("EXPORTER_JOB", "a b"),
    ];
    for (name, value) in bad {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().join("rules");
        let result = render(&out, &[(name, value)]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "render.sh with {name}={value:?}: {result:?}");
        assert!(stderr.contains(name), "the error for {name}={value:?} does not name the variable: {stderr}");
        assert!(!out.exists(), "render.sh wrote {} for {name}={value:?}", out.display());
    }
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
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.name()).collect();
    let mut coverage: BTreeMap<String, Coverage> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file_name, doc) in rule_tests() {
        for case in doc.tests.iter().flat_map(|group| &group.alert_rule_test) {
            let name = case.alertname.as_str();
            if !known.contains(name) {
                problems.push(format!("{file_name}: test for unknown alert {name:?}"));
            }
            let entry = coverage.entry(name.to_owned()).or_default();
            if case.exp_alerts.is_empty() {
                entry.quiet += 1;
            }
            for exp in &case.exp_alerts {
                let severity = exp.exp_labels.get("severity").map_or("", String::as_str);
                entry.firing_severities.insert(severity.to_owned());
                for key in ["summary", "description", "runbook_url"] {
                    if !exp.exp_annotations.contains_key(key) {
                        problems.push(format!("{file_name}: a firing {name} case does not expect its {key}"));
                    }
                }
                // A label that identifies the alert's object must appear in its description.
                let description = alerts
                    .iter()
                    .find(|a| a.name() == name && a.severity() == severity)
                    .map_or("", |a| a.annotations["description"].as_str());
                for label in ["datname", "query", "table", "relname"] {
                    let wanted = format!("$labels.{label}");
                    if exp.exp_labels.contains_key(label) && !description.contains(&wanted) {
                        problems.push(format!("{name}: description does not show {wanted}"));
                    }
                }
            }
        }
    }
    for a in &alerts {
        let c = coverage.get(a.name());
        if !c.is_some_and(|c| c.firing_severities.contains(a.severity())) {
            problems.push(format!("{} ({}): no test case where it fires", a.name(), a.severity()));
        }
        if c.is_none_or(|c| c.quiet == 0) {
            problems.push(format!("{}: no test case where it stays quiet (exp_alerts: [])", a.name()));
        }
    }
    problems.dedup();
    assert_no_problems(&problems, "promtool test coverage");
}

#[test]
fn readme_table_lists_every_alert_with_its_for_and_severity() {
    let readme = read(ALERTS_README);
    let mut problems = Vec::new();
    for a in alerts() {
        let prefix = format!("| {} |", a.name());
        let columns = format!("| {} | {} |", a.hold.as_deref().unwrap_or("–"), a.severity());
        if !readme.lines().any(|l| l.starts_with(&prefix) && l.contains(&columns)) {
            problems.push(format!("{} with {columns}", a.name()));
        }
    }
    assert_no_problems(&problems, &format!("{ALERTS_README} has no table row for"));
}

#[test]
fn recording_rules_are_named_level_metric_operations_and_tested() {
    let tests: String = files(RULE_TESTS, ".test.yml").iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let users: String = alerts().iter().chain(&records()).map(|r| r.expr.clone()).collect();
    let dashboard_text: String = dashboards().iter().map(|d| d.json.to_string()).collect();
    let mut problems = Vec::new();
    for record in records() {
        let name = record.name();
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
        let used_elsewhere = users.matches(name).count() > 0 || dashboard_text.contains(name);
        if !used_elsewhere {
            problems.push(format!("{name}: used by no alert, recording rule or dashboard"));
        }
    }
    assert_no_problems(&problems, "recording rules");
}

#[test]
fn rules_use_only_metrics_the_exporter_exposes() {
    let known = known_metrics();
    let mut problems = Vec::new();
    for rule in alerts().iter().chain(&records()) {
        for metric in metric_names(&rule.expr) {
            if !known.contains(&metric) {
                problems.push(format!("{}: {metric}", rule.name()));
            }
        }
    }
    assert_no_problems(&problems, "rules use metrics that neither the catalogue nor the exporter exposes");
}

#[test]
fn metric_names_are_read_outside_ranges_and_subqueries() {
    let expr = "max_over_time(pg_stat_archiver_failed_count[1d:1m]) > on(instance) \
        rate(pg_up[5m]) + job:pg_x:rate5m{datname=\"pg_fake\"} offset 1h";
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["job:pg_x:rate5m", "pg_stat_archiver_failed_count", "pg_up"]);
}

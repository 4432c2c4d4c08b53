//! The kustomize base in `deploy/kubernetes/`: what kustomize builds from it (our assembly, and real
//! `kubectl kustomize` where installed), the core kinds against the Kubernetes API schemas (`kubernetes-validate
//! --strict`, the oldest and newest version it knows), the prometheus-operator kinds' shape, the PrometheusRule
//! against `alerts/` and promtool, the generated files against `deploy/kubernetes/render.sh`, and the wiring
//! between the objects, the image and the rules. PostgreSQL-independent: the version matrix skips it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::support::data::{read, root};
use crate::support::generated::diff;
use crate::support::kubernetes::{self, BASE, assemble, bytes, container, documents, id, one};
use crate::support::monitoring::{RECORDS, RULES, alerts};
use crate::support::tools;

/// The Kubernetes versions the core kinds are validated against: the oldest still common in managed clusters,
/// and the newest the pinned kubernetes-validate knows.
const VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
const CORE_KINDS: [&str; 4] = ["Deployment", "Service", "ConfigMap", "NetworkPolicy"];

fn by_id(docs: Vec<Value>) -> BTreeMap<String, Value> {
    let n = docs.len();
    let map: BTreeMap<String, Value> = docs.into_iter().map(|d| (id(&d), d)).collect();
    assert_eq!(map.len(), n, "two objects of the same kind and name");
    map
}

#[test]
fn base_builds_as_kubectl_kustomize_builds_it() {
    let ours = by_id(assemble());
    let kinds: BTreeSet<&str> = ours.values().filter_map(|d| d["kind"].as_str()).collect();
    let expected = ["ConfigMap", "Deployment", "NetworkPolicy", "PrometheusRule", "Service", "ServiceMonitor"];
    assert_eq!(kinds, expected.into_iter().collect(), "the kinds of the base");
    let Some(kubectl) = kubernetes::kubectl_kustomize() else {
        println!("kubectl is not installed: the assembly is not compared with kubectl kustomize");
        return;
    };
    let kubectl = by_id(kubectl);
    assert_eq!(ours.keys().collect::<Vec<_>>(), kubectl.keys().collect::<Vec<_>>(), "objects");
    for (key, doc) in &ours {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
        assert!(
            doc == &kubectl[key],
            "{key} differs from kubectl kustomize's:\n{}",
            diff(&pretty(&kubectl[key]), &pretty(doc))
        );
    }
}

#[test]
fn core_kinds_pass_the_kubernetes_schemas_strictly() {
    let docs = assemble();
    let core: Vec<&Value> = docs.iter().filter(|d| CORE_KINDS.iter().any(|k| d["kind"] == *k)).collect();
    assert_eq!(core.len(), CORE_KINDS.len(), "one object of each core kind");
    let dir = tempfile::tempdir().unwrap();
    for version in VERSIONS {
        let (ok, said) = kubernetes::validate(&core, version, dir.path());
        assert!(ok, "kubernetes-validate --strict, Kubernetes {version}:\n{said}");
    }

    // The check has teeth: a misspelt field of the Deployment is refused, by name.
    let mut misspelt = kubernetes::one(&docs, "Deployment").clone();
    let security = &mut misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    let value = security.as_object_mut().unwrap().remove("readOnlyRootFilesystem").unwrap();
    security["readOnlyRootFileSystem"] = value;
    for version in VERSIONS {
        let (ok, said) = kubernetes::validate(&[&misspelt], version, dir.path());
        assert!(!ok && said.contains("readOnlyRootFileSystem"), "Kubernetes {version} takes a misspelt field:\n{said}");
    }
}

// The prometheus-operator kinds (monitoring.coreos.com/v1) have no schema in kubernetes-validate: their shape is
// checked here, every field known (deny_unknown_fields), as the operator's CRDs define them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Object<S> {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceMonitorSpec {
    selector: Selector,
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    path: String,
    interval: String,
    scrape_timeout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    hold: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn typed<T: serde::de::DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", id(doc)))
}

/// Seconds of a Prometheus duration such as `30s`, `5m` or `1h`.
fn seconds(duration: &str) -> u64 {
    let (n, unit) = duration.split_at(duration.find(|c: char| !c.is_ascii_digit()).unwrap_or(duration.len()));
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => panic!("duration {duration:?}: not one of s, m, h"),
    };
    n.parse::<u64>().unwrap_or_else(|e| panic!("duration {duration:?}: {e}")) * factor
}

#[test]
fn servicemonitor_and_prometheusrule_have_the_operator_shape() {
    let docs = assemble();
    let monitor: Object<ServiceMonitorSpec> = typed(one(&docs, "ServiceMonitor"));
    let rule: Object<PrometheusRuleSpec> = typed(one(&docs, "PrometheusRule"));
    for (api_version, kind, name) in [
        (&monitor.api_version, &monitor.kind, &monitor.metadata.name),
        (&rule.api_version, &rule.kind, &rule.metadata.name),
    ] {
        assert_eq!(api_version, "monitoring.coreos.com/v1", "{kind}");
        assert!(!name.is_empty() && !monitor.metadata.labels.is_empty(), "{kind} has a name and labels");
    }
    assert!(!monitor.spec.selector.match_labels.is_empty());
    assert_eq!(monitor.spec.endpoints.len(), 1);
    let endpoint = &monitor.spec.endpoints[0];
    assert_eq!((endpoint.path.as_str(), endpoint.port.is_empty()), ("/metrics", false), "a named port, /metrics");
    assert!(
        seconds(&endpoint.scrape_timeout) < seconds(&endpoint.interval),
        "scrapeTimeout {} must be shorter than interval {}",
        endpoint.scrape_timeout,
        endpoint.interval
    );
    let mut names = BTreeSet::new();
    for group in &rule.spec.groups {
        assert!(names.insert(group.name.as_str()), "group {} twice", group.name);
        assert!(!group.rules.is_empty(), "group {} has no rules", group.name);
        for r in &group.rules {
            assert!(r.alert.is_some() != r.record.is_some(), "{}: a rule is an alert or a record", group.name);
            assert!(!r.expr.trim().is_empty());
            if r.record.is_some() {
                assert!(r.hold.is_none() && r.annotations.is_empty(), "a record has no for/annotations");
            } else {
                assert!(r.labels.contains_key("severity") && r.annotations.contains_key("runbook_url"));
            }
        }
    }
}

/// The `groups` of the rules files in `alerts/`, records first (the order render.sh writes them in).
fn alert_groups() -> Vec<Value> {
    [RECORDS, RULES]
        .into_iter()
        .flat_map(|rel| {
            let doc = documents(rel, &read(rel)).remove(0);
            doc["groups"].as_array().unwrap_or_else(|| panic!("{rel} has no groups")).clone()
        })
        .collect()
}

#[test]
fn prometheusrule_holds_the_alerts_groups_and_passes_promtool() {
    let docs = assemble();
    let rule = one(&docs, "PrometheusRule");
    let groups = rule["spec"]["groups"].as_array().expect("spec.groups");
    assert!(
        groups == &alert_groups(),
        "the PrometheusRule's groups are not alerts/'s: run deploy/kubernetes/render.sh and commit the result"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheusrule-groups.yml");
    std::fs::write(&file, serde_json::json!({ "groups": groups }).to_string()).unwrap();
    let out = tools::run(tools::promtool().args(["check", "rules"]).arg(&file));
    let count: usize = groups.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum();
    assert!(out.contains(&format!("SUCCESS: {count} rules found")), "{out}");
}

#[test]
fn generated_files_are_what_render_sh_makes_of_queries_yaml_and_alerts() {
    // render.sh works relative to its own place: give it a copy of the repository's inputs.
    let tree = tempfile::tempdir().unwrap();
    let copy = |rel: &str| {
        let to = tree.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), &to).unwrap();
    };
    for rel in ["queries.yaml", RECORDS, RULES, "deploy/kubernetes/render.sh"] {
        copy(rel);
    }
    tools::run(&mut Command::new(tree.path().join("deploy/kubernetes/render.sh")));
    for file in ["queries.yaml", "prometheusrule.yaml"] {
        let rel = format!("{BASE}/{file}");
        let fresh = std::fs::read_to_string(tree.path().join(&rel)).unwrap();
        let committed = read(&rel);
        assert!(
            committed == fresh,
            "{rel} is stale: queries.yaml or alerts/ changed; run deploy/kubernetes/render.sh and commit the result\n{}",
            diff(&committed, &fresh)
        );
    }
}

/// The value of `name` among a container's `env`.
fn env<'a>(container: &'a Value, name: &str) -> &'a str {
    let vars = container["env"].as_array().expect("the container has env");
    let var = vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no {name} in the container's env"));
    var["value"].as_str().unwrap_or_else(|| panic!("{name} has no literal value"))
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Dockerfile's final-stage instruction `word` (`USER`, `EXPOSE`, `ENTRYPOINT`): its arguments.
fn dockerfile(word: &str) -> String {
    let text = read("Dockerfile");
    let line = text.lines().rev().find_map(|l| l.strip_prefix(&format!("{word} ")));
    line.unwrap_or_else(|| panic!("the Dockerfile has no {word}")).trim().to_owned()
}

#[test]
fn objects_the_image_and_the_rules_are_wired_together() {
    let docs = assemble();
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let exporter = container(&docs);
    let service = one(&docs, "Service");
    let monitor = one(&docs, "ServiceMonitor");
    let policy = one(&docs, "NetworkPolicy");

    // Selectors: the Deployment, the Service and the NetworkPolicy select the pods; the ServiceMonitor the Service.
    assert!(selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector");
    assert!(selects(&service["spec"]["selector"], pod_labels), "Service selector");
    assert!(selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy podSelector");
    assert!(selects(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]), "ServiceMonitor");

    // Ports: the image's EXPOSE, the container port, the Service's target, the ServiceMonitor's and the
    // NetworkPolicy's port, the probes: one named port.
    let port = &exporter["ports"][0];
    assert_eq!(dockerfile("EXPOSE"), port["containerPort"].to_string(), "EXPOSE and containerPort");
    let port_name = port["name"].as_str().expect("the container port has a name");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], port_name);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(exporter[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(exporter[probe]["httpGet"]["port"], port_name, "{probe}");
    }
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true, "Prometheus scrapes a pod whose database is down");

    // The image: this version's tag, which scripts/release.sh sets.
    assert_eq!(exporter["image"], format!("runbook-exporter:{}", env!("CARGO_PKG_VERSION")), "the image tag");

    // The user: the image's USER, non-root, nothing to escalate to, read-only root file system.
    let user = dockerfile("USER");
    let security = &pod["securityContext"];
    assert_eq!(format!("{}:{}", security["runAsUser"], security["runAsGroup"]), user, "runAs* and the image's USER");
    assert_eq!(security["runAsNonRoot"], true);
    let container_security = &exporter["securityContext"];
    assert_eq!(container_security["readOnlyRootFilesystem"], true);
    assert_eq!(container_security["allowPrivilegeEscalation"], false);
    assert_eq!(container_security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["enableServiceLinks"], false, "RUNBOOK_EXPORTER_* variables from the Service");

    // Volumes: the catalogue ConfigMap mounted where the image's --config.file looks, the password where
    // DATABASE_PASSWORD_FILE points, readable by the pod's group only.
    let mount = |volume: &str| {
        let mounts = exporter["volumeMounts"].as_array().expect("volumeMounts");
        let found = mounts.iter().find(|m| m["name"] == volume).unwrap_or_else(|| panic!("no mount of {volume}"));
        assert_eq!(found["readOnly"], true, "{volume} is mounted read-only");
        found["mountPath"].as_str().unwrap().to_owned()
    };
    let volume = |name: &str| {
        let volumes = pod["volumes"].as_array().expect("volumes");
        volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no volume {name}")).clone()
    };
    let entrypoint: Vec<String> = serde_json::from_str(&dockerfile("ENTRYPOINT")).unwrap();
    let config_file = &entrypoint[entrypoint.iter().position(|a| a == "--config.file").unwrap() + 1];
    let catalogue = volume("catalogue");
    let config_map = one(&docs, "ConfigMap");
    assert_eq!(catalogue["configMap"]["name"], config_map["metadata"]["name"]);
    let (dir, file) = config_file.rsplit_once('/').unwrap();
    assert_eq!(mount("catalogue"), dir, "the catalogue is mounted where the image's --config.file is");
    assert!(config_map["data"][file].as_str() == Some(read("queries.yaml").as_str()), "the ConfigMap holds {file}");
    let secret = volume("db-password");
    let item = &secret["secret"]["items"][0];
    assert_eq!(
        env(exporter, "DATABASE_PASSWORD_FILE"),
        format!("{}/{}", mount("db-password"), item["path"].as_str().unwrap()),
        "DATABASE_PASSWORD_FILE is the mounted secret's file"
    );
    assert_eq!(secret["secret"]["defaultMode"], 0o440, "the password file: root and the pod's group only");
    assert_eq!(security["fsGroup"], security["runAsGroup"], "the secret's group is the exporter's");
    let url = env(exporter, "DATABASE_URL");
    let userinfo = url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).map_or("", |(u, _)| u);
    assert!(!userinfo.contains(':'), "no password in DATABASE_URL: {url}");
    let db_port: u64 = url.rsplit_once(':').and_then(|(_, r)| r.split('/').next()?.parse().ok()).expect("a port");
    let egress: Vec<&Value> = policy["spec"]["egress"].as_array().expect("egress rules").iter().collect();
    let allowed = |port: u64, protocol: &str| {
        egress
            .iter()
            .flat_map(|rule| rule["ports"].as_array().into_iter().flatten())
            .any(|p| p["port"] == port && p["protocol"] == protocol)
    };
    assert!(allowed(db_port, "TCP"), "the NetworkPolicy lets the exporter reach DATABASE_URL's port {db_port}");
    assert!(allowed(53, "UDP") && allowed(53, "TCP"), "the NetworkPolicy lets the exporter resolve names");

    // Resources: requests and a memory limit; no CPU limit (throttling would slow scrapes, see deployment.yaml).
    let resources = &exporter["resources"];
    let (request, limit) = (&resources["requests"]["memory"], &resources["limits"]["memory"]);
    assert!(bytes(request.as_str().unwrap()) < bytes(limit.as_str().unwrap()), "memory request below the limit");
    assert!(resources["requests"]["cpu"].is_string() && resources["limits"]["cpu"].is_null(), "{resources}");

    // The job: the ServiceMonitor names it after the Service, and the rules select that job.
    let down = alerts().into_iter().find(|a| a.name() == "ExporterDown").expect("ExporterDown");
    let job = format!("job=\"{}\"", service["metadata"]["name"].as_str().unwrap());
    assert!(down.expr().contains(&job), "ExporterDown selects {job}? {}", down.expr());
    assert!(monitor["spec"]["jobLabel"].is_null(), "the job label is the Service's name");
}

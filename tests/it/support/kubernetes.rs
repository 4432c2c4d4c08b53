//! The kustomize base in `deploy/kubernetes/`: assembled here the way kustomize builds it (resources in the
//! listed files, the catalogue ConfigMap from `configMapGenerator` with kustomize's content-hash suffix, and the
//! Deployment's reference renamed to it), `kubectl kustomize` when it is installed, and `kubernetes-validate`
//! (PyPI, in a virtualenv that scripts/test.sh makes under `target/`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{read, root};
use super::tools;

pub const BASE: &str = "deploy/kubernetes";
/// The pinned `kubernetes-validate` (scripts/test.sh installs the same).
pub const VALIDATE_VERSION: &str = "1.37.0";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization {
    resources: Vec<String>,
    #[serde(default)]
    config_map_generator: Vec<Generator>,
}

#[derive(Deserialize)]
struct Generator {
    name: String,
    files: Vec<String>,
    #[serde(default)]
    options: GeneratorOptions,
}

#[derive(Default, Deserialize)]
struct GeneratorOptions {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Every document of a YAML stream, as JSON values.
pub fn documents(rel: &str, text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// kustomize's name suffix for a generated ConfigMap: the first 10 hex digits of the SHA-256 of Go's JSON of
/// `{data, kind, name}` (sorted keys, HTML characters escaped; the name is always empty, kustomize looks it up
/// under a path it does not find), with 0, 1, 3, a, e replaced so that it never reads as a number or a word.
fn config_map_suffix(data: &BTreeMap<String, String>) -> String {
    let encoded = json!({ "data": data, "kind": "ConfigMap", "name": "" }).to_string();
    let go_escaped = encoded
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let mut sha = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    sha.stdin.take().unwrap().write_all(go_escaped.as_bytes()).unwrap();
    let digest = String::from_utf8(sha.wait_with_output().unwrap().stdout).unwrap();
    digest[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// The base as `kubectl kustomize deploy/kubernetes` builds it (in no particular order).
pub fn assemble() -> Vec<Value> {
    let kustomization_path = format!("{BASE}/kustomization.yaml");
    let kustomization: Kustomization =
        serde_saphyr::from_str(&read(&kustomization_path)).unwrap_or_else(|e| panic!("{kustomization_path}: {e}"));
    let mut docs: Vec<Value> = kustomization
        .resources
        .iter()
        .flat_map(|file| {
            let rel = format!("{BASE}/{file}");
            documents(&rel, &read(&rel))
        })
        .collect();
    let mut renamed = BTreeMap::new();
    for generator in &kustomization.config_map_generator {
        let data: BTreeMap<String, String> = generator
            .files
            .iter()
            .map(|f| (f.rsplit('/').next().unwrap().to_owned(), read(&format!("{BASE}/{f}"))))
            .collect();
        let name = format!("{}-{}", generator.name, config_map_suffix(&data));
        let mut metadata = json!({ "name": name });
        if !generator.options.labels.is_empty() {
            metadata["labels"] = json!(generator.options.labels);
        }
        docs.push(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data }));
        renamed.insert(generator.name.clone(), name);
    }
    for doc in docs.iter_mut().filter(|d| d["kind"] == "Deployment") {
        for volume in doc["spec"]["template"]["spec"]["volumes"].as_array_mut().into_iter().flatten() {
            if let Some(name) = volume["configMap"]["name"].as_str().and_then(|n| renamed.get(n)) {
                volume["configMap"]["name"] = json!(name);
            }
        }
    }
    docs
}

/// `kubectl kustomize deploy/kubernetes`, or None when kubectl is not installed.
pub fn kubectl_kustomize() -> Option<Vec<Value>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kubectl = std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file())?;
    let text = tools::run(Command::new(kubectl).args(["kustomize", BASE]).current_dir(root()));
    Some(documents("kubectl kustomize", &text))
}

/// `kind/name` of a document.
pub fn id(doc: &Value) -> String {
    format!("{}/{}", doc["kind"].as_str().unwrap_or("?"), doc["metadata"]["name"].as_str().unwrap_or("?"))
}

/// The one document of `kind` in `docs`.
pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in the base, found {}", found.len());
    found[0]
}

/// The Deployment's exporter container.
pub fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// A Kubernetes quantity (`64Mi`, `1G`, `512`) in bytes.
pub fn bytes(quantity: &str) -> u64 {
    let units =
        [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000)];
    let (number, factor) =
        units.iter().find_map(|(u, f)| quantity.strip_suffix(u).map(|n| (n, *f))).unwrap_or((quantity, 1));
    number.parse::<u64>().unwrap_or_else(|e| panic!("quantity {quantity:?}: {e}")) * factor
}

/// The Deployment's memory limit in bytes.
pub fn memory_limit_bytes() -> u64 {
    let docs = assemble();
    let limit = container(&docs)["resources"]["limits"]["memory"].as_str().map(str::to_owned);
    bytes(&limit.expect("the Deployment sets a memory limit"))
}

/// The `kubernetes-validate` of the virtualenv scripts/test.sh makes (or `$KUBERNETES_VALIDATE`).
fn kubernetes_validate() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(p);
    }
    let venv = root().join("target/kubernetes-validate/bin/kubernetes-validate");
    assert!(
        venv.is_file(),
        "kubernetes-validate is not installed; install it with: python3 -m venv target/kubernetes-validate && \
         target/kubernetes-validate/bin/pip install kubernetes-validate=={VALIDATE_VERSION} (scripts/test.sh does)"
    );
    venv
}

/// `kubernetes-validate --strict` of `docs` against Kubernetes `version`: success, and what it said.
pub fn validate(docs: &[&Value], version: &str, dir: &Path) -> (bool, String) {
    let mut cmd = Command::new(kubernetes_validate());
    cmd.args(["--strict", "--no-warn", "--kubernetes-version", version]);
    for (i, doc) in docs.iter().enumerate() {
        let file = dir.join(format!("{i}-{}.json", id(doc).replace('/', "-")));
        std::fs::write(&file, doc.to_string()).unwrap();
        cmd.arg(file);
    }
    let out: Output = tools::output(&mut cmd);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

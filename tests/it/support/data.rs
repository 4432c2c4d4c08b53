//! Files of the repository the tests read: the shipped ones (`queries.yaml`, `alerts/`, `dashboards/`, ...)
//! and the tests' own under `tests/data/` (catalogues too long to write inline, configuration templates).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The repository root (`RUNBOOK_EXPORTER_ROOT` overrides it).
pub fn root() -> PathBuf {
    std::env::var_os("RUNBOOK_EXPORTER_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The text of `rel` (a path below the repository root).
pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `rel` read as YAML into `T`.
pub fn yaml<T: DeserializeOwned>(rel: &str) -> T {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The catalogue `tests/data/catalogues/NAME.yaml`.
pub fn catalogue(name: &str) -> String {
    read(&format!("tests/data/catalogues/{name}.yaml"))
}

/// The files in `dir` (below the repository root) whose names end with `suffix`, sorted; panics if there is none.
pub fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let path = root().join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{suffix} in {dir}");
    out
}

/// `p` relative to the repository root, for messages.
pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Replaces the single occurrence of `from` in `text`; panics naming `what` otherwise.
pub fn replace_once(text: &str, from: &str, to: &str, what: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, 1, "{what}: expected {from:?} once, found it {n} times; update the test");
    text.replacen(from, to, 1)
}

/// `tests/data/NAME` with each `@KEY@` placeholder replaced (each must occur exactly once, and none may be left).
pub fn template(name: &str, values: &[(&str, &str)]) -> String {
    let rel = format!("tests/data/{name}");
    let text = values.iter().fold(read(&rel), |t, (k, v)| replace_once(&t, &format!("@{k}@"), v, &rel));
    let placeholder = |rest: &str| {
        let name: String = rest.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
        (!name.is_empty() && rest[name.len()..].starts_with('@')).then_some(name)
    };
    let left = text.match_indices('@').find_map(|(i, _)| placeholder(&text[i + 1..]));
    assert!(left.is_none(), "unreplaced placeholder @{}@ in {rel}", left.unwrap_or_default());
    text
}

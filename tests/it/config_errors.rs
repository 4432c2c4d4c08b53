//! Every `tests/config/bad-*.yaml` must stop the exporter at start-up with the
//! diagnostics its `# expect:` lines give (file:line:column: field: message).

use crate::support::data::{catalogue, files};
use crate::support::exporter::run;

#[test]
fn every_bad_catalogue_is_refused_with_file_line_and_field() {
    let mut fixtures = files("tests/config", "");
    fixtures.retain(|p| p.file_name().unwrap().to_str().unwrap().starts_with("bad-"));
    assert!(fixtures.len() >= 10, "fixtures missing in tests/config");
    for fixture in fixtures {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{fixture:?} has no # expect: line");
        let refused = run(&["--config.file", fixture.to_str().unwrap()], &[]);
        assert_ne!(refused.code, 0, "{fixture:?} was accepted");
        for e in expected {
            assert!(refused.output().contains(e), "{fixture:?}: expected {e:?} in:\n{}", refused.output());
        }
    }
}

#[test]
fn a_missing_catalogue_names_the_file() {
    let refused = run(&["--config.file", "/nonexistent/queries.yaml"], &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.output().contains("/nonexistent/queries.yaml: cannot read catalogue"), "{}", refused.output());
}

#[test]
fn an_oversized_catalogue_is_refused_without_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    let refused = run(&["--config.file", path.to_str().unwrap()], &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.output().contains("catalogue is larger than"), "{}", refused.output());
}

#[test]
fn version_names_the_revision() {
    let version = run(&["--version"], &[]);
    assert_eq!(version.code, 0);
    let out = version.output();
    assert!(out.starts_with(&format!("runbook-exporter {} (revision ", env!("CARGO_PKG_VERSION"))), "{out}");
}

#[test]
fn a_flag_given_twice_takes_the_last_value() {
    // Container images bake in --config.file; an operator's own --config.file must win.
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, catalogue("bad_name")).unwrap();
    let refused = run(&["--config.file", "/nonexistent/baked.yaml", "--config.file", real.to_str().unwrap()], &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.output().contains("real.yaml:5:22"), "the second --config.file must be used: {}", refused.output());
}

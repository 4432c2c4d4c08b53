//! Every `tests/config/bad-*.yaml` must stop the exporter at start-up with the
//! diagnostics its `# expect:` lines give (file:line:column: field: message).

mod support;

#[test]
fn every_bad_catalogue_is_refused_with_file_line_and_field() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    fixtures.retain(|p| p.file_name().unwrap().to_str().unwrap().starts_with("bad-"));
    fixtures.sort();
    assert!(fixtures.len() >= 10, "fixtures missing in {dir:?}");
    for fixture in fixtures {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{fixture:?} has no # expect: line");
        let (code, output) = support::run_exporter(&["--config.file", fixture.to_str().unwrap()], &[]);
        assert_ne!(code, 0, "{fixture:?} was accepted");
        for e in expected {
            assert!(output.contains(e), "{fixture:?}: expected {e:?} in:\n{output}");
        }
    }
}

#[test]
fn a_missing_catalogue_names_the_file() {
    let (code, output) = support::run_exporter(&["--config.file", "/nonexistent/queries.yaml"], &[]);
    assert_ne!(code, 0);
    assert!(output.contains("/nonexistent/queries.yaml: cannot read catalogue"), "{output}");
}

#[test]
fn an_oversized_catalogue_is_refused_without_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    let (code, output) = support::run_exporter(&["--config.file", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(output.contains("catalogue is larger than"), "{output}");
}

#[test]
fn version_names_the_revision() {
    let (code, output) = support::run_exporter(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(output.starts_with(&format!("runbook-exporter {} (revision ", env!("CARGO_PKG_VERSION"))), "{output}");
}

#[test]
fn a_flag_given_twice_takes_the_last_value() {
    // Container images bake in --config.file; an operator's own --config.file must win.
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.yaml");
    std::fs::write(
        &real,
        "queries:\n  a:\n    help: x\n    sql: SELECT 1 AS v\n    metrics: [{name: bad-name, type: gauge, value: v}]\n",
    )
    .unwrap();
    let (code, output) = support::run_exporter(
        &["--config.file", "/nonexistent/baked.yaml", "--config.file", real.to_str().unwrap()],
        &[],
    );
    assert_ne!(code, 0);
    assert!(output.contains("real.yaml:5:22"), "the second --config.file must be used: {output}");
}

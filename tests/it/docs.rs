//! Generated documentation must match the code: the flag reference and the table of the exporter's own
//! metrics in README.md. `UPDATE_DOCS=1 cargo test --test it docs::` rewrites them.

use crate::support::data::root;
use crate::support::exporter::run;
use crate::support::generated::check_section;
use crate::support::library;

#[test]
fn readme_flag_reference_matches_help() {
    let help = run(&["--help"], &[]);
    assert_eq!(help.code, 0);
    let block =
        format!("```text\n{}\n```", help.stdout.trim_end().lines().map(str::trim_end).collect::<Vec<_>>().join("\n"));
    check_section(&root().join("README.md"), "flags", &block);
}

#[test]
fn readme_self_metrics_table_matches_the_exporter() {
    check_section(&root().join("README.md"), "self-metrics", &library::self_metrics_table());
}

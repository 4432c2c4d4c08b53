//! The checks shared with the stable proptest suite (`tests/it/support/`), included by every fuzz target.
//! Each target uses only part of them.
#![allow(dead_code)]

#[path = "../../tests/it/support/fuzz_checks.rs"]
pub mod checks;
#[path = "../../tests/it/support/openmetrics.rs"]
pub mod openmetrics;

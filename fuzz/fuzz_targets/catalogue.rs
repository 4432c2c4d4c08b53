#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod checks;
#[path = "../../tests/support/openmetrics.rs"]
mod openmetrics;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Catalogue loader + validator: no panic; every error names the file and a line.
    checks::catalogue(&String::from_utf8_lossy(data));
});

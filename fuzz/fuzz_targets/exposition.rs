#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod checks;
#[path = "../../tests/support/openmetrics.rs"]
mod openmetrics;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // HELP texts and label values from the input: both formats pass the strict grammar check and round-trip.
    checks::exposition(&checks::families_from_bytes(data), None);
});

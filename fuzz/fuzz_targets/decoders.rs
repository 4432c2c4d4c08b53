#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod checks;
#[path = "../../tests/support/openmetrics.rs"]
mod openmetrics;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // numeric, interval, timestamps, inet, uuid, ... as sample values and as labels: no panic.
    checks::decoders(data);
});

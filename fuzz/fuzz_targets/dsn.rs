#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod checks;
#[path = "../../tests/support/openmetrics.rs"]
mod openmetrics;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Input: `password \0 template`, where {PW} in the template stands for the password.
    if let Some((url, password)) = checks::dsn_from_bytes(data) {
        checks::dsn(&url, &password, false);
    }
});

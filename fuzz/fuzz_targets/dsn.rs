#![no_main]

#[path = "../shared/mod.rs"]
mod shared;

use shared::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Input: `password \0 template`, where {PW}, {PWENC}, {PWQ} in the template stand for the password.
    if let Some((template, password)) = checks::dsn_from_bytes(data) {
        checks::dsn(&template, &password, false);
    }
});

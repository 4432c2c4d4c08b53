#![no_main]

#[path = "../shared/mod.rs"]
mod shared;

use shared::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Catalogue loader + validator: no panic; every error names the file and a line.
    checks::catalogue(&String::from_utf8_lossy(data));
});

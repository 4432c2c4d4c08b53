#![no_main]

#[path = "../shared/mod.rs"]
mod shared;

use shared::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // numeric, interval, timestamps, inet, uuid, ... as sample values and as labels: no panic.
    checks::decoders(data);
});

#![no_main]

#[path = "../shared/mod.rs"]
mod shared;

use shared::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // HELP texts and label values from the input: both formats pass the strict grammar check and round-trip.
    checks::exposition(&checks::families_from_bytes(data), None);
});

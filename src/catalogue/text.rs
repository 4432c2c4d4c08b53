//! Text helpers of the catalogue: help texts and durations as people read them.

use std::time::Duration;

/// A duration as words: `5 minutes`, `1 minute`, `30 seconds`, `1.5 seconds`.
pub fn spoken_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let (n, unit) = if d.as_millis().is_multiple_of(3_600_000) && secs >= 3600.0 {
        (secs / 3600.0, "hour")
    } else if d.as_millis().is_multiple_of(60_000) && secs >= 60.0 {
        (secs / 60.0, "minute")
    } else {
        (secs, "second")
    };
    let plural = if n == 1.0 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

/// `s` with every run of white space as one space, trimmed.
pub fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

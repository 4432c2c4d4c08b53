//! The PostgreSQL version matrix of `scripts/test.sh`, read from `scripts/pg-versions.conf` (`KEY=value`
//! lines, the same file the script sources).

use super::data::read;

const FILE: &str = "scripts/pg-versions.conf";

/// The majors of `KEY` (`SYSTEM_MAJOR`, `FULL_MAJORS` or `CATALOGUE_MAJORS`).
pub fn majors(key: &str) -> Vec<u32> {
    let value = words(key);
    value.iter().map(|v| v.parse().unwrap_or_else(|_| panic!("{FILE}: {key}={value:?}"))).collect()
}

/// The space-separated words of `KEY`'s value.
pub fn words(key: &str) -> Vec<String> {
    let text = read(FILE);
    let value = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{FILE} has no {key}= line"));
    let value = value.split('#').next().unwrap().trim().trim_matches('"');
    value.split_whitespace().map(str::to_owned).collect()
}

/// Every major the matrix tests, in order.
pub fn all_majors() -> Vec<u32> {
    let mut all: Vec<u32> =
        ["SYSTEM_MAJOR", "FULL_MAJORS", "CATALOGUE_MAJORS"].iter().flat_map(|k| majors(k)).collect();
    all.sort();
    all.dedup();
    all
}

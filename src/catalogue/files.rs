//! `files:`: sets of files the exporter watches next to the database, such as
//! the runbook's `pg_dump` backups, and the metric families each set exposes.
//!
//! A set only ever reads a directory listing, file metadata and the first
//! bytes of its newest file, so the catalogue keeps its read-only nature.

use std::path::PathBuf;
use std::time::Duration;

use super::names::glob_match;

/// A validated `files:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    /// The set's name, also the prefix of its metric names.
    pub name: String,
    /// What the files are, with the runbook section.
    pub help: String,
    /// The directory scanned (not recursively); relative paths were resolved against the catalogue's directory.
    pub directory: PathBuf,
    /// Glob on file names: `*` any run of characters, `?` one character.
    pub pattern: String,
    /// Bytes the newest file must start with (e.g. `PGDMP` for `pg_dump --format=custom`).
    pub header: Option<Vec<u8>>,
    /// How long one scan is reused.
    pub ttl: Duration,
    /// Directory entries one scan reads at most; a larger directory fails the scan with a reason.
    pub max_entries: usize,
}

/// One metric family of a file set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMetric {
    /// Matching regular files.
    Files,
    /// Modification time of the newest match.
    NewestTimestamp,
    /// Size of the newest match.
    NewestSize,
    /// Size of the match before the newest.
    PreviousSize,
    /// Whether the newest match starts with the header.
    NewestHeaderMatch,
}

impl FileMetric {
    /// Every family, in exposition order.
    pub const ALL: [FileMetric; 5] = [
        FileMetric::Files,
        FileMetric::NewestTimestamp,
        FileMetric::NewestSize,
        FileMetric::PreviousSize,
        FileMetric::NewestHeaderMatch,
    ];

    /// The name's suffix after the set's name.
    pub fn suffix(self) -> &'static str {
        match self {
            FileMetric::Files => "files",
            FileMetric::NewestTimestamp => "newest_timestamp_seconds",
            FileMetric::NewestSize => "newest_size_bytes",
            FileMetric::PreviousSize => "previous_size_bytes",
            FileMetric::NewestHeaderMatch => "newest_header_match",
        }
    }
}

impl FileSet {
    /// The metric name of `metric` for this set.
    pub fn metric_name(&self, metric: FileMetric) -> String {
        format!("{}_{}", self.name, metric.suffix())
    }

    /// The HELP text of `metric` for this set.
    pub fn metric_help(&self, metric: FileMetric) -> String {
        let what = match metric {
            FileMetric::Files => "Number of files",
            FileMetric::NewestTimestamp => "Unix time the newest file was last modified",
            FileMetric::NewestSize => "Size in bytes of the newest file",
            FileMetric::PreviousSize => "Size in bytes of the second newest file",
            FileMetric::NewestHeaderMatch => "1 when the newest file starts with the expected header, else 0",
        };
        format!(
            "{what}, of the files matching {} in {} (symlinks not followed): {} Cached for up to {}.",
            self.pattern,
            self.directory.display(),
            self.help,
            super::text::spoken_duration(self.ttl)
        )
    }

    /// Whether a file name matches the set's pattern.
    pub fn matches(&self, file_name: &str) -> bool {
        glob_match(&self.pattern, file_name)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogue::names::glob_match;

    #[test]
    fn globs_match_whole_names() {
        let m = |p: &str, n: &str| glob_match(p, n);
        assert!(m("backup-*.dump*", "backup-20260108-120000.dump"));
        assert!(m("backup-*.dump*", "backup-20260108-120000.dump.gz"));
        assert!(!m("backup-*.dump*", "backup-20260108-120000.sql"));
        assert!(!m("backup-*.dump*", "old-backup-1.dump"));
        assert!(m("a?c", "abc") && !m("a?c", "ac") && m("*", "") && m("**x", "yyx"));
        assert!(!m("*a*a*a*a*a*b", &"a".repeat(40)), "no match, and no exponential backtracking");
    }
}

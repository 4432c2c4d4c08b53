//! Scanning a `files:` set: the only code that reads the file system at scrape time.
//!
//! A scan lists one directory (not recursively), keeps the regular files whose
//! names match the pattern (symlinks are not followed, so a `backup-latest.dump`
//! link does not count twice), and reads the first bytes of the newest one.
//! **Invariant:** the work of one scan is bounded by the set's `max_entries`;
//! a scan never panics, and every failure comes back as a reason.

use std::fs;
use std::io::{self, Read};
use std::time::UNIX_EPOCH;

use crate::catalogue::FileSet;

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Matching regular files.
    pub files: usize,
    /// The newest match (by modification time).
    pub newest: Option<FileInfo>,
    /// The match before the newest.
    pub previous: Option<FileInfo>,
    /// Whether the newest match starts with the set's header; `None` without a header or a match.
    pub header_match: Option<bool>,
}

/// One file's facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileInfo {
    /// Modification time, Unix seconds.
    pub modified: f64,
    /// Size in bytes.
    pub size: u64,
}

/// Lists `set.directory` and reports on the files matching `set.pattern`; the error is a reason for humans.
pub fn scan(set: &FileSet) -> Result<Scan, String> {
    let dir = set.directory.display();
    let entries = fs::read_dir(&set.directory).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("directory {dir} does not exist"),
        io::ErrorKind::PermissionDenied => format!("permission denied reading directory {dir}"),
        io::ErrorKind::NotADirectory => format!("{dir} is not a directory"),
        _ => format!("cannot read directory {dir}: {e}"),
    })?;
    let mut found: Vec<(FileInfo, std::path::PathBuf)> = Vec::new();
    let mut read = 0usize;
    for entry in entries {
        read += 1;
        if read > set.max_entries {
            return Err(format!("more than {} entries in directory {dir} (raise max_entries)", set.max_entries));
        }
        let entry = entry.map_err(|e| format!("cannot read directory {dir}: {e}"))?;
        let matches = entry.file_name().to_str().is_some_and(|n| set.matches(n));
        // file_type() does not follow symlinks: a link to a backup is not a second backup.
        if !matches || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // A file removed between the listing and this call is simply not counted.
        let Ok(meta) = entry.metadata() else { continue };
        let modified =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64());
        found.push((FileInfo { modified, size: meta.len() }, entry.path()));
    }
    found.sort_by(|a, b| b.0.modified.total_cmp(&a.0.modified).then_with(|| b.1.cmp(&a.1)));
    let header_match = match (&set.header, found.first()) {
        (Some(header), Some((_, path))) => Some(starts_with(path, header)),
        _ => None,
    };
    Ok(Scan {
        files: found.len(),
        newest: found.first().map(|f| f.0),
        previous: found.get(1).map(|f| f.0),
        header_match,
    })
}

/// Whether the file at `path` starts with `header`; an unreadable file does not.
fn starts_with(path: &std::path::Path, header: &[u8]) -> bool {
    let mut buf = vec![0u8; header.len()];
    fs::File::open(path).and_then(|f| f.take(header.len() as u64).read_exact(&mut buf)).is_ok() && buf == header
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn set(dir: &Path) -> FileSet {
        FileSet {
            name: "backup".into(),
            help: "Backups.".into(),
            directory: dir.to_owned(),
            pattern: "backup-*.dump*".into(),
            header: Some(b"PGDMP".to_vec()),
            ttl: Duration::from_secs(60),
            max_entries: 100,
        }
    }

    fn write(dir: &Path, name: &str, body: &[u8], age: Duration) {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn the_newest_match_and_the_one_before_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "backup-1.dump", b"PGDMP-old-and-large-enough", Duration::from_secs(7200));
        write(dir.path(), "backup-2.dump", b"PGDMP-new", Duration::from_secs(60));
        write(dir.path(), "notes.txt", b"PGDMP", Duration::ZERO);
        std::os::unix::fs::symlink(dir.path().join("backup-2.dump"), dir.path().join("backup-latest.dump")).unwrap();
        std::fs::create_dir(dir.path().join("backup-dir.dump")).unwrap();
        let scan = scan(&set(dir.path())).unwrap();
        assert_eq!(scan.files, 2, "no symlink, no directory, no other name");
        assert_eq!(scan.newest.map(|f| f.size), Some(9));
        assert_eq!(scan.previous.map(|f| f.size), Some(26));
        let age = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() - scan.newest.unwrap().modified;
        assert!((59.0..70.0).contains(&age), "newest is a minute old: {age}");
        assert_eq!(scan.header_match, Some(true));
    }

    #[test]
    fn a_newest_file_without_the_header_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "backup-1.dump", b"PGDMP", Duration::from_secs(60));
        write(dir.path(), "backup-2.dump", b"-- plain SQL", Duration::ZERO);
        write(dir.path(), "backup-3.dump", b"", Duration::from_secs(3600));
        assert_eq!(scan(&set(dir.path())).unwrap().header_match, Some(false));
        let mut no_header = set(dir.path());
        no_header.header = None;
        assert_eq!(scan(&no_header).unwrap().header_match, None);
    }

    #[test]
    fn failures_come_back_as_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(scan(&set(&missing)).unwrap_err(), format!("directory {} does not exist", missing.display()));
        write(dir.path(), "backup-1.dump", b"PGDMP", Duration::ZERO);
        let file = dir.path().join("backup-1.dump");
        assert_eq!(scan(&set(&file)).unwrap_err(), format!("{} is not a directory", file.display()));
        let empty = scan(&set(dir.path())).unwrap();
        assert_eq!((empty.files, empty.header_match), (1, Some(true)));
        for i in 0..5 {
            write(dir.path(), &format!("other-{i}"), b"", Duration::ZERO);
        }
        let mut small = set(dir.path());
        small.max_entries = 5;
        assert!(scan(&small).unwrap_err().starts_with("more than 5 entries in directory"));
        let none = scan(&FileSet { pattern: "nothing-*".into(), ..set(dir.path()) }).unwrap();
        assert_eq!(none, Scan { files: 0, newest: None, previous: None, header_match: None });
    }
}

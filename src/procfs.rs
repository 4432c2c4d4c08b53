//! The exporter's own process facts from Linux's `/proc/self`, for the
//! standard `process_*` metrics every Prometheus exporter serves.
//!
//! Read when `/metrics` is served, before encoding (encoding does no I/O).
//! Elsewhere than Linux, or when `/proc` cannot be read, the facts are
//! `None` and the metrics are left out rather than made up.

/// Clock ticks per second of `/proc/self/stat` times: `USER_HZ`, 100 on every Linux architecture
/// Prometheus' own procfs library supports.
const USER_HZ: f64 = 100.0;

/// Resource use of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: f64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// The soft limit on open file descriptors.
    pub max_fds: f64,
}

/// This process's resource use, if `/proc/self` can be read.
pub fn read() -> Option<Resources> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(Resources {
        cpu_seconds: cpu_seconds(&stat)?,
        resident_bytes: status_kib(&status, "VmRSS:")? * 1024.0,
        virtual_bytes: status_kib(&status, "VmSize:")? * 1024.0,
        // The directory's own descriptor, open while it is listed, is not counted.
        open_fds: open_fds.saturating_sub(1) as f64,
        max_fds: max_open_files(&limits)?,
    })
}

/// utime + stime of a `/proc/PID/stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` value of `/proc/PID/status`.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit of "Max open files" in `/proc/PID/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(f64::INFINITY),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_formats() {
        let stat = "4242 (tokio (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 12345 1000 200";
        assert_eq!(cpu_seconds(stat), Some(3.8));
        let status = "Name:\tx\nVmSize:\t  123456 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(9876.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(123456.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let r = read().expect("/proc/self is readable on Linux");
        assert!(r.resident_bytes > 0.0 && r.virtual_bytes >= r.resident_bytes, "{r:?}");
        assert!(r.open_fds >= 3.0 && r.max_fds >= r.open_fds, "{r:?}");
        assert!(r.cpu_seconds >= 0.0);
    }
}

//! Child processes the tests start (PostgreSQL, the exporter, Prometheus, Alertmanager): one guard that stops
//! its process by PID when dropped, also when the test panics, and always reaps it.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long a stopped process may take to exit before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(30);

/// A running child process, stopped on drop with its stop signal (then SIGKILL after a grace period).
pub struct Guard {
    child: Option<Child>,
    stop_signal: &'static str,
}

impl Guard {
    /// Spawns `cmd`; `what` names it in the panic message when it cannot start. `stop_signal` is what drop sends
    /// first (`KILL` to end it at once).
    pub fn spawn(what: &str, cmd: &mut Command, stop_signal: &'static str) -> Guard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
        Guard { child: Some(child), stop_signal }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child itself, e.g. to take its output pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process was stopped")
    }

    /// Whether the process has exited (or was stopped); an exited process is reaped.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits up to `bound` for the process to exit by itself; its exit status, or `None` if it is still running.
    pub fn wait_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Some(status);
            }
            if start.elapsed() > bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and waits for the process to exit, at most [`GRACE`]; then SIGKILL. Does nothing when stopped.
    pub fn stop_with(&mut self, sig: &str) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            signal(child.id(), sig);
            let start = Instant::now();
            while start.elapsed() < GRACE && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Stops the process with its stop signal.
    pub fn stop(&mut self) {
        self.stop_with(self.stop_signal);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` (`TERM`, `STOP`, ...) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ =
        Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).stderr(std::process::Stdio::null()).status();
}

/// Whether the tests run as root (then PostgreSQL runs as `postgres`, and the exporter may drop to `nobody`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

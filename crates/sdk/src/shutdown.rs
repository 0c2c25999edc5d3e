//! Graceful shutdown for long-running modules.
//!
//! A Linux container learns that its pod is stopping from SIGTERM; WASI has
//! no signals, so skiff's runtime tells a Wasm container through a file:
//!
//! * At start, the runtime sets `SKIFF_SHUTDOWN_FILE` to a path inside a
//!   directory it preopens for the container (e.g.
//!   `/run/skiff/shutdown`); the file does not exist yet.
//! * When the pod is being stopped (deleted, evicted, a failed liveness
//!   probe: whenever Kubernetes would send SIGTERM), the runtime creates the
//!   file. Its content is the deadline: the Unix time in whole seconds, in
//!   decimal, at which the grace period (`terminationGracePeriodSeconds`)
//!   ends; it may be empty when there is none.
//! * The module should finish its work and return from `main` (exit code 0
//!   makes the container `Completed`). At the deadline the runtime stops the
//!   instance, as the kubelet sends SIGKILL, and the container ends with exit
//!   code 137.
//!
//! A module that never looks at the file is simply stopped at the deadline.
//! Without `SKIFF_SHUTDOWN_FILE` (outside skiff, in native tests, in
//! per-request HTTP instances) shutdown is never requested.
//!
//! [`Shutdown`] polls the file; checking costs one `stat`, so polling every
//! [`POLL_INTERVAL`] while idle is cheap and stops a module within a tenth of
//! a second.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! sdk::run_until_shutdown(Duration::from_secs(10), || {
//!     sdk::info!("still here");
//! });
//! sdk::info!("stopping cleanly");
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The variable naming the file the runtime creates to stop the module.
pub const SHUTDOWN_FILE_ENV: &str = "SKIFF_SHUTDOWN_FILE";

/// How often [`Shutdown::sleep`] checks the file while it waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The shutdown signal of this container: polls the file the runtime
/// creates when the pod stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    file: Option<PathBuf>,
}

impl Shutdown {
    /// The signal the runtime set up (`SKIFF_SHUTDOWN_FILE`); one that is
    /// never requested when the variable is unset or empty.
    pub fn from_env() -> Shutdown {
        let file = std::env::var_os(SHUTDOWN_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Shutdown { file }
    }

    /// A signal that is requested once `file` exists (for tests, or a
    /// module's own stop file).
    pub fn at(file: impl Into<PathBuf>) -> Shutdown {
        Shutdown {
            file: Some(file.into()),
        }
    }

    /// A signal that is never requested.
    pub fn never() -> Shutdown {
        Shutdown { file: None }
    }

    /// The file polled, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether the pod is being stopped.
    pub fn requested(&self) -> bool {
        match &self.file {
            Some(f) => std::fs::metadata(f).is_ok(),
            None => false,
        }
    }

    /// When the runtime will stop the instance, once shutdown is requested
    /// and the runtime wrote a deadline.
    pub fn deadline(&self) -> Option<SystemTime> {
        let text = std::fs::read_to_string(self.file.as_ref()?).ok()?;
        let secs: u64 = text.trim().parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    }

    /// The time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline()?;
        Some(
            deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Sleeps for `duration`, returning early with `true` as soon as
    /// shutdown is requested (checked every [`POLL_INTERVAL`]); `false` when
    /// the whole duration passed without a request.
    pub fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.requested() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            std::thread::sleep(POLL_INTERVAL.min(end - now));
        }
    }

    /// Calls `tick` every `interval` (measured from the start of one call
    /// to the start of the next) until shutdown is requested, then returns.
    /// `tick` runs at once, and is never interrupted.
    pub fn run<F: FnMut()>(&self, interval: Duration, mut tick: F) {
        while !self.requested() {
            let started = Instant::now();
            tick();
            if self.sleep(interval.saturating_sub(started.elapsed())) {
                return;
            }
        }
    }
}

/// Whether the pod is being stopped (see the [module docs](self)).
pub fn shutdown_requested() -> bool {
    Shutdown::from_env().requested()
}

/// Calls `tick` every `interval` until the pod is being stopped, then
/// returns so that `main` can clean up and exit 0.
pub fn run_until_shutdown<F: FnMut()>(interval: Duration, tick: F) {
    Shutdown::from_env().run(interval, tick)
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stop_file(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("skiff-sdk-shutdown-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("shutdown")
    }

    #[test]
    fn requested_once_the_file_exists_with_its_deadline() {
        let f = stop_file("deadline");
        let s = Shutdown::at(&f);
        assert!(!s.requested());
        assert_eq!(s.deadline(), None);
        // terminationGracePeriodSeconds from now, as the runtime writes it.
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        std::fs::write(&f, format!("{at}\n")).unwrap();
        assert!(s.requested());
        assert_eq!(s.deadline(), Some(UNIX_EPOCH + Duration::from_secs(at)));
        let left = s.remaining().unwrap();
        assert!(
            left > Duration::from_secs(28) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        // A deadline in the past leaves nothing; an empty file has none.
        std::fs::write(&f, "5").unwrap();
        assert_eq!(s.remaining(), Some(Duration::ZERO));
        std::fs::write(&f, "").unwrap();
        assert!(s.requested());
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn never_is_never_requested() {
        let s = Shutdown::never();
        assert!(!s.requested());
        assert_eq!(s.file(), None);
        let t = Instant::now();
        assert!(!s.sleep(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn sleep_wakes_up_when_the_pod_stops() {
        let f = stop_file("wake");
        let s = Shutdown::at(&f);
        let writer = {
            let f = f.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(f, "").unwrap();
            })
        };
        let t = Instant::now();
        assert!(s.sleep(Duration::from_secs(30)));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "woke within a poll: {:?}",
            t.elapsed()
        );
        writer.join().unwrap();
    }

    #[test]
    fn run_ticks_until_shutdown_then_returns() {
        let f = stop_file("run");
        let s = Shutdown::at(&f);
        let mut ticks = 0;
        s.run(Duration::from_millis(10), || {
            ticks += 1;
            if ticks == 3 {
                std::fs::write(&f, "").unwrap();
            }
        });
        assert_eq!(ticks, 3, "no tick after the request");
        // Already requested: returns without ticking.
        let mut more = 0;
        s.run(Duration::from_millis(10), || more += 1);
        assert_eq!(more, 0);
    }
}

//! The report pipe: how the shim and init tell [`crate::start`] the pid or
//! what failed. The caller hands its write end to the shim as stdin (std's
//! `Command` can pass no other descriptor without `unsafe`); shim and init
//! move it to a close-on-exec descriptor and put `/dev/null` on stdin, so
//! the pipe closes when the workload's exec succeeds.
//!
//! Lines: `pid <n>` from the shim, `error <message>` from either.

use std::fs::File;

use crate::error::{Context, Result};

/// Moves stdin (the report pipe) to a close-on-exec descriptor and puts
/// `/dev/null` on stdin. `None` when stdin was not a pipe (run by hand).
pub(crate) fn take_from_stdin() -> Result<Option<File>> {
    let is_pipe = std::fs::metadata("/proc/self/fd/0")
        .map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()))
        .unwrap_or(false);
    if !is_pipe {
        return Ok(None);
    }
    let fd = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3)
        .map_err(std::io::Error::from)
        .ctx(|| "dup the report pipe".to_string())?;
    stdin_to_dev_null()?;
    Ok(Some(File::from(fd)))
}

/// Puts `/dev/null` on stdin.
pub(crate) fn stdin_to_dev_null() -> Result<()> {
    let null = File::open("/dev/null").ctx(|| "open /dev/null".to_string())?;
    rustix::stdio::dup2_stdin(&null)
        .map_err(std::io::Error::from)
        .ctx(|| "dup /dev/null to stdin".to_string())
}

/// What the caller learned from the pipe.
pub(crate) struct Report {
    pub pid: Option<u32>,
    pub error: Option<String>,
}

pub(crate) fn parse(text: &str) -> Report {
    let mut r = Report {
        pid: None,
        error: None,
    };
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            r.pid = p.trim().parse().ok();
        } else if let Some(e) = line.strip_prefix("error ") {
            r.error.get_or_insert_with(|| e.to_string());
        }
    }
    r
}

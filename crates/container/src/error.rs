//! The crate's error type.

use std::io;

/// What went wrong while preparing, starting or tearing down a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed; `what` says which and on what.
    #[error("{what}: {}", errno_text(.source))]
    Sys {
        /// The operation, e.g. `mount /proc` or `write memory.limit_in_bytes`.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The container's process could not be started; the message comes from
    /// the shim or the init, e.g. `exec "/bin/nope": no such file or directory`.
    #[error("{0}")]
    Start(String),
    /// The spec asks for something this launcher cannot do.
    #[error("invalid container spec: {0}")]
    Spec(String),
    /// A state file (spec, status) could not be read or written as JSON.
    #[error("{what}: {source}")]
    Json {
        /// Which file.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `strerror` text in lower case, without Rust's "(os error N)" suffix, so
/// messages read like the ones container runtimes print.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let mut text = nix::errno::Errno::from_raw(n).desc().to_string();
            if let Some(first) = text.get(0..1) {
                let lower = first.to_lowercase();
                text.replace_range(0..1, &lower);
            }
            text
        }
        None => e.to_string(),
    }
}

/// Attaches "what was being done" to io and errno results.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sys {
            what: what(),
            source: io::Error::from(e),
        })
    }
}

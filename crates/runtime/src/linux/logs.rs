//! A Linux container's output into its CRI log file.
//!
//! The container writes to two plain files in its directory (`stdout`,
//! `stderr`), not to pipes: a pipe would break (SIGPIPE) when the agent
//! restarts, while a file outlives it. A task tails both files and writes
//! each line into the [`LogFile`] `kubectl logs` reads; the offsets it has
//! copied up to are saved beside them, so an agent that re-adopts the
//! container carries on where the last one stopped.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::logs::{CriLog, LogFile, Stream};

/// How often the files are looked at while the container runs.
const POLL: Duration = Duration::from_millis(100);
/// The most read from one file in one go.
const CHUNK: u64 = 1 << 20;

/// The raw output files and the offsets file of a container directory.
pub fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("stdout"),
        dir.join("stderr"),
        dir.join("log-offsets"),
    )
}

/// Copy until `done` turns true, then copy what is left and finish the
/// last partial lines.
pub async fn copy(dir: PathBuf, log: LogFile, mut done: watch::Receiver<bool>) {
    let (out, err, offsets_path) = files(&dir);
    let mut offsets = read_offsets(&offsets_path);
    let streams = [
        (out, log.stream(Stream::Stdout)),
        (err, log.stream(Stream::Stderr)),
    ];
    loop {
        let finished = *done.borrow();
        // Local files, read a chunk at a time: cheap enough for the executor.
        let copied = pass(&streams, &mut offsets);
        if copied {
            let _ = std::fs::write(&offsets_path, format!("{} {}", offsets[0], offsets[1]));
        }
        if finished {
            break;
        }
        if !copied {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = done.changed() => {}
            }
        }
    }
    for (_, s) in &streams {
        let _ = s.finish();
    }
}

/// One pass over both files; whether anything was copied.
fn pass(streams: &[(PathBuf, CriLog); 2], offsets: &mut [u64; 2]) -> bool {
    let mut any = false;
    for (i, (path, sink)) in streams.iter().enumerate() {
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        if f.seek(SeekFrom::Start(offsets[i])).is_err() {
            continue;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.by_ref().take(CHUNK).read_to_end(&mut buf) {
            if n > 0 {
                let _ = sink.write(&buf);
                offsets[i] += n as u64;
                any = true;
            }
        }
    }
    any
}

fn read_offsets(path: &Path) -> [u64; 2] {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut it = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
    [it.next().unwrap_or(0), it.next().unwrap_or(0)]
}

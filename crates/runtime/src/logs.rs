//! Container log files in the CRI format.
//!
//! Every line a container writes becomes one line of its log file:
//!
//! ```text
//! 2026-11-22T10:00:00.123456789Z stdout F the line as written
//! ```
//!
//! the format the kubelet and containerd use (`<RFC 3339 nano time>
//! <stream> <tag> <text>`), so the node endpoint can serve `kubectl logs`
//! with `--timestamps`, `--tail`, `-f` and `--previous` from the files
//! alone. A line longer than [`MAX_LINE`] is split into partial lines
//! tagged `P`, the last part tagged `F`, as containerd splits them.
//!
//! [`CriLog`] is a guest's stdout or stderr: wasmtime-wasi writes into it
//! (through [`wasmtime_wasi::cli::StdoutStream`]) and it appends whole lines
//! to the file. Writes are small appends to a local file, done in place
//! rather than on a blocking pool: the cost is a `write(2)` per line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// The longest line written as one log line; longer output is split.
pub const MAX_LINE: usize = 16 * 1024;

/// Which of a container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log file shared by a container's stdout and stderr.
///
/// The file is opened for each batch of lines rather than held open: a
/// node runs thousands of mostly quiet containers, and a descriptor each
/// would spend the process's open-file limit long before memory.
#[derive(Clone)]
pub struct LogFile {
    path: Arc<PathBuf>,
    /// Serializes writers so two streams' lines never interleave mid-line;
    /// holds the open file when the log is kept open ([`LogFile::open_held`]).
    lock: Arc<Mutex<Option<std::fs::File>>>,
}

impl LogFile {
    /// Create (or keep) the log file at `path`.
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogFile {
            path: Arc::new(path.to_path_buf()),
            lock: Arc::new(Mutex::new(None)),
        })
    }

    /// Like [`LogFile::open`], but the file stays open: for a container
    /// that logs on every request (an HTTP function), where opening the
    /// file per line would cost more than the descriptor.
    pub fn open_held(path: &Path) -> std::io::Result<LogFile> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogFile {
            path: Arc::new(path.to_path_buf()),
            lock: Arc::new(Mutex::new(Some(f))),
        })
    }

    /// A writer for one stream of the container.
    pub fn stream(&self, stream: Stream) -> CriLog {
        CriLog {
            file: self.clone(),
            stream,
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Write one log line (`text` holds no newline).
    pub fn write_line(&self, stream: Stream, partial: bool, text: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(text.len() + 48);
        encode_line(&mut out, stream, partial, text);
        self.append(&out)
    }

    /// Append already encoded lines with one open and one write.
    fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = held.as_mut() {
            return f.write_all(lines);
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&*self.path)?;
        f.write_all(lines)
    }
}

/// `<time> <stream> <P|F> <text>\n` onto `out`.
fn encode_line(out: &mut Vec<u8>, stream: Stream, partial: bool, text: &[u8]) {
    out.extend_from_slice(timestamp().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One stream of a container, turning written bytes into CRI log lines.
///
/// Clones share the partially written line, so every handle wasmtime-wasi
/// makes of the stream continues the same line.
#[derive(Clone)]
pub struct CriLog {
    file: LogFile,
    stream: Stream,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl CriLog {
    /// Take `bytes` as written by the container: complete lines are written
    /// out, the rest waits for its newline (or for [`CriLog::finish`]).
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            self.encode(&mut out, &pending[start..end]);
            start = end + 1;
        }
        pending.drain(..start);
        // A line that never ends must not grow without bound.
        while pending.len() >= MAX_LINE {
            encode_line(&mut out, self.stream, true, &pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
        drop(pending);
        self.file.append(&out)
    }

    /// Encode a complete line, split into partial lines when too long.
    fn encode(&self, out: &mut Vec<u8>, text: &[u8]) {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut chunks = text.chunks(MAX_LINE).peekable();
        if chunks.peek().is_none() {
            encode_line(out, self.stream, false, b"");
        }
        while let Some(c) = chunks.next() {
            encode_line(out, self.stream, chunks.peek().is_some(), c);
        }
    }

    /// The container ended: write out what it left without a newline.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return Ok(());
        }
        let rest = std::mem::take(&mut *pending);
        drop(pending);
        let mut out = Vec::new();
        self.encode(&mut out, &rest);
        self.file.append(&out)
    }
}

impl wasmtime_wasi::cli::IsTerminal for CriLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CriLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CriLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .expect("log")
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().expect("ts");
                assert!(
                    chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
                    "RFC 3339 timestamp: {ts}"
                );
                let stream = p.next().expect("stream").to_string();
                let tag = p.next().expect("tag").to_string();
                (stream, tag, p.next().unwrap_or("").to_string())
            })
            .collect()
    }

    #[test]
    fn lines_split_across_writes_stay_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("0.log");
        let log = LogFile::open(&path).expect("open");
        let out = log.stream(Stream::Stdout);
        out.write(b"hel").expect("w");
        out.write(b"lo\nwor").expect("w");
        out.write(b"ld\r\n\n").expect("w");
        assert_eq!(
            lines(&path),
            vec![
                ("stdout".into(), "F".into(), "hello".into()),
                ("stdout".into(), "F".into(), "world".into()),
                ("stdout".into(), "F".into(), "".into()),
            ]
        );
    }

    #[test]
    fn stdout_and_stderr_interleave_in_one_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("0.log");
        let log = LogFile::open(&path).expect("open");
        log.stream(Stream::Stdout).write(b"a\n").expect("w");
        log.stream(Stream::Stderr).write(b"b\n").expect("w");
        let got = lines(&path);
        assert_eq!(got[0].0, "stdout");
        assert_eq!(got[1], ("stderr".into(), "F".into(), "b".into()));
    }

    #[test]
    fn a_last_line_without_newline_is_written_at_finish() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("0.log");
        let out = LogFile::open(&path).expect("open").stream(Stream::Stdout);
        out.write(b"no newline").expect("w");
        assert!(lines(&path).is_empty(), "held until the line ends");
        out.finish().expect("finish");
        assert_eq!(lines(&path)[0].2, "no newline");
    }

    #[test]
    fn long_lines_become_partial_lines_as_containerd_writes_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("0.log");
        let out = LogFile::open(&path).expect("open").stream(Stream::Stdout);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        out.write(&long).expect("w");
        out.write(b"\n").expect("w");
        let got = lines(&path);
        let tags: Vec<&str> = got.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(tags, ["P", "P", "F"]);
        assert_eq!(got[2].2.len(), 10);
        assert_eq!(
            got.iter().map(|l| l.2.len()).sum::<usize>(),
            long.len(),
            "nothing lost"
        );
    }
}

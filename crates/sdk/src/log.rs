//! Structured logging in logfmt, one line per event, for `kubectl logs`.
//!
//! A Wasm container's stdout and stderr are its log, exactly as for a Linux
//! container; the runtime stores each line with its time, so
//! `kubectl logs --timestamps` works and lines carry no time of their own.
//! The macros write lines like
//!
//! ```text
//! level=info msg="reading taken" sensor=greenhouse-1 temperature_c=21.5
//! level=warn msg="sensor slow" sensor=greenhouse-1 note="took 3 tries"
//! ```
//!
//! which read well as they are and which log tools (Loki, Vector, `grep
//! level=error`) parse as key=value pairs. `println!` stays plain: nothing
//! here touches it.
//!
//! * The message is always quoted; a field value is quoted when it is empty
//!   or contains a space, `=`, `"` or a control character. Inside quotes,
//!   `\` and `"` are escaped with `\`, newline, carriage return and tab are
//!   `\n`, `\r`, `\t`, and other control characters `\u00XX`, so one event is
//!   always one line.
//! * Keys are Rust identifiers in the macros; other keys (through [`log`])
//!   have spaces, `=`, `"` and control characters replaced by `_`.
//! * `LOG_LEVEL` (`debug`, `info`, `warn`, `error`; default `info`) in the
//!   container's environment hides the levels below it.
//! * Lines go to stdout, except in HTTP handlers where stdout is the
//!   response: [`crate::serve`] switches them to stderr ([`set_output`]).
//!
//! ```
//! let path = "/index.html";
//! sdk::info!("request served", path = path, status = 200);
//! sdk::debug!("details", bytes = 1024);
//! sdk::warn!("slow request", millis = 830);
//! sdk::error!(format!("cannot open {}", "/etc/config/app"), error = "not found");
//! ```

use std::fmt::{self, Display, Write as _};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// How severe an event is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Details for finding a problem; hidden unless `LOG_LEVEL=debug`.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the module handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The name written after `level=`: `debug`, `info`, `warn`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// Parses a level name, case-insensitively (`warning` is `warn`).
    pub fn parse(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            _ => Level::Error,
        }
    }
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The container's stdout (the default).
    Stdout,
    /// The container's stderr, for HTTP handlers whose stdout is the response.
    Stderr,
}

static OUTPUT: AtomicU8 = AtomicU8::new(0);
/// The minimum level; `UNSET` until `LOG_LEVEL` is first read.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// Sends every later log line to `output`.
pub fn set_output(output: Output) {
    let v = match output {
        Output::Stdout => 0,
        Output::Stderr => 1,
    };
    OUTPUT.store(v, Ordering::Relaxed);
}

/// Shows only events at `level` or above from now on, overriding `LOG_LEVEL`.
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether events at `level` are written (see `LOG_LEVEL`).
pub fn enabled(level: Level) -> bool {
    let mut min = MIN_LEVEL.load(Ordering::Relaxed);
    if min == UNSET {
        let from_env = std::env::var("LOG_LEVEL")
            .ok()
            .and_then(|v| Level::parse(&v))
            .unwrap_or(Level::Info);
        min = from_env as u8;
        MIN_LEVEL.store(min, Ordering::Relaxed);
    }
    level >= Level::from_u8(min)
}

/// Writes one event if its level is enabled: what the macros call.
///
/// ```
/// use sdk::log::{log, Level};
/// log(Level::Info, &"cache warmed", &[("entries", &128), ("source", &"disk")]);
/// ```
pub fn log(level: Level, msg: &dyn Display, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    match OUTPUT.load(Ordering::Relaxed) {
        0 => write_to(&mut io::stdout(), level, msg, fields),
        _ => write_to(&mut io::stderr(), level, msg, fields),
    }
}

/// Writes one event to stderr whatever the level: the sdk's own reports,
/// which must not go to stdout in HTTP handlers.
pub(crate) fn write_stderr(level: Level, msg: &dyn Display, fields: &[(&str, &dyn Display)]) {
    // The test harness captures `eprint!` but not `io::stderr()`; a module
    // must not panic on a closed stderr, which `eprint!` would.
    if cfg!(test) {
        eprintln!("{}", format_line(level, msg, fields));
    } else {
        write_to(&mut io::stderr(), level, msg, fields);
    }
}

/// Writes one event to `out` whatever the level, in one write so that lines
/// are never interleaved, ignoring write errors: a closed log must not stop
/// the module (unlike `println!`, which panics).
pub(crate) fn write_to<W: Write>(
    out: &mut W,
    level: Level,
    msg: &dyn Display,
    fields: &[(&str, &dyn Display)],
) {
    let mut line = format_line(level, msg, fields);
    line.push('\n');
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// The logfmt line for an event, without the line break.
pub fn format_line(level: Level, msg: &dyn Display, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = format!("level={} msg=", level.as_str());
    push_quoted(&mut line, &msg.to_string());
    for (key, value) in fields {
        line.push(' ');
        push_key(&mut line, key);
        line.push('=');
        push_value(&mut line, &value.to_string());
    }
    line
}

fn push_key(out: &mut String, key: &str) {
    if key.is_empty() {
        out.push('_');
    }
    for c in key.chars() {
        let bad = c == '=' || c == '"' || c.is_whitespace() || c.is_control();
        out.push(if bad { '_' } else { c });
    }
}

fn push_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == '=' || c == '"' || c.is_whitespace() || c.is_control());
    if needs_quotes {
        push_quoted(out, value);
    } else {
        out.push_str(value);
    }
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The macros' shared body: `level, message, key = value, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, $msg:expr $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::log::log(
            $level,
            &$msg,
            &[$((stringify!($key), &$value as &dyn ::std::fmt::Display)),*],
        )
    };
}

/// Logs at debug level: `sdk::debug!("message", key = value, ...)`.
/// Hidden unless `LOG_LEVEL=debug`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Debug, $($arg)+) };
}

/// Logs at info level: `sdk::info!("message", key = value, ...)`.
///
/// The message is anything that implements `Display` (use `format!` to build
/// one); each field is an identifier, `=`, and a `Display` value.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs at warn level: `sdk::warn!("message", key = value, ...)`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Warn, $($arg)+) };
}

/// Logs at error level: `sdk::error!("message", key = value, ...)`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Error, $($arg)+) };
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logfmt() {
        assert_eq!(
            format_line(
                Level::Info,
                &"reading taken",
                &[("sensor", &"gh-1"), ("temperature_c", &21.5)]
            ),
            r#"level=info msg="reading taken" sensor=gh-1 temperature_c=21.5"#
        );
        assert_eq!(
            format_line(Level::Error, &"x", &[]),
            r#"level=error msg="x""#
        );
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let line = |v: &str| format_line(Level::Warn, &"m", &[("k", &v)]);
        assert_eq!(
            line("plain/path:1.2"),
            r#"level=warn msg="m" k=plain/path:1.2"#
        );
        assert_eq!(line(""), r#"level=warn msg="m" k="""#);
        assert_eq!(line("two words"), r#"level=warn msg="m" k="two words""#);
        assert_eq!(line("a=b"), r#"level=warn msg="m" k="a=b""#);
        assert_eq!(line(r#"say "hi""#), r#"level=warn msg="m" k="say \"hi\"""#);
        // A backslash alone does not need quotes, but is escaped inside them.
        assert_eq!(line(r"C:\dir"), r#"level=warn msg="m" k=C:\dir"#);
        assert_eq!(line(r"a \ b"), r#"level=warn msg="m" k="a \\ b""#);
        assert_eq!(line("héllo"), r#"level=warn msg="m" k=héllo"#);
    }

    #[test]
    fn one_event_is_always_one_line() {
        let line = format_line(
            Level::Info,
            &"first\nsecond\r\tend\u{1b}[31m",
            &[("k", &"a\nb"), ("bell", &"\u{7}")],
        );
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert_eq!(
            line,
            r#"level=info msg="first\nsecond\r\tend\u001b[31m" k="a\nb" bell="\u0007""#
        );
    }

    #[test]
    fn keys_cannot_break_the_format() {
        let line = format_line(
            Level::Info,
            &"m",
            &[("a key", &1), ("x=y", &2), ("", &3), ("q\"", &4)],
        );
        assert_eq!(line, r#"level=info msg="m" a_key=1 x_y=2 _=3 q_=4"#);
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" WARNING "), Some(Level::Warn));
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Debug < Level::Info && Level::Warn < Level::Error);
        for l in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            assert_eq!(Level::from_u8(l as u8), l);
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
    }

    #[test]
    fn write_to_ends_each_event_with_a_newline() {
        let mut out = Vec::new();
        write_to(&mut out, Level::Info, &"a", &[]);
        write_to(&mut out, Level::Warn, &"b", &[("n", &2)]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "level=info msg=\"a\"\nlevel=warn msg=\"b\" n=2\n"
        );
    }

    #[test]
    fn macros_build_fields_from_identifiers_and_expressions() {
        // The macros expand to `log`; check they compile with every form
        // and that filtering hides lower levels.
        set_level(Level::Error);
        assert!(!enabled(Level::Warn));
        assert!(enabled(Level::Error));
        let id = String::from("s1");
        let n = 3;
        crate::debug!("d");
        crate::info!("i", id = id, n = n + 1);
        crate::warn!(format!("w {}", n), trailing = 1,);
        if n > 5 {
            // Compiled, not run: an error line would reach the test output.
            crate::error!("e", path = "/x");
        }
        assert_eq!(id, "s1", "fields are borrowed, not moved");
    }
}

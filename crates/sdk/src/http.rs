//! HTTP handlers: skiff runs a Wasm container that declares a
//! `containerPort` as an HTTP function, with one fresh instance of the module
//! per request, and passes the request and response CGI-style (as WAGI does).
//!
//! Nothing is shared between requests: every request gets a new instance,
//! with new memory, so a handler may panic, leak or keep globals without
//! affecting the next request. [`serve`] is the whole entry point:
//!
//! ```no_run
//! fn main() {
//!     sdk::serve(|req| sdk::Response::text(200, format!("you asked for {}\n", req.path)))
//! }
//! ```
//!
//! # The protocol
//!
//! This is the contract between a guest and skiff's HTTP runtime; both
//! sides are implemented from it. [`Request::from_cgi`] and
//! [`Response::write_cgi`] are the guest side, [`Request::to_cgi_env`] and
//! [`Response::from_cgi`] the runtime side.
//!
//! ## Request: runtime to guest
//!
//! For each request the runtime instantiates the module and runs its WASI
//! `_start` (its `main`) with the container's arguments unchanged and:
//!
//! **Environment.** The container's own environment (its `env`, `envFrom`,
//! `HOSTNAME`), plus these variables, which win over any of the container's
//! variables with the same name:
//!
//! | variable | value |
//! |---|---|
//! | `REQUEST_METHOD` | the method as sent, e.g. `GET` |
//! | `PATH_INFO` | the request path without the query, still percent-encoded as the client sent it (unlike RFC 3875, so that `%2F` stays distinct from `/`); always starts with `/` |
//! | `QUERY_STRING` | what follows the first `?` of the request target, without the `?`; empty when there is none |
//! | `X_FULL_URL` | the URL the client asked for: `http://` or `https://`, the `Host` header (or the pod address when there is none), the path and `?query` |
//! | `SERVER_NAME` | the host of `X_FULL_URL`, without port |
//! | `SERVER_PORT` | the port of `X_FULL_URL` (80 or 443 when it names none) |
//! | `SERVER_PROTOCOL` | `HTTP/1.1` or `HTTP/2.0` |
//! | `SCRIPT_NAME` | empty: a module answers every path it is routed |
//! | `GATEWAY_INTERFACE` | `CGI/1.1` |
//! | `REMOTE_ADDR` | the client's IP address as the runtime sees it |
//! | `CONTENT_LENGTH` | the number of body bytes on stdin, in decimal; `0` when there is no body |
//! | `CONTENT_TYPE` | the `Content-Type` header; unset when the request has none |
//! | `HTTP_<NAME>` | every other request header: the name upper-cased with `-` turned into `_` (`X-Request-Id` is `HTTP_X_REQUEST_ID`); a header sent several times is one variable with the values joined by `, ` in order |
//!
//! The runtime never sets `HTTP_PROXY` (a request's `Proxy` header is
//! dropped, as CGI servers do since "httpoxy"), nor `HTTP_CONTENT_TYPE` or
//! `HTTP_CONTENT_LENGTH`.
//!
//! **stdin** carries exactly `CONTENT_LENGTH` bytes of request body, then
//! end of file. A chunked request body is collected by the runtime first.
//!
//! **stderr** goes to the pod's log, as for any container.
//!
//! ## Response: guest to runtime
//!
//! The guest writes the response to **stdout** and exits:
//!
//! 1. A header block: lines `Name: value`, each ended by `\n` (`\r\n` is
//!    accepted too), names in any case, then one empty line. Whitespace
//!    around the value is trimmed.
//! 2. The body: every byte after the empty line until the module exits.
//!
//! In the header block, `Status: CODE [REASON]` gives the status code, three
//! digits from 100 to 599 (the reason phrase is ignored). Without it the
//! status is 302 when there is a `Location` line and 200 otherwise. Every
//! other line is a response header, kept in order; a name may repeat
//! (`Set-Cookie`). `Content-Length`, `Transfer-Encoding` and `Connection`
//! lines are ignored: the runtime frames the body itself.
//!
//! The runtime answers **500 Internal Server Error** instead of what the
//! guest wrote when the module exits with a non-zero code, traps (a panic),
//! runs out of its time or memory, or writes no complete header block (no
//! empty line, a line without `:`, an invalid `Status`). The reason is in
//! the pod's log.
//!
//! ## Logging in a handler
//!
//! stdout is the response, so a handler must not `println!`. [`serve`]
//! switches [`crate::log`] to stderr, so `sdk::info!` and friends still reach
//! `kubectl logs`; `eprintln!` does too.

use std::fmt;
use std::io::{self, Read, Write};

/// Request headers that CGI passes without the `HTTP_` prefix.
const CONTENT_TYPE: &str = "CONTENT_TYPE";
const CONTENT_LENGTH: &str = "CONTENT_LENGTH";

/// Response header lines the runtime ignores because it frames the body.
const FRAMING_HEADERS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// An HTTP request as the handler sees it.
///
/// Header names are lower case with `-` between words (`x-request-id`): CGI
/// turns `-` into `_` and upper-cases names, so the original spelling is not
/// known; HTTP names are case-insensitive anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET` (from `REQUEST_METHOD`).
    pub method: String,
    /// The path, percent-encoded as sent, starting with `/` (from `PATH_INFO`).
    pub path: String,
    /// The raw query string without `?`, empty when none (from `QUERY_STRING`).
    pub query: String,
    /// The headers as `(lower-case name, value)`, sorted by name.
    pub headers: Vec<(String, String)>,
    /// The body, `Content-Length` bytes read from stdin.
    pub body: Vec<u8>,
    /// The full URL the client asked for (from `X_FULL_URL`), empty if unknown.
    pub full_url: String,
    /// The client's address (from `REMOTE_ADDR`), empty if unknown.
    pub remote_addr: String,
}

/// Why the CGI environment or stdin did not hold a usable request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// `REQUEST_METHOD` is not set: the module was not started by skiff's
    /// HTTP runtime (for example, a container without a `containerPort`).
    NotARequest,
    /// `CONTENT_LENGTH` is not a decimal number of bytes.
    InvalidContentLength(String),
    /// stdin ended before `CONTENT_LENGTH` bytes.
    ShortBody {
        /// Bytes announced by `CONTENT_LENGTH`.
        expected: u64,
        /// Bytes actually read.
        read: u64,
    },
    /// Reading stdin failed.
    Io(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotARequest => write!(
                f,
                "REQUEST_METHOD is not set: this module is an HTTP handler; run it as a container with a containerPort so that skiff calls it once per request"
            ),
            RequestError::InvalidContentLength(v) => {
                write!(f, "CONTENT_LENGTH {v:?} is not a number of bytes")
            }
            RequestError::ShortBody { expected, read } => write!(
                f,
                "request body ended after {read} of its {expected} bytes (CONTENT_LENGTH)"
            ),
            RequestError::Io(e) => write!(f, "reading the request body from stdin: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// A request with the given method and path and nothing else, for
    /// testing handlers natively; set the other fields as needed.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            full_url: String::new(),
            remote_addr: String::new(),
        }
    }

    /// Reads the request skiff's runtime passed to this instance: the
    /// process environment and stdin.
    pub fn from_env() -> Result<Request, RequestError> {
        let vars = std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        });
        Request::from_cgi(vars, io::stdin().lock())
    }

    /// Builds a request from CGI variables (see the [module docs](self)) and
    /// a body reader; variables that are not part of the protocol (the
    /// container's own environment) are ignored.
    pub fn from_cgi<I, R>(vars: I, body: R) -> Result<Request, RequestError>
    where
        I: IntoIterator<Item = (String, String)>,
        R: Read,
    {
        let mut req = Request::new("", "/");
        let mut method = None;
        let mut length = None;
        for (name, value) in vars {
            match name.as_str() {
                "REQUEST_METHOD" => method = Some(value),
                "PATH_INFO" => req.path = value,
                "QUERY_STRING" => req.query = value,
                "X_FULL_URL" => req.full_url = value,
                "REMOTE_ADDR" => req.remote_addr = value,
                CONTENT_LENGTH => {
                    length = Some(parse_length(&value)?);
                    req.headers.push(("content-length".to_string(), value));
                }
                CONTENT_TYPE => req.headers.push(("content-type".to_string(), value)),
                _ => {
                    if let Some(header) = header_name(&name) {
                        req.headers.push((header, value));
                    }
                }
            }
        }
        req.method = method.ok_or(RequestError::NotARequest)?;
        if req.path.is_empty() {
            req.path = "/".to_string();
        }
        req.headers.sort();
        req.body = read_body(body, length)?;
        Ok(req)
    }

    /// The CGI variables that pass this request to a guest, as the runtime
    /// sets them (see the [module docs](self)); the runtime adds
    /// `SERVER_PROTOCOL` and the container's own environment.
    pub fn to_cgi_env(&self) -> Vec<(String, String)> {
        let (server_name, server_port) = server_of(&self.full_url);
        let mut env = vec![
            ("REQUEST_METHOD".to_string(), self.method.clone()),
            ("PATH_INFO".to_string(), self.path.clone()),
            ("QUERY_STRING".to_string(), self.query.clone()),
            ("X_FULL_URL".to_string(), self.full_url.clone()),
            ("SERVER_NAME".to_string(), server_name),
            ("SERVER_PORT".to_string(), server_port),
            ("SCRIPT_NAME".to_string(), String::new()),
            ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
            ("REMOTE_ADDR".to_string(), self.remote_addr.clone()),
            (CONTENT_LENGTH.to_string(), self.body.len().to_string()),
        ];
        let mut joined: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.headers {
            let var = match name.to_ascii_lowercase().as_str() {
                "content-length" | "proxy" => continue,
                "content-type" => CONTENT_TYPE.to_string(),
                _ => format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
            };
            match joined.iter_mut().find(|(n, _)| *n == var) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => joined.push((var, value.clone())),
            }
        }
        env.extend(joined);
        env
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text, or `None` if it is not valid UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The query's `name=value` pairs, percent-decoded (`+` is a space), in
    /// order; a pair without `=` has an empty value.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode_query(k), decode_query(v)),
                None => (decode_query(p), String::new()),
            })
            .collect()
    }

    /// The decoded value of the first query parameter called `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// `HTTP_X_REQUEST_ID` → `x-request-id`; `None` for variables that are not
/// request headers (including `HTTP_PROXY`, which may come from the pod's
/// own environment and is never a request header).
fn header_name(var: &str) -> Option<String> {
    let rest = var.strip_prefix("HTTP_")?;
    if rest.is_empty() || rest == "PROXY" {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace('_', "-"))
}

fn parse_length(value: &str) -> Result<u64, RequestError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(0);
    }
    v.parse()
        .map_err(|_| RequestError::InvalidContentLength(value.to_string()))
}

fn read_body<R: Read>(body: R, length: Option<u64>) -> Result<Vec<u8>, RequestError> {
    let mut buf = Vec::new();
    match length {
        // Without CONTENT_LENGTH there is no body: CGI says the server sets
        // it whenever there is one, and stdin may be the terminal.
        None | Some(0) => {}
        Some(n) => {
            body.take(n)
                .read_to_end(&mut buf)
                .map_err(|e| RequestError::Io(e.to_string()))?;
            if (buf.len() as u64) < n {
                return Err(RequestError::ShortBody {
                    expected: n,
                    read: buf.len() as u64,
                });
            }
        }
    }
    Ok(buf)
}

/// The host and port of a URL `scheme://host[:port]/...`.
fn server_of(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    // An IPv6 literal is bracketed: [::1]:8080.
    let port_sep = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|i| i + end),
        None => authority.rfind(':'),
    };
    match port_sep {
        Some(i) => (authority[..i].to_string(), authority[i + 1..].to_string()),
        None => (authority.to_string(), default_port.to_string()),
    }
}

/// Percent-decodes a query component; `+` is a space, malformed escapes are
/// kept as they are, invalid UTF-8 becomes U+FFFD.
fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_pair(*hi, *lo),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 2;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let h = (hi as char).to_digit(16)?;
    let l = (lo as char).to_digit(16)?;
    Some((h * 16 + l) as u8)
}

/// An HTTP response a handler returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100 to 599.
    pub status: u16,
    /// The headers as `(name, value)`, in order; names may repeat.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a guest's output is not a CGI response (the runtime then answers 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// No empty line ends the header block.
    NoHeaderEnd,
    /// A header line has no `:`.
    MalformedHeader(String),
    /// The `Status` line is not a code from 100 to 599.
    InvalidStatus(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::NoHeaderEnd => write!(
                f,
                "the module's output has no empty line ending its headers: an HTTP module writes headers, an empty line, then the body"
            ),
            ResponseError::MalformedHeader(l) => {
                write!(f, "the module wrote a header line without ':': {l:?}")
            }
            ResponseError::InvalidStatus(s) => {
                write!(f, "the module wrote an invalid Status {s:?}: want a code from 100 to 599")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

impl Response {
    /// A response with a status, no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response from an already serialized document
    /// (the sdk has no JSON serializer, to stay dependency-free).
    pub fn json(status: u16, json: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(json.into())
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "text/html; charset=utf-8")
            .with_body(body.into())
    }

    /// Adds a header (after any with the same name).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Writes the response as CGI output (see the [module docs](self)):
    /// `status: CODE`, the headers, an empty line, the body.
    ///
    /// A header that cannot be written safely (a name that is not an HTTP
    /// token, a value with a line break, a `Status` header competing with
    /// [`Response::status`]) is left out and reported on stderr, so a handler
    /// echoing client input cannot inject headers. A status outside 100–599
    /// is written as 500.
    pub fn write_cgi<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut head = String::new();
        let status = if (100..=599).contains(&self.status) {
            self.status
        } else {
            crate::log::write_stderr(
                crate::log::Level::Error,
                &"invalid response status, answering 500",
                &[("status", &self.status)],
            );
            500
        };
        head.push_str(&format!("status: {status}\n"));
        for (name, value) in &self.headers {
            match header_problem(name, value) {
                None => head.push_str(&format!("{name}: {value}\n")),
                Some(why) => crate::log::write_stderr(
                    crate::log::Level::Warn,
                    &"response header left out",
                    &[("header", name), ("reason", &why)],
                ),
            }
        }
        head.push('\n');
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }

    /// Parses what a guest wrote to stdout (see the [module docs](self)).
    /// `Content-Length`, `Transfer-Encoding` and `Connection` lines are
    /// dropped because the runtime frames the body itself.
    pub fn from_cgi(output: &[u8]) -> Result<Response, ResponseError> {
        let (head, body) = split_head(output).ok_or(ResponseError::NoHeaderEnd)?;
        let mut status = None;
        let mut headers = Vec::new();
        // `lines` also drops the `\r` of `\r\n` endings.
        for line in head.lines() {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ResponseError::MalformedHeader(line.to_string()))?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(ResponseError::MalformedHeader(line.to_string()));
            }
            if name.eq_ignore_ascii_case("status") {
                status = Some(parse_status(value)?);
            } else if !FRAMING_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let status = status.unwrap_or_else(|| {
            let redirect = headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("location"));
            if redirect {
                302
            } else {
                200
            }
        });
        Ok(Response {
            status,
            headers,
            body: body.to_vec(),
        })
    }
}

/// Splits CGI output at its first empty line into the header text (without
/// the final line break) and the body.
fn split_head(output: &[u8]) -> Option<(String, &[u8])> {
    // A response with no headers at all starts with the empty line.
    for start in [&b"\n"[..], &b"\r\n"[..]] {
        if let Some(body) = output.strip_prefix(start) {
            return Some((String::new(), body));
        }
    }
    let mut i = 0;
    while i < output.len() {
        if output[i] == b'\n' {
            let rest = &output[i + 1..];
            let skip = if rest.starts_with(b"\n") {
                Some(1)
            } else if rest.starts_with(b"\r\n") {
                Some(2)
            } else {
                None
            };
            if let Some(skip) = skip {
                let head = String::from_utf8_lossy(&output[..i]);
                let head = head.strip_suffix('\r').unwrap_or(&head).to_string();
                return Some((head, &rest[skip..]));
            }
        }
        i += 1;
    }
    None
}

fn parse_status(value: &str) -> Result<u16, ResponseError> {
    let code = value.split_whitespace().next().unwrap_or("");
    match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..=599).contains(&c) => Ok(c),
        _ => Err(ResponseError::InvalidStatus(value.to_string())),
    }
}

/// Why a header cannot be written, if it cannot.
fn header_problem(name: &str, value: &str) -> Option<String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Some("the name is not an HTTP token".to_string());
    }
    if name.eq_ignore_ascii_case("status") {
        return Some("the status comes from Response::status".to_string());
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Some("the value contains a line break or NUL".to_string());
    }
    None
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Serves the one request this instance was started for: reads it from the
/// environment and stdin, calls `handler`, writes its response to stdout.
///
/// Logging from [`crate::log`] goes to stderr from here on, because stdout is
/// the response. A malformed request is answered 400 without calling
/// `handler`, and the reason logged on stderr.
///
/// Without `REQUEST_METHOD` the module was not started for a request (a
/// container without a `containerPort`, or run by hand): `serve` logs why
/// and exits with code 1, so that the pod shows the mistake as an `Error`.
pub fn serve<F: Fn(Request) -> Response>(handler: F) {
    crate::log::set_output(crate::log::Output::Stderr);
    if std::env::var_os("REQUEST_METHOD").is_none() {
        crate::log::write_stderr(
            crate::log::Level::Error,
            &"not started for an HTTP request",
            &[("error", &RequestError::NotARequest)],
        );
        std::process::exit(1);
    }
    let vars = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    let stdout = io::stdout();
    if let Err(e) = serve_with(vars, io::stdin().lock(), &mut stdout.lock(), handler) {
        crate::log::write_stderr(
            crate::log::Level::Error,
            &"writing the response failed",
            &[("error", &e)],
        );
    }
}

/// [`serve`] with explicit CGI variables, body and output, for running a
/// handler through the whole protocol in native tests.
pub fn serve_with<I, R, W, F>(vars: I, body: R, out: &mut W, handler: F) -> io::Result<()>
where
    I: IntoIterator<Item = (String, String)>,
    R: Read,
    W: Write,
    F: Fn(Request) -> Response,
{
    let response = match Request::from_cgi(vars, body) {
        Ok(req) => handler(req),
        Err(e) => {
            let status = match e {
                RequestError::NotARequest => 500,
                _ => 400,
            };
            let msg = e.to_string();
            crate::log::write_stderr(crate::log::Level::Error, &"bad request", &[("error", &msg)]);
            Response::text(status, format!("{msg}\n"))
        }
    };
    response.write_cgi(out)
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn get_root() -> Vec<(String, String)> {
        vars(&[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/"),
            ("QUERY_STRING", ""),
        ])
    }

    #[test]
    fn cgi_request_with_headers_query_and_body() {
        let env = vars(&[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/items/a%2Fb"),
            ("QUERY_STRING", "q=hello+world&x=%41%zz&flag"),
            ("X_FULL_URL", "http://example.com/items/a%2Fb?q=hello+world"),
            ("SERVER_NAME", "example.com"),
            ("REMOTE_ADDR", "10.0.0.7"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("HTTP_X_REQUEST_ID", "abc"),
            ("HTTP_ACCEPT", "text/plain, */*"),
            ("PATH", "/usr/bin"),
            ("GREETING", "hi"),
        ]);
        let req = Request::from_cgi(env, &b"hello and more"[..]).unwrap();
        assert_eq!(req.method, "POST");
        // The path stays encoded: %2F is not a separator.
        assert_eq!(req.path, "/items/a%2Fb");
        assert_eq!(req.body, b"hello", "only CONTENT_LENGTH bytes are read");
        assert_eq!(req.body_text(), Some("hello"));
        assert_eq!(req.full_url, "http://example.com/items/a%2Fb?q=hello+world");
        assert_eq!(req.remote_addr, "10.0.0.7");
        assert_eq!(
            req.headers,
            vars(&[
                ("accept", "text/plain, */*"),
                ("content-length", "5"),
                ("content-type", "text/plain"),
                ("x-request-id", "abc"),
            ])
        );
        assert_eq!(req.header("X-Request-ID"), Some("abc"));
        assert_eq!(req.header("missing"), None);
        assert_eq!(req.query_param("q").as_deref(), Some("hello world"));
        // A malformed escape is kept as is.
        assert_eq!(req.query_param("x").as_deref(), Some("A%zz"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("nope"), None);
    }

    #[test]
    fn cgi_request_defaults_and_httpoxy() {
        // HTTP_PROXY may be the pod's own proxy setting: never a header.
        let mut env = vars(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_PROXY", "http://evil"),
            ("HTTP_", "x"),
        ]);
        env.push(("HTTP_HOST".into(), "h".into()));
        let req = Request::from_cgi(env, io::empty()).unwrap();
        assert_eq!(req.path, "/");
        assert_eq!(req.query, "");
        assert!(req.body.is_empty());
        assert_eq!(req.headers, vars(&[("host", "h")]));
    }

    #[test]
    fn no_content_length_means_no_body() {
        // stdin may be a terminal when CONTENT_LENGTH is absent: not read.
        let req = Request::from_cgi(get_root(), &b"ignored"[..]).unwrap();
        assert!(req.body.is_empty());
    }

    #[test]
    fn bad_requests_are_errors() {
        assert_eq!(
            Request::from_cgi(vars(&[("PATH_INFO", "/")]), io::empty()),
            Err(RequestError::NotARequest)
        );
        let mut env = get_root();
        env.push(("CONTENT_LENGTH".into(), "-1".into()));
        assert_eq!(
            Request::from_cgi(env, io::empty()),
            Err(RequestError::InvalidContentLength("-1".into()))
        );
        let mut env = get_root();
        env.push(("CONTENT_LENGTH".into(), "10".into()));
        let err = Request::from_cgi(env, &b"abc"[..]).unwrap_err();
        assert_eq!(
            err,
            RequestError::ShortBody {
                expected: 10,
                read: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "request body ended after 3 of its 10 bytes (CONTENT_LENGTH)"
        );
    }

    #[test]
    fn to_cgi_env_round_trips_through_from_cgi() {
        let mut req = Request::new("PUT", "/a/b");
        req.query = "k=v".into();
        req.full_url = "https://[::1]:8443/a/b?k=v".into();
        req.remote_addr = "127.0.0.1".into();
        req.body = b"xyz".to_vec();
        req.headers = vars(&[
            ("Content-Type", "application/json"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("proxy", "dropped"),
            ("content-length", "999"),
        ]);
        let env = req.to_cgi_env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SERVER_NAME"), Some("[::1]"));
        assert_eq!(get("SERVER_PORT"), Some("8443"));
        // CONTENT_LENGTH is the real body length, whatever the header said.
        assert_eq!(get("CONTENT_LENGTH"), Some("3"));
        assert_eq!(get("HTTP_X_MULTI"), Some("1, 2"));
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("HTTP_CONTENT_TYPE"), None);
        let back = Request::from_cgi(env, &req.body[..]).unwrap();
        assert_eq!(back.method, "PUT");
        assert_eq!(back.query, "k=v");
        assert_eq!(back.body, b"xyz");
        assert_eq!(back.header("content-type"), Some("application/json"));
        assert_eq!(back.header("x-multi"), Some("1, 2"));
    }

    #[test]
    fn server_name_and_port_from_url() {
        assert_eq!(
            server_of("http://example.com/x"),
            ("example.com".into(), "80".into())
        );
        assert_eq!(
            server_of("https://example.com?x"),
            ("example.com".into(), "443".into())
        );
        assert_eq!(server_of("http://h:8080"), ("h".into(), "8080".into()));
        assert_eq!(
            server_of("http://[fe80::1]/"),
            ("[fe80::1]".into(), "80".into())
        );
        assert_eq!(server_of(""), ("".into(), "80".into()));
    }

    fn written(r: &Response) -> String {
        let mut out = Vec::new();
        r.write_cgi(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn responses_are_written_as_cgi() {
        assert_eq!(
            written(&Response::text(200, "hi\n")),
            "status: 200\ncontent-type: text/plain; charset=utf-8\n\nhi\n"
        );
        assert_eq!(
            written(&Response::json(201, r#"{"ok":true}"#)),
            "status: 201\ncontent-type: application/json\n\n{\"ok\":true}"
        );
        assert_eq!(written(&Response::new(204)), "status: 204\n\n");
        let r = Response::html(404, "<p>no</p>")
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2");
        assert_eq!(
            written(&r),
            "status: 404\ncontent-type: text/html; charset=utf-8\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n<p>no</p>"
        );
        assert_eq!(r.header("set-cookie"), Some("a=1"));
    }

    #[test]
    fn unsafe_headers_and_statuses_are_not_written() {
        // Header injection through a value that came from the client.
        let r = Response::new(200)
            .with_header("x-echo", "a\r\nstatus: 302")
            .with_header("bad name", "v")
            .with_header("Status", "302")
            .with_header("x-ok", "fine");
        assert_eq!(written(&r), "status: 200\nx-ok: fine\n\n");
        assert_eq!(written(&Response::new(42)), "status: 500\n\n");
        assert_eq!(written(&Response::new(600)), "status: 500\n\n");
    }

    #[test]
    fn cgi_output_parses_as_the_runtime_reads_it() {
        let r = Response::from_cgi(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody\r\n\r\nmore").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            vars(&[("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2")])
        );
        assert_eq!(r.body, b"body\r\n\r\nmore");
        // What the sdk writes reads back the same.
        let out = Response::text(418, "teapot").with_header("x-b", " spaced ");
        let back = Response::from_cgi(written(&out).as_bytes()).unwrap();
        assert_eq!(back.status, 418);
        assert_eq!(back.header("x-b"), Some("spaced"));
        assert_eq!(back.body, b"teapot");
    }

    #[test]
    fn cgi_output_defaults_and_framing() {
        // CGI: no Status means 200, or 302 with a Location.
        let r = Response::from_cgi(b"content-type: text/plain\n\nok").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = Response::from_cgi(b"Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, 302);
        let r = Response::from_cgi(b"\nonly a body").unwrap();
        assert_eq!((r.status, r.headers.len()), (200, 0));
        assert_eq!(r.body, b"only a body");
        // The runtime frames the body: the guest's framing lines are dropped.
        let r = Response::from_cgi(
            b"Content-Length: 99\nTransfer-Encoding: chunked\nConnection: close\nX: y\n\nab",
        )
        .unwrap();
        assert_eq!(r.headers, vars(&[("X", "y")]));
    }

    #[test]
    fn malformed_cgi_output_is_an_error() {
        assert_eq!(Response::from_cgi(b""), Err(ResponseError::NoHeaderEnd));
        assert_eq!(
            Response::from_cgi(b"hello world\n"),
            Err(ResponseError::NoHeaderEnd)
        );
        assert_eq!(
            Response::from_cgi(b"hello world\n\n"),
            Err(ResponseError::MalformedHeader("hello world".into()))
        );
        assert_eq!(
            Response::from_cgi(b": v\n\n"),
            Err(ResponseError::MalformedHeader(": v".into()))
        );
        for bad in [
            "Status: 99",
            "Status: 600",
            "Status: abc",
            "Status:",
            "Status: 2000",
        ] {
            let out = format!("{bad}\n\n");
            assert!(
                matches!(
                    Response::from_cgi(out.as_bytes()),
                    Err(ResponseError::InvalidStatus(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn serve_with_runs_the_handler_through_the_protocol() {
        let mut env = vars(&[("REQUEST_METHOD", "POST"), ("PATH_INFO", "/echo")]);
        env.push(("CONTENT_LENGTH".into(), "4".into()));
        let mut out = Vec::new();
        serve_with(env, &b"ping"[..], &mut out, |req| {
            Response::text(
                200,
                format!(
                    "{} {} {}",
                    req.method,
                    req.path,
                    req.body_text().unwrap_or("")
                ),
            )
        })
        .unwrap();
        let r = Response::from_cgi(&out).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"POST /echo ping"[..])
        );
    }

    #[test]
    fn serve_with_answers_bad_requests_without_the_handler() {
        let mut out = Vec::new();
        serve_with(Vec::new(), io::empty(), &mut out, |_| panic!("not called")).unwrap();
        let r = Response::from_cgi(&out).unwrap();
        assert_eq!(r.status, 500);
        assert!(String::from_utf8_lossy(&r.body).contains("REQUEST_METHOD is not set"));
        let mut env = get_root();
        env.push(("CONTENT_LENGTH".into(), "x".into()));
        let mut out = Vec::new();
        serve_with(env, io::empty(), &mut out, |_| panic!("not called")).unwrap();
        assert_eq!(Response::from_cgi(&out).unwrap().status, 400);
    }
}

//! The front end of the `mixed` example: an HTTP Wasm function (a fresh
//! instance per request) that serves the page. The page asks
//! `/api/status`, which the Ingress routes to the Linux-container back end,
//! and shows its answer beside the front end's own.

use sdk::{Request, Response};

fn main() {
    sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    sdk::info!("request", method = req.method, path = req.path);
    let me = sdk::env_or("HOSTNAME", "frontend");
    match req.path.as_str() {
        "/" | "/index.html" => Response::html(200, page(&me)),
        "/healthz" => Response::text(200, "ok\n"),
        _ => Response::text(404, format!("no page at {}\n", req.path)),
    }
}

fn page(me: &str) -> String {
    format!(
        r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>skiff mixed</title></head>
<body>
<h1>skiff: a Wasm front end, a Linux back end</h1>
<p>This page: <b>front end {me}</b>, a WebAssembly function run by wasmtime.</p>
<p>The back end: <b id="backend">asking /api/status…</b></p>
<script>
fetch("/api/status").then(r => r.text()).then(t => {{
  document.getElementById("backend").textContent = t;
}});
</script>
</body>
</html>
"#
    )
}

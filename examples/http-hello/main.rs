//! An HTTP function: skiff starts a fresh instance of this module for every
//! request. It answers `hello from skiff` with the method and path, and
//! echoes the body of a POST.

use sdk::{Request, Response};

fn main() {
    sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    sdk::info!("request", method = req.method, path = req.path);
    let mut text = format!("hello from skiff: {} {}\n", req.method, req.path);
    if req.method == "POST" {
        text.push_str(&String::from_utf8_lossy(&req.body));
    }
    Response::text(200, text).with_header("x-served-by", sdk::env_or("HOSTNAME", "skiff"))
}

//! The official Python `kubernetes` client against skiff.

use std::process::Command;

use crate::harness::{require, Skiff};

#[test]
fn python_client_creates_lists_watches_and_deletes_pods() {
    let python = require("python3", "install Python 3 and `pip install kubernetes`");
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "the Python kubernetes client is needed: pip install kubernetes"
    );
    let s = Skiff::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_test.py");
    let out = Command::new(python)
        .arg(script)
        .arg(s.kubeconfig())
        .output()
        .expect("run the client test");
    assert!(
        out.status.success(),
        "client_test.py failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client: all checks passed"));
}

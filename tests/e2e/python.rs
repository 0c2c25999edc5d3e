//! The official Python `kubernetes` client against skiff: the script in
//! `tests/python/client_test.py` does the checking and exits non-zero on
//! the first failure, which fails this test with its output.

use std::process::Command;
use std::time::Duration;

use crate::harness::{require, run, Skiff};

#[test]
fn python_client_creates_lists_watches_and_deletes_pods() {
    let python = require("python3", "install Python 3 and `pip install kubernetes`");
    let mut probe = Command::new(&python);
    probe.args(["-c", "import kubernetes"]);
    assert_eq!(
        run(probe, None, Duration::from_secs(60)).code,
        0,
        "the Python kubernetes client is needed: pip install kubernetes"
    );
    let s = Skiff::api_only();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_test.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg("--kubeconfig").arg(s.kubeconfig());
    let out = run(cmd, None, Duration::from_secs(120));
    assert!(
        out.code == 0 && out.stdout.contains("python client: all checks passed"),
        "client_test.py failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    s.assert_no_panics();
}

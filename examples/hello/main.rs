//! A one-shot job: greets with `GREETING` (from the manifest's env or a
//! ConfigMap) in a logfmt line, then exits 0 so the Job completes.

fn main() {
    let greeting = sdk::env_or("GREETING", "hello from skiff");
    let pod = sdk::env_or("HOSTNAME", "unknown");
    sdk::info!(greeting, pod = pod);
}

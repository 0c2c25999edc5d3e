//! A stateful module: a small ledger kept in the pod's own volume.
//!
//! Each member of the StatefulSet (`ledger-0`, `ledger-1`, …) owns the
//! directory its `volumeClaimTemplates` entry gives it, mounted at
//! `DATA_DIR` (default `/data`). On start the module reads the file
//! `boots` there, adds one and writes it back (a new file renamed over the
//! old, so a crash never leaves half a number), then appends a line to
//! `journal` every interval until its pod stops. Deleting a pod and
//! letting the StatefulSet bring it back shows the count going on where
//! it was: the state belongs to the member, not to the pod.
//!
//! Settings: `DATA_DIR`, `INTERVAL_MS` (default 5000), from env or the
//! config volume as `sdk::config_value` reads them.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::exit;
use std::time::Duration;

fn main() {
    let member = sdk::env_or("HOSTNAME", "ledger");
    let data = sdk::config_value("DATA_DIR").unwrap_or_else(|| "/data".to_string());
    let interval_ms: u64 = match sdk::config_parse_or("INTERVAL_MS", 5000) {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => fail("INTERVAL_MS must be at least 1"),
        Err(e) => fail(&e.to_string()),
    };
    let dir = Path::new(&data);
    let boots = match read_boots(dir) {
        Ok(n) => n + 1,
        Err(e) => fail(&format!("cannot read {}/boots: {e}", data)),
    };
    if let Err(e) = write_boots(dir, boots) {
        fail(&format!("cannot write {}/boots: {e}", data));
    }
    sdk::info!("ledger started", member = member, boot = boots, data = data);

    let mut entries = 0u64;
    sdk::run_until_shutdown(Duration::from_millis(interval_ms), || {
        entries += 1;
        let line = format!("boot={boots} entry={entries}\n");
        let appended = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("journal"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match appended {
            Ok(()) => sdk::info!("entry", member = member, boot = boots, entry = entries),
            Err(e) => sdk::error!("cannot append to the journal", error = e.to_string()),
        }
    });
    sdk::info!("ledger stopped", member = member, boot = boots, entries = entries);
}

/// The boot count so far: 0 for a fresh volume.
fn read_boots(dir: &Path) -> std::io::Result<u64> {
    match fs::read_to_string(dir.join("boots")) {
        Ok(s) => s.trim().parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{:?} is not a count", s.trim()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Write the count to a new file and rename it over the old one.
fn write_boots(dir: &Path, n: u64) -> std::io::Result<()> {
    let tmp = dir.join("boots.tmp");
    fs::write(&tmp, format!("{n}\n"))?;
    fs::rename(&tmp, dir.join("boots"))
}

fn fail(why: &str) -> ! {
    sdk::error!("ledger cannot start", error = why);
    exit(2)
}

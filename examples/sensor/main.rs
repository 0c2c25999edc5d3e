//! A long-running IoT-style module: emits a reading every interval as a
//! logfmt line until its pod is stopped, then exits 0.
//!
//! Settings, each from an env var or else a file in the config volume
//! (`CONFIG_DIR`, default `/etc/config`):
//! * `SENSOR_ID`: the sensor's name (default: the pod name, `HOSTNAME`);
//! * `INTERVAL_MS`: milliseconds between readings (default 5000).

use std::process::exit;
use std::time::Duration;

fn main() {
    let id = sdk::config_value("SENSOR_ID").unwrap_or_else(|| sdk::env_or("HOSTNAME", "sensor"));
    let interval_ms: u64 = match sdk::config_parse_or("INTERVAL_MS", 5000) {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => bad_config("INTERVAL_MS must be at least 1"),
        Err(e) => bad_config(&e.to_string()),
    };
    sdk::info!("sensor started", sensor = id, interval_ms = interval_ms);

    let mut probe = Probe::new(&id);
    let mut seq = 0u64;
    sdk::run_until_shutdown(Duration::from_millis(interval_ms), || {
        seq += 1;
        let (temperature, humidity) = probe.read();
        sdk::info!(
            "reading",
            sensor = id,
            seq = seq,
            temperature_c = format!("{temperature:.1}"),
            humidity_pct = format!("{humidity:.1}"),
        );
    });
    sdk::info!("sensor stopped", sensor = id, readings = seq);
}

fn bad_config(why: &str) -> ! {
    sdk::error!("bad configuration", error = why);
    exit(2)
}

/// A simulated probe: values drift slowly around a base, differently for
/// each sensor id (a real module would read a device here).
struct Probe {
    state: u64,
    temperature: f64,
    humidity: f64,
}

impl Probe {
    fn new(id: &str) -> Probe {
        // FNV-1a of the id seeds the generator, so a sensor is repeatable.
        let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Probe {
            state: seed | 1,
            temperature: 21.0,
            humidity: 45.0,
        }
    }

    /// A uniform value in [-1, 1) from xorshift64.
    fn jitter(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn read(&mut self) -> (f64, f64) {
        self.temperature = (self.temperature + 0.2 * self.jitter()).clamp(-20.0, 50.0);
        self.humidity = (self.humidity + 0.5 * self.jitter()).clamp(0.0, 100.0);
        (self.temperature, self.humidity)
    }
}

//! Start latency of skiff's launcher next to crun's, on the same busybox
//! rootfs, in one run (`skiff bench container` can expose [`run`]; today the
//! crate's `benches/start.rs` does: `cargo bench -p container`).
//!
//! Measured per run, from the caller's side:
//! - skiff start→exec: [`crate::start`] returning, i.e. the workload's exec
//!   succeeded, in its namespaces and cgroup;
//! - skiff start→exit and crun start→exit of `/bin/true` (crun has no
//!   start→exec moment visible from outside, so this is the fair pair);
//! - create/delete cycles per second (start, wait, delete, cgroup removed).
//!
//! crun refuses to start on hosts where a cgroup v1 layout also mounts an
//! (empty) `/sys/fs/cgroup/unified`; [`private_cgroup_view`] unshares the
//! calling thread's mount namespace and detaches that mount, for both
//! runtimes alike.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::{CgroupSpec, Resources, Spec, Stdio3};

/// busybox applets linked into the test and benchmark rootfs.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "true", "false", "id", "hostname", "ls", "grep", "dd", "head",
    "tail", "ps", "wc", "touch", "env", "kill", "mount", "readlink", "seq",
];

/// Where a static busybox is found (Debian's `busybox-static`).
pub fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Makes a minimal rootfs in `dir`: a static busybox in `/bin` with its
/// applets as symlinks, and empty `/proc`, `/sys`, `/dev`, `/etc`, `/tmp`.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    let busybox = find_busybox()
        .ok_or_else(|| Error::Spec("no /bin/busybox: install busybox-static".into()))?;
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        let p = dir.join(d);
        fs::create_dir_all(&p).ctx(|| format!("mkdir {}", p.display()))?;
    }
    let target = dir.join("bin/busybox");
    fs::copy(&busybox, &target).ctx(|| format!("copy busybox to {}", target.display()))?;
    for a in APPLETS {
        let link = dir.join("bin").join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .ctx(|| format!("symlink {}", link.display()))?;
        }
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")
        .ctx(|| "write passwd".into())?;
    Ok(())
}

/// Unshares the calling thread's mount namespace, makes it private and
/// detaches `/sys/fs/cgroup/unified` if this is a cgroup v1 host, so crun
/// starts. Call it from a single-threaded process such as a benchmark's main.
pub fn private_cgroup_view() -> Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "unshare mount namespace".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| "make / private".into())?;
    let unified = Path::new("/sys/fs/cgroup/unified");
    if matches!(crate::Hierarchy::detect(), crate::Hierarchy::V1 { .. }) && unified.exists() {
        let _ = umount2(unified, MntFlags::MNT_DETACH);
    }
    Ok(())
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Runs per runtime.
    pub runs: usize,
    /// Scratch directory (rootfs, state dirs, crun bundle).
    pub work_dir: PathBuf,
    /// The executable that dispatches the hidden subcommand.
    pub exe: Option<PathBuf>,
    /// The crun binary; skipped when `None` or missing.
    pub crun: Option<PathBuf>,
}

/// Median, 99th percentile and mean of a series of runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// 50th percentile.
    pub median: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Stats {
    /// Summarizes `samples` (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        let total: Duration = samples.iter().sum();
        Stats {
            median: at(0.5),
            p99: at(0.99),
            mean: total / samples.len() as u32,
        }
    }
}

/// The numbers of one benchmark run.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// Runs per runtime.
    pub runs: usize,
    /// skiff, start() until the workload's exec succeeded.
    pub skiff_start_to_exec: Stats,
    /// skiff, start() until `/bin/true` exited.
    pub skiff_start_to_exit: Stats,
    /// crun run --bundle of `/bin/true`, spawn until exit.
    pub crun_start_to_exit: Option<Stats>,
    /// skiff create/start/wait/delete cycles per second.
    pub skiff_cycles_per_sec: f64,
    /// crun run cycles per second.
    pub crun_cycles_per_sec: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "container start, {} runs each (busybox rootfs, /bin/true)",
            self.runs
        )?;
        writeln!(
            f,
            "{:<26} {:>10} {:>10} {:>10}",
            "", "median ms", "p99 ms", "mean ms"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &Stats| {
            writeln!(
                f,
                "{:<26} {:>10.2} {:>10.2} {:>10.2}",
                name,
                ms(s.median),
                ms(s.p99),
                ms(s.mean)
            )
        };
        row(f, "skiff start→exec", &self.skiff_start_to_exec)?;
        row(f, "skiff start→exit", &self.skiff_start_to_exit)?;
        if let Some(c) = &self.crun_start_to_exit {
            row(f, "crun run start→exit", c)?;
            let ratio = ms(self.skiff_start_to_exit.median) / ms(c.median).max(f64::MIN_POSITIVE);
            writeln!(f, "skiff/crun (median start→exit): {ratio:.2}x")?;
        }
        writeln!(
            f,
            "skiff create/delete cycles/s: {:.1}",
            self.skiff_cycles_per_sec
        )?;
        if let Some(c) = self.crun_cycles_per_sec {
            writeln!(f, "crun run cycles/s: {c:.1}")?;
        }
        Ok(())
    }
}

/// Runs both runtimes `opts.runs` times, alternating, on one rootfs.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let rootfs = opts.work_dir.join("rootfs");
    if !rootfs.join("bin/busybox").exists() {
        busybox_rootfs(&rootfs)?;
    }
    let crun = opts.crun.clone().filter(|c| c.exists());
    let bundle = opts.work_dir.join("bundle");
    if crun.is_some() {
        write_crun_bundle(&bundle, &rootfs)?;
    }
    let mut exec_t = Vec::with_capacity(opts.runs);
    let mut exit_t = Vec::with_capacity(opts.runs);
    let mut crun_t = Vec::with_capacity(opts.runs);
    let mut skiff_total = Duration::ZERO;
    for i in 0..opts.runs {
        let spec = Spec {
            id: format!("bench{i}"),
            state_dir: opts.work_dir.join("state").join(format!("bench{i}")),
            rootfs: rootfs.clone(),
            args: vec!["/bin/true".into()],
            env: vec!["PATH=/bin".into()],
            cgroup: Some(CgroupSpec {
                path: format!("skiff-bench/bench{i}").into(),
                resources: Resources::default(),
            }),
            exe: opts.exe.clone(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let mut c = crate::start(&spec, Stdio3::default())?;
        exec_t.push(t0.elapsed());
        let status = c.wait()?;
        exit_t.push(t0.elapsed());
        c.delete()?;
        skiff_total += t0.elapsed();
        if status.code != 0 {
            return Err(Error::Start(format!(
                "bench container exited {}",
                status.code
            )));
        }
        if let Some(crun) = &crun {
            let t0 = Instant::now();
            let st = Command::new(crun)
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(format!("skiff-bench-{}-{i}", std::process::id()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status()
                .ctx(|| format!("run {}", crun.display()))?;
            crun_t.push(t0.elapsed());
            if !st.success() {
                return Err(Error::Start(format!("crun exited {st}")));
            }
        }
    }
    let _ = crate::cgroups::remove_path(&crate::Hierarchy::detect(), Path::new("skiff-bench"));
    let crun_total: Duration = crun_t.iter().sum();
    Ok(BenchReport {
        runs: opts.runs,
        skiff_start_to_exec: Stats::of(&mut exec_t),
        skiff_start_to_exit: Stats::of(&mut exit_t),
        crun_start_to_exit: (!crun_t.is_empty()).then(|| Stats::of(&mut crun_t)),
        skiff_cycles_per_sec: opts.runs as f64 / skiff_total.as_secs_f64().max(1e-9),
        crun_cycles_per_sec: (!crun_t.is_empty())
            .then(|| crun_t.len() as f64 / crun_total.as_secs_f64().max(1e-9)),
    })
}

/// An OCI bundle equivalent to the skiff spec above: same namespaces,
/// mounts, masked paths, default capabilities, `no_new_privs`, a cgroup.
fn write_crun_bundle(bundle: &Path, rootfs: &Path) -> Result<()> {
    fs::create_dir_all(bundle).ctx(|| format!("mkdir {}", bundle.display()))?;
    let caps: Vec<String> = crate::security::DEFAULT_CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": { "path": rootfs, "readonly": false },
        "hostname": "bench",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/bin/true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps }
        },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "cgroupsPath": "/skiff-bench-crun/c",
            "namespaces": [ { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" } ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    let p = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&config).map_err(|source| Error::Json {
        what: p.display().to_string(),
        source,
    })?;
    fs::write(&p, text).ctx(|| format!("write {}", p.display()))
}

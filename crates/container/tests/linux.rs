//! Integration tests of the container launcher against the real kernel.
//!
//! They need root and a static busybox (`apt-get install busybox-static`) and
//! fail, not skip, without them: a launcher test that silently skips in CI
//! tests nothing. The binary brings its own `main` (`harness = false`)
//! because it is also the executable the launcher re-executes as shim, init
//! and exec helper (`container::dispatch`). Tests run one after another: the
//! leak test counts the host's mounts, cgroups and processes.
//!
//! `cargo test -p container --test linux [-- NAME…]` runs those whose name
//! contains one of NAMEs.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use container::{CgroupSpec, Container, ExecRequest, Mount, Resources, Spec, Stdio3};

type TestResult = Result<(), String>;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

struct Fixture {
    dir: PathBuf,
    rootfs: PathBuf,
    cgroup_parent: PathBuf,
}

/// Output captured from a container's stdout and stderr.
struct Output {
    file_out: PathBuf,
    file_err: PathBuf,
}

impl Output {
    fn stdout(&self) -> String {
        fs::read_to_string(&self.file_out).unwrap_or_default()
    }
    fn stderr(&self) -> String {
        fs::read_to_string(&self.file_err).unwrap_or_default()
    }
}

impl Fixture {
    fn spec(&self, id: &str, script: &str) -> Spec {
        Spec {
            id: id.into(),
            state_dir: self.dir.join("state").join(id),
            rootfs: self.rootfs.clone(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into(), "HOME=/".into()],
            cgroup: Some(CgroupSpec {
                path: self.cgroup_parent.join(id),
                resources: Resources::default(),
            }),
            ..Default::default()
        }
    }

    fn start(&self, spec: &Spec) -> Result<(Container, Output), String> {
        let out = Output {
            file_out: self.dir.join(format!("{}.out", spec.id)),
            file_err: self.dir.join(format!("{}.err", spec.id)),
        };
        let io = Stdio3 {
            stdin: Stdio::null(),
            stdout: File::create(&out.file_out)
                .map_err(|e| e.to_string())?
                .into(),
            stderr: File::create(&out.file_err)
                .map_err(|e| e.to_string())?
                .into(),
        };
        let c = container::start(spec, io).map_err(|e| format!("start {}: {e}", spec.id))?;
        Ok((c, out))
    }

    /// Starts, waits, deletes; returns the status and output.
    fn run(&self, spec: &Spec) -> Result<(container::ExitStatus, Output), String> {
        let (mut c, out) = self.start(spec)?;
        let status = c.wait().map_err(|e| e.to_string())?;
        c.delete().map_err(|e| e.to_string())?;
        Ok((status, out))
    }
}

fn output_and_exit_code(f: &Fixture) -> TestResult {
    let (st, out) = f.run(&f.spec("out", "echo hello; echo oops >&2; exit 3"))?;
    check!(out.stdout() == "hello\n", "stdout {:?}", out.stdout());
    check!(out.stderr() == "oops\n", "stderr {:?}", out.stderr());
    check!(
        st.code == 3 && st.signal.is_none() && !st.oom_killed,
        "status {st:?}"
    );
    Ok(())
}

fn pid_one_hostname_env(f: &Fixture) -> TestResult {
    let mut spec = f.spec("pid1", "echo $$; hostname; env | sort");
    spec.hostname = Some("box".into());
    spec.env.push("GREETING=hi there".into());
    let (st, out) = f.run(&spec)?;
    check!(st.code == 0, "status {st:?}, stderr {}", out.stderr());
    check!(
        out.stdout() == "1\nbox\nGREETING=hi there\nHOME=/\nPATH=/bin\nPWD=/\nSHLVL=1\n",
        "stdout {:?}",
        out.stdout()
    );
    Ok(())
}

fn proc_and_root_are_the_containers(f: &Fixture) -> TestResult {
    let script = "ls /proc | grep -c '^[0-9]'; ls /; [ -e /work ] && echo host-visible-$((1+1)); cat /proc/1/cmdline; echo";
    let (st, out) = f.run(&f.spec("view", script))?;
    check!(st.code == 0, "status {st:?}, stderr {}", out.stderr());
    let text = out.stdout();
    let mut lines = text.lines();
    let pids: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(99);
    check!(pids <= 3, "{pids} pids in /proc: {text}");
    check!(
        !text.contains("host-visible-2"),
        "host files visible: {text}"
    );
    check!(
        text.contains("bin\ndev\netc\nproc\nsys\ntmp\n"),
        "/ is not the rootfs: {text}"
    );
    Ok(())
}

fn bind_mounts_and_readonly(f: &Fixture) -> TestResult {
    let vol = f.dir.join("vol");
    fs::create_dir_all(&vol).map_err(|e| e.to_string())?;
    fs::write(vol.join("data"), "from host\n").map_err(|e| e.to_string())?;
    let rw = f.dir.join("rw");
    fs::create_dir_all(&rw).map_err(|e| e.to_string())?;
    let hosts = f.dir.join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").map_err(|e| e.to_string())?;
    let mut spec = f.spec(
        "binds",
        "cat /data/data; touch /data/x 2>/dev/null && echo ro-writable; echo w > /scratch/w; cat /etc/hosts",
    );
    spec.mounts = vec![
        Mount {
            source: vol.clone(),
            destination: "/data".into(),
            readonly: true,
        },
        Mount {
            source: rw.clone(),
            destination: "/scratch".into(),
            readonly: false,
        },
        Mount {
            source: hosts,
            destination: "/etc/hosts".into(),
            readonly: true,
        },
    ];
    let (st, out) = f.run(&spec)?;
    check!(st.code == 0, "status {st:?}, stderr {}", out.stderr());
    check!(
        out.stdout() == "from host\n127.0.0.1 localhost\n",
        "stdout {:?}",
        out.stdout()
    );
    check!(
        fs::read_to_string(rw.join("w")).unwrap_or_default() == "w\n",
        "rw mount not written through"
    );
    check!(!vol.join("x").exists(), "read-only mount was written");
    // Only the mountpoint is made in the image, empty.
    check!(
        fs::read(f.rootfs.join("etc/hosts"))
            .map(|b| b.is_empty())
            .unwrap_or(true),
        "the image's /etc/hosts was written"
    );
    Ok(())
}

fn readonly_rootfs(f: &Fixture) -> TestResult {
    let mut spec = f.spec(
        "rofs",
        "touch /newfile && echo wrote; echo tmp > /dev/shm/ok && echo shm-ok",
    );
    spec.readonly_rootfs = true;
    let (st, out) = f.run(&spec)?;
    check!(st.code == 0, "status {st:?}");
    check!(
        out.stdout() == "shm-ok\n",
        "stdout {:?} stderr {:?}",
        out.stdout(),
        out.stderr()
    );
    check!(
        out.stderr().contains("Read-only file system"),
        "stderr {:?}",
        out.stderr()
    );
    check!(!f.rootfs.join("newfile").exists(), "rootfs written");
    Ok(())
}

fn user_and_capabilities(f: &Fixture) -> TestResult {
    let script = "id -u; id -g; grep -E '^Cap(Eff|Bnd)|NoNewPrivs' /proc/self/status";
    let mut spec = f.spec("user", script);
    spec.user = container::User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![2000],
    };
    let (st, out) = f.run(&spec)?;
    check!(st.code == 0, "status {st:?}, stderr {}", out.stderr());
    let text = out.stdout();
    check!(text.starts_with("1000\n1000\n"), "ids: {text}");
    check!(text.contains("CapEff:\t0000000000000000"), "caps: {text}");
    check!(
        text.contains("CapBnd:\t00000000a80425fb"),
        "bounding set: {text}"
    );
    check!(text.contains("NoNewPrivs:\t1"), "no_new_privs: {text}");

    let (st, out) = f.run(&f.spec("rootcaps", script))?;
    check!(st.code == 0, "status {st:?}");
    check!(
        out.stdout().contains("CapEff:\t00000000a80425fb"),
        "root caps: {}",
        out.stdout()
    );

    let mut spec = f.spec("addcaps", script);
    spec.capabilities.add = vec!["NET_ADMIN".into()];
    spec.capabilities.drop = vec!["CHOWN".into()];
    let (_, out) = f.run(&spec)?;
    check!(
        out.stdout().contains("CapEff:\t00000000a80435fa"),
        "add/drop: {}",
        out.stdout()
    );
    Ok(())
}

fn memory_limit_oom_kill(f: &Fixture) -> TestResult {
    let mut spec = f.spec("oom", "tail /dev/zero");
    if let Some(cg) = spec.cgroup.as_mut() {
        cg.resources.memory_limit = Some(32 << 20);
    }
    let (mut c, _out) = f.start(&spec)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = c.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = c.stop(Duration::ZERO);
            return Err("hog not killed within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    c.delete().map_err(|e| e.to_string())?;
    check!(
        st.oom_killed && st.code == 137 && st.signal == Some(9),
        "status {st:?}"
    );
    Ok(())
}

fn pids_limit(f: &Fixture) -> TestResult {
    // busybox sh gives up on the loop at the first failed fork.
    let mut spec = f.spec(
        "pids",
        "for i in $(seq 20); do sleep 30 & done; echo spawned; sleep 30",
    );
    if let Some(cg) = spec.cgroup.as_mut() {
        cg.resources.pids_max = Some(8);
    }
    let (mut c, out) = f.start(&spec)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.stderr().contains("fork")
        && !out.stdout().contains("spawned")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = c.cgroup().map(pids_max_events).unwrap_or(0);
    let err = out.stderr();
    c.stop(Duration::ZERO).map_err(|e| e.to_string())?;
    c.delete().map_err(|e| e.to_string())?;
    check!(
        !out.stdout().contains("spawned"),
        "20 forks succeeded under pids.max 8"
    );
    check!(
        err.contains("can't fork"),
        "no fork failure reported: {err:?}"
    );
    check!(refused > 0, "pids.events counts no refused fork");
    Ok(())
}

/// The `max` counter of `pids.events`: forks the limit refused.
fn pids_max_events(cg: &container::Cgroup) -> u64 {
    cg.dirs
        .iter()
        .filter(|(c, _)| c == "pids" || c == "unified")
        .filter_map(|(_, d)| fs::read_to_string(d.join("pids.events")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| {
                    l.strip_prefix("max ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

fn exec_into_running(f: &Fixture) -> TestResult {
    let mut spec = f.spec("execd", "echo ready; exec sleep 30");
    spec.hostname = Some("inside".into());
    let (mut c, _out) = f.start(&spec)?;
    let out_path = f.dir.join("exec.out");
    let io = Stdio3 {
        stdin: Stdio::null(),
        stdout: File::create(&out_path).map_err(|e| e.to_string())?.into(),
        stderr: Stdio::inherit(),
    };
    let req = ExecRequest {
        args: vec![
            "sh".into(),
            "-c".into(),
            "hostname; cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'; exit 7".into(),
        ],
        env: vec!["PATH=/bin".into()],
        cwd: "/tmp".into(),
        tty: false,
    };
    let mut child = container::exec(c.state_dir(), &req, io).map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut text = String::new();
    File::open(&out_path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    // With a terminal: a pty of the container's own /dev/pts comes back
    // through the socket on the helper's stdin, and carries the output.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let io = Stdio3 {
        stdin: std::os::fd::OwnedFd::from(theirs).into(),
        stdout: Stdio::null(),
        stderr: Stdio::piped(),
    };
    let req = ExecRequest {
        args: vec!["sh".into(), "-c".into(), "tty; exit 5".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        tty: true,
    };
    let mut child = container::exec(c.state_dir(), &req, io).map_err(|e| e.to_string())?;
    let master = container::receive_terminal(&ours)
        .map_err(|e| e.to_string())?
        .ok_or("no terminal came back")?;
    let mut term = File::from(master);
    let mut said = Vec::new();
    // The master reads EIO once the last slave is closed.
    let _ = term.read_to_end(&mut said);
    let tty_status = child.wait().map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&said).replace('\r', "");
    c.stop(Duration::ZERO).map_err(|e| e.to_string())?;
    check!(
        tty_status.code() == Some(5),
        "tty exec status {tty_status:?}"
    );
    check!(said == "/dev/pts/0\n", "tty output {said:?}");
    c.delete().map_err(|e| e.to_string())?;
    check!(status.code() == Some(7), "exec status {status:?}");
    let lines: Vec<&str> = text.lines().collect();
    check!(lines.len() == 3, "exec output {text:?}");
    check!(lines[0] == "inside", "hostname {text:?}");
    check!(
        lines[1].starts_with("sleep") && lines[1].contains("30"),
        "pid 1 is not the container's: {text:?}"
    );
    let pids: u32 = lines[2].trim().parse().unwrap_or(99);
    check!(pids <= 4, "{pids} pids visible: {text:?}");
    Ok(())
}

fn missing_executable(f: &Fixture) -> TestResult {
    let mut spec = f.spec("nope", "");
    spec.args = vec!["/bin/nope".into()];
    match container::start(&spec, Stdio3::default()) {
        Ok(_) => return Err("started /bin/nope".into()),
        Err(e) => check!(
            e.to_string() == "exec \"/bin/nope\": no such file or directory",
            "message {e}"
        ),
    }
    spec.args = vec!["nope".into()];
    match container::start(&spec, Stdio3::default()) {
        Ok(_) => return Err("started nope".into()),
        Err(e) => check!(
            e.to_string().contains("executable file not found in $PATH"),
            "message {e}"
        ),
    }
    check!(
        !cgroup_dir_exists(&f.cgroup_parent.join("nope")),
        "failed start left its cgroup"
    );
    Ok(())
}

fn cgroup_dir_exists(rel: &Path) -> bool {
    ["memory", "pids", "cpu"]
        .iter()
        .any(|c| Path::new("/sys/fs/cgroup").join(c).join(rel).exists())
        || Path::new("/sys/fs/cgroup").join(rel).exists()
}

fn stop_removes_everything(f: &Fixture) -> TestResult {
    let (mut c, _) = f.start(&f.spec("stop", "sleep 100 & sleep 100"))?;
    let pid = c.pid();
    let cg = c.cgroup().cloned().ok_or("no cgroup")?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while cg.pids().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    check!(cg.pids().len() == 2, "pids {:?}", cg.pids());
    let st = c
        .stop(Duration::from_millis(100))
        .map_err(|e| e.to_string())?;
    check!(
        st.code == 137 && st.signal == Some(9) && !st.oom_killed,
        "status {st:?}"
    );
    c.delete().map_err(|e| e.to_string())?;
    check!(!cg.exists(), "cgroup left: {:?}", cg.dirs);
    check!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} left"
    );
    Ok(())
}

fn counts(f: &Fixture) -> (usize, usize, usize) {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let cgroups = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join(&f.cgroup_parent))
        .chain(std::iter::once(
            Path::new("/sys/fs/cgroup").join(&f.cgroup_parent),
        ))
        .filter_map(|p| fs::read_dir(p).ok())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .count()
        })
        .sum();
    let procs = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    (mounts, cgroups, procs)
}

fn fifty_cycles_leak_nothing(f: &Fixture) -> TestResult {
    let before = counts(f);
    for i in 0..50 {
        let (st, _) = f.run(&f.spec(&format!("cycle{i}"), "true"))?;
        check!(st.code == 0, "cycle {i}: {st:?}");
    }
    let after = counts(f);
    check!(before.0 == after.0, "mounts {} → {}", before.0, after.0);
    check!(before.1 == after.1, "cgroups {} → {}", before.1, after.1);
    // Other users of this machine start and end processes too; allow a few.
    check!(
        after.2 <= before.2 + 3,
        "processes {} → {}",
        before.2,
        after.2
    );
    Ok(())
}

type Test = (&'static str, fn(&Fixture) -> TestResult);

const TESTS: &[Test] = &[
    ("output_and_exit_code", output_and_exit_code),
    ("pid_one_hostname_env", pid_one_hostname_env),
    (
        "proc_and_root_are_the_containers",
        proc_and_root_are_the_containers,
    ),
    ("bind_mounts_and_readonly", bind_mounts_and_readonly),
    ("readonly_rootfs", readonly_rootfs),
    ("user_and_capabilities", user_and_capabilities),
    ("memory_limit_oom_kill", memory_limit_oom_kill),
    ("pids_limit", pids_limit),
    ("exec_into_running", exec_into_running),
    ("missing_executable", missing_executable),
    ("stop_removes_everything", stop_removes_everything),
    ("fifty_cycles_leak_nothing", fifty_cycles_leak_nothing),
];

fn main() {
    if let Some(code) = container::dispatch() {
        std::process::exit(code);
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("container tests need root (namespaces, mounts, cgroups); run them as root");
        std::process::exit(1);
    }
    let dir = match tempfile::Builder::new()
        .prefix("skiff-container-test")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tempdir: {e}");
            std::process::exit(1);
        }
    };
    let rootfs = dir.path().join("rootfs");
    if let Err(e) = container::bench::busybox_rootfs(&rootfs) {
        eprintln!("container tests need a static busybox: {e}");
        std::process::exit(1);
    }
    let fixture = Fixture {
        dir: dir.path().to_path_buf(),
        rootfs,
        cgroup_parent: PathBuf::from(format!("skiff-test/pod{}", std::process::id())),
    };
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let t0 = Instant::now();
        match test(&fixture) {
            Ok(()) => println!("test {name} ... ok ({:.0?})", t0.elapsed()),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED ({:.0?})\n    {e}", t0.elapsed());
            }
        }
    }
    let h = container::Hierarchy::detect();
    let _ = container::cgroups::remove_path(&h, &fixture.cgroup_parent);
    let _ = container::cgroups::remove_path(&h, Path::new("skiff-test"));
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

//! `skiff bench linux-cycles`: Linux pods created and deleted through the
//! real API, over and over, and what they leave on the host.
//!
//! The benchmark starts the real `skiff up` (this binary, a data directory
//! of its own, a pod bridge and cluster range of its own, no service proxy)
//! and a loopback `docker-registry`, pushes a one-layer busybox image built
//! from the host's static busybox, and then runs N cycles, P at a time:
//! create a Pod (RuntimeClass `linux`, `restartPolicy: Never`, command
//! `true`), wait for `phase: Succeeded`, delete it, wait until the API no
//! longer has it. One warm-up cycle first pulls the image and is not
//! counted.
//!
//! Around the cycles it counts what Linux pods leave on the host: mount
//! entries, cgroup directories under skiff's trees, network and IPC
//! namespaces, veth links and container shims (`skiff __container`). Each is counted
//! host-wide and for this run's pods alone (their uids, this data
//! directory), since other skiff clusters on the same host (a test suite)
//! move the host-wide numbers. Once every pod is gone, anything left of
//! this run's pods after the settle time is a leak and fails the run; so
//! is a host-wide count that grew, when no other skiff process (but
//! containers' shims) ran at either count.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use super::percentile;

/// The name the image is pushed under, below the registry's address.
const IMAGE_PATH: &str = "bench/busybox:v1";
/// Label of every pod the benchmark creates.
const LABEL: (&str, &str) = ("bench", "linux-cycles");
/// How long one step of a cycle (to Succeeded, to gone) may take.
const STEP_LIMIT: Duration = Duration::from_secs(120);
/// How long `skiff up` may take to print its ready line.
const READY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct LinuxCyclesArgs {
    /// Create/delete cycles measured (after one warm-up cycle).
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// Cycles in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// How long the counts may take to return to their start values after
    /// the last cycle (pods are gone from the API before their node has
    /// removed everything they had).
    #[arg(long, default_value_t = 30)]
    settle_seconds: u64,
    /// Where skiff's data directory, the registry's storage and the image
    /// layout go (emptied first).
    #[arg(long, default_value = "/tmp/skiff-bench-linux")]
    dir: PathBuf,
    /// The pod bridge of this run's node (one per cluster on a host);
    /// removed, with its masquerade table, at the end.
    #[arg(long, default_value = "skbench0")]
    pod_bridge: String,
    /// The cluster's pod range; must not overlap any other cluster's on
    /// this host (the e2e tests use 10.100–10.249).
    #[arg(long, default_value = "10.250.0.0/16")]
    cluster_cidr: String,
    /// An extra flag for `skiff up` (repeatable), e.g.
    /// `--up-arg=--watch-history=1000` to see what a setting changes.
    #[arg(long = "up-arg", allow_hyphen_values = true)]
    up_args: Vec<String>,
}

pub async fn run(a: LinuxCyclesArgs) -> Result<()> {
    preflight(&a)?;
    let exe = std::env::current_exe().context("finding the skiff binary")?;
    let registry = Registry::start(&a.dir.join("registry")).await?;
    let data = a.dir.join("data");
    let mut skiff = SkiffUp::start(&exe, &data, &a, &registry.host).await?;
    let outcome = measure(&a, &exe, &skiff, &registry).await;
    let stopped = skiff.stop().await;
    registry.stop().await;
    remove_pod_network(&a.pod_bridge).await;
    let leaks = outcome?;
    let status = stopped?;
    println!("skiff up stopped on SIGINT: {status}");
    if !leaks.is_empty() {
        bail!(
            "resources did not return to their start values: {} (data left in {} for a look)",
            leaks.join(", "),
            a.dir.display()
        );
    }
    if !status.success() {
        bail!("skiff up exited with {status} on SIGINT");
    }
    std::fs::remove_dir_all(&a.dir).with_context(|| format!("removing {}", a.dir.display()))?;
    Ok(())
}

/// Root, the tools, and a work directory with nothing mounted below it
/// (a previous run that leaked mounts must be looked at, not deleted
/// through).
fn preflight(a: &LinuxCyclesArgs) -> Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status")?
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if uid.as_deref() != Some("0") {
        bail!("Linux pods need root (namespaces, mounts, cgroups, veths)");
    }
    for (tool, package) in [
        ("/bin/busybox", "busybox-static"),
        ("/usr/bin/docker-registry", "docker-registry"),
        ("/usr/sbin/ip", "iproute2"),
    ] {
        if !Path::new(tool).exists() {
            bail!("{tool} is needed: apt-get install {package}");
        }
    }
    if a.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let dir = a.dir.display().to_string();
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(m) = mount_points(&mountinfo).find(|m| under(m, &dir)) {
        bail!("{m} is still mounted below {dir} (a previous run's?): unmount it first");
    }
    if a.dir.exists() {
        std::fs::remove_dir_all(&a.dir).with_context(|| format!("emptying {dir}"))?;
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {dir}"))?;
    Ok(())
}

/// Everything between a ready cluster and stopping it: the image, the
/// warm-up, the counts, the cycles, the tables. Returns the names of
/// the counts that did not come back.
async fn measure(
    a: &LinuxCyclesArgs,
    exe: &Path,
    skiff: &SkiffUp,
    registry: &Registry,
) -> Result<Vec<String>> {
    let image = format!("{}/{IMAGE_PATH}", registry.host);
    let layout = busybox_layout(&a.dir.join("layout"))?;
    push(exe, &layout, &image).await?;
    let client = skiff.client().await?;
    wait_node_ready(&Api::all(client.clone()), &a.pod_bridge).await?;
    let rc: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": "linux"}, "handler": "linux"}))?;
    Api::<RuntimeClass>::all(client.clone())
        .create(&PostParams::default(), &rc)
        .await
        .context("creating the RuntimeClass linux")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ours = Arc::new(Ours::new(&skiff.data));

    // The warm-up pulls and unpacks the image; the start counts are taken
    // once it is gone and cleaned up.
    let t = Instant::now();
    cycle(&pods, "warm-up", &image, &ours).await?;
    println!(
        "skiff bench linux-cycles: warm-up cycle (image pull) {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let zero = Counts::default();
    let (before_ours, _) = settle(&ours, zero, None, Duration::from_secs(a.settle_seconds)).await?;
    let before = Counts::host()?;
    let others_before = other_skiffs(skiff.pid());
    let usage_before = skiff.usage();

    let (times, wall, peak) = run_cycles(a, &pods, &image, &ours).await?;

    let t = Instant::now();
    let others_after = other_skiffs(skiff.pid());
    let judge_host = others_before.is_empty() && others_after.is_empty();
    let settle_limit = Duration::from_secs(a.settle_seconds);
    let (after_ours, after) =
        settle(&ours, zero, judge_host.then_some(before), settle_limit).await?;
    let settled_in = t.elapsed();
    let usage_after = skiff.usage();

    print_times(a, &times, wall);
    let leaks = print_counts([before, after, before_ours, peak, after_ours], judge_host);
    println!(
        "counts taken after a warm-up cycle; the after counts {} within {:.1} s of the last cycle",
        if leaks.is_empty() {
            "were back"
        } else {
            "were not all back"
        },
        settled_in.as_secs_f64()
    );
    println!(
        "skiff up process (not judged): RSS {} → {} KiB, open file descriptors {} → {}",
        usage_before.0, usage_after.0, usage_before.1, usage_after.1
    );
    if judge_host {
        println!(
            "no other skiff process (but shims) ran at either count: host-wide counts judged too"
        );
    } else {
        let mut others = others_before;
        others.extend(others_after);
        others.sort_unstable();
        others.dedup();
        println!("other skiff processes ran (pids {others:?}): only this run's counts judged");
    }
    Ok(leaks)
}

/// The measured cycles, `a.parallel` at a time, with a progress line per
/// tenth: each cycle's times, the wall time, and the peak of this run's
/// counts meanwhile.
async fn run_cycles(
    a: &LinuxCyclesArgs,
    pods: &Api<Pod>,
    image: &str,
    ours: &Arc<Ours>,
) -> Result<(Vec<CycleTimes>, Duration, Counts)> {
    println!(
        "running {} cycles, {} in parallel (create → Succeeded → delete → gone)",
        a.cycles, a.parallel
    );
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::task::spawn_blocking({
        let (ours, sampling) = (ours.clone(), sampling.clone());
        move || peak(&ours, &sampling)
    });
    let done = AtomicUsize::new(0);
    let step = (a.cycles / 10).max(1);
    let start = Instant::now();
    let times: Result<Vec<CycleTimes>> = futures::stream::iter(0..a.cycles)
        .map(|i| {
            let done = &done;
            async move {
                let t = cycle(pods, &format!("cycle-{i}"), image, ours).await?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % step == 0 {
                    println!(
                        "  {n}/{} cycles, {:.1} s",
                        a.cycles,
                        start.elapsed().as_secs_f64()
                    );
                }
                Ok::<_, anyhow::Error>(t)
            }
        })
        .buffer_unordered(a.parallel)
        .try_collect()
        .await;
    let wall = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.context("the counting task")?;
    Ok((times?, wall, peak))
}

/// The counts table, from the host's before and after and this run's
/// before, peak and after; the rows that leaked. Once every pod is gone
/// nothing of this run's may be left (the warm-up's included); host-wide,
/// when judged, a count that grew leaked (one that shrank is another
/// cluster's pods going).
fn print_counts(counts: [Counts; 5], judge_host: bool) -> Vec<String> {
    println!();
    println!(
        "| host resource | host before | host after | this run's before | this run's peak | this run's after | |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let [hb, ha, ob, op, oa] = counts.map(|c| c.values());
    let mut leaks = Vec::new();
    for (i, name) in Counts::NAMES.iter().enumerate() {
        let leaked = oa[i] != 0 || (judge_host && ha[i] > hb[i]);
        let verdict = if leaked { "LEAK" } else { "ok" };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {verdict} |",
            hb[i], ha[i], ob[i], op[i], oa[i]
        );
        if leaked {
            leaks.push(format!(
                "{name} {} → {} (this run's {} → {})",
                hb[i], ha[i], ob[i], oa[i]
            ));
        }
    }
    leaks
}

/// How long one cycle's steps took.
struct CycleTimes {
    /// Create request → `phase: Succeeded` seen.
    run: Duration,
    /// Delete request → the API has no such pod.
    delete: Duration,
}

fn pod(name: &str, image: &str) -> Result<Pod> {
    let (k, v) = LABEL;
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {k: v}},
        "spec": {
            "runtimeClassName": "linux", "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["true"]}],
        }
    }))
    .context("building the pod")
}

/// Create the pod, wait until it has run, delete it, wait until it is gone.
async fn cycle(pods: &Api<Pod>, name: &str, image: &str, ours: &Ours) -> Result<CycleTimes> {
    let t0 = Instant::now();
    let created = pods
        .create(&PostParams::default(), &pod(name, image)?)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let uid = created.metadata.uid.context("a created pod without uid")?;
    ours.add(&uid);
    let finished = |p: Option<&Pod>| {
        matches!(
            p.and_then(|p| p.status.as_ref()?.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    let p = tokio::time::timeout(STEP_LIMIT, await_condition(pods.clone(), name, finished))
        .await
        .with_context(|| format!("pod {name} did not finish within {STEP_LIMIT:?}"))?
        .with_context(|| format!("watching pod {name}"))?;
    let status = p.and_then(|p| p.status).unwrap_or_default();
    // Succeeded, and by a container that ran: an ID and exit code 0.
    let ran = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "main")
        .is_some_and(|c| {
            let exited = c.state.as_ref().and_then(|s| s.terminated.as_ref());
            c.container_id.is_some() && exited.is_some_and(|t| t.exit_code == 0)
        });
    if status.phase.as_deref() != Some("Succeeded") || !ran {
        bail!(
            "pod {name} did not succeed: {}",
            serde_json::to_string(&status).unwrap_or_default()
        );
    }
    let t1 = Instant::now();
    pods.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting pod {name}"))?;
    tokio::time::timeout(
        STEP_LIMIT,
        await_condition(pods.clone(), name, conditions::is_deleted(&uid)),
    )
    .await
    .with_context(|| format!("pod {name} was not gone within {STEP_LIMIT:?} of its delete"))?
    .with_context(|| format!("watching pod {name}"))?;
    Ok(CycleTimes {
        run: t1 - t0,
        delete: t1.elapsed(),
    })
}

fn print_times(a: &LinuxCyclesArgs, times: &[CycleTimes], wall: Duration) {
    let sorted = |f: fn(&CycleTimes) -> Duration| {
        let mut v: Vec<Duration> = times.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let total = sorted(|t| t.run + t.delete);
    let run = sorted(|t| t.run);
    let delete = sorted(|t| t.delete);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "| {} Linux pod cycles, {} in parallel | value |",
        times.len(),
        a.parallel
    );
    println!("|---|---:|");
    println!("| wall time | {:.1} s |", wall.as_secs_f64());
    println!(
        "| cycles/s | {:.2} |",
        times.len() as f64 / wall.as_secs_f64().max(1e-9)
    );
    for (label, v) in [
        ("per cycle (create → gone)", &total),
        ("create → Succeeded", &run),
        ("delete → gone from the API", &delete),
    ] {
        println!(
            "| {label}, median / p99 | {:.0} ms / {:.0} ms |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99))
        );
    }
}

/// Poll the counts until this run's equal `want_ours` (and the host's
/// equal `want_host`, when given) or `limit` passes; the last counts.
async fn settle(
    ours: &Ours,
    want_ours: Counts,
    want_host: Option<Counts>,
    limit: Duration,
) -> Result<(Counts, Counts)> {
    let deadline = Instant::now() + limit;
    loop {
        let (o, h) = (ours.count()?, Counts::host()?);
        let back = o == want_ours && want_host.is_none_or(|w| !grew(w, h));
        if back || Instant::now() >= deadline {
            return Ok((o, h));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The highest count of this run's seen while `running`, sampled about
/// every 200 ms: evidence that the counting sees what pods hold.
fn peak(ours: &Ours, running: &AtomicBool) -> Counts {
    let mut max = Counts::default();
    while running.load(Ordering::Relaxed) {
        if let Ok(c) = ours.count() {
            max = Counts {
                mounts: max.mounts.max(c.mounts),
                cgroups: max.cgroups.max(c.cgroups),
                netns: max.netns.max(c.netns),
                ipcns: max.ipcns.max(c.ipcns),
                veths: max.veths.max(c.veths),
                shims: max.shims.max(c.shims),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    max
}

/// Whether any count of `after` is above `before`'s.
fn grew(before: Counts, after: Counts) -> bool {
    before
        .values()
        .iter()
        .zip(after.values())
        .any(|(b, a)| a > *b)
}

/// What Linux pods leave on a host, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    mounts: usize,
    cgroups: usize,
    netns: usize,
    ipcns: usize,
    veths: usize,
    shims: usize,
}

impl Counts {
    const NAMES: [&'static str; 6] = [
        "mount entries (/proc/self/mountinfo)",
        "cgroup directories under */skiff/",
        "network namespaces (/run/netns)",
        "IPC namespaces (/run/skiff/ipcns)",
        "veth links",
        "container shims (skiff __container)",
    ];

    fn values(&self) -> [usize; 6] {
        [
            self.mounts,
            self.cgroups,
            self.netns,
            self.ipcns,
            self.veths,
            self.shims,
        ]
    }

    /// Host-wide.
    fn host() -> Result<Counts> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(Counts {
            mounts: mount_points(&mountinfo).count(),
            cgroups: skiff_cgroup_roots()
                .iter()
                .map(|root| count_dirs(root, &|_| true))
                .sum(),
            netns: netns_names()?.len(),
            ipcns: ipcns_names()?.len(),
            veths: veth_names()?.len(),
            shims: shims(|_| true).len(),
        })
    }
}

/// This run's pods (by uid) and data directory: what only they can have
/// left.
struct Ours {
    data_dir: String,
    uids: Mutex<HashSet<String>>,
}

impl Ours {
    fn new(data_dir: &Path) -> Ours {
        Ours {
            data_dir: data_dir.display().to_string(),
            uids: Mutex::new(HashSet::new()),
        }
    }

    fn add(&self, uid: &str) {
        self.lock().insert(uid.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self) -> Result<Counts> {
        use runtime::agent::sandbox::{netns_name, netns_path, veth_name, IPCNS_DIR};
        let (netns, veths, cgroups): (HashSet<String>, HashSet<String>, HashSet<String>) = {
            let uids = self.lock();
            (
                uids.iter().map(|u| netns_name(u)).collect(),
                uids.iter().map(|u| veth_name(u)).collect(),
                uids.iter()
                    .filter_map(|u| {
                        let dir = runtime::linux::spec::pod_cgroup(u);
                        dir.file_name().map(|n| n.to_string_lossy().into_owned())
                    })
                    .collect(),
            )
        };
        // A pod's namespaces are bind mounts: the netns of `ip netns`, the
        // IPC namespace of the launcher (same name).
        let ns_mounts: HashSet<String> = netns
            .iter()
            .flat_map(|n| {
                [
                    netns_path(n).display().to_string(),
                    Path::new(IPCNS_DIR).join(n).display().to_string(),
                ]
            })
            .collect();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(Counts {
            mounts: mount_points(&mountinfo)
                .filter(|m| under(m, &self.data_dir) || ns_mounts.contains(m))
                .count(),
            cgroups: skiff_cgroup_roots()
                .iter()
                .map(|root| {
                    count_dirs(root, &|first| {
                        cgroups.contains(first.to_string_lossy().as_ref())
                    })
                })
                .sum(),
            netns: netns_names()?.intersection(&netns).count(),
            ipcns: ipcns_names()?.intersection(&netns).count(),
            veths: veth_names()?.intersection(&veths).count(),
            shims: shims(|args| args.iter().any(|a| under(a, &self.data_dir))).len(),
        })
    }
}

/// Whether `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The mount point of each line of a mountinfo file (the fifth field,
/// octal escapes such as `\040` decoded).
fn mount_points(mountinfo: &str) -> impl Iterator<Item = String> + '_ {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_octal)
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `skiff/` in every cgroup hierarchy (each v1 controller once, by real
/// path, or the v2 root).
fn skiff_cgroup_roots() -> Vec<PathBuf> {
    let root = Path::new(container::cgroups::CGROUP_ROOT);
    let mut candidates = vec![root.join("skiff")];
    if let Ok(entries) = std::fs::read_dir(root) {
        candidates.extend(entries.flatten().map(|e| e.path().join("skiff")));
    }
    let mut seen = Vec::new();
    for c in candidates {
        if let Ok(real) = std::fs::canonicalize(&c) {
            if real.is_dir() && !seen.contains(&real) {
                seen.push(real);
            }
        }
    }
    seen
}

/// Directories below `root` (not `root` itself) whose first component
/// below it passes `first`.
fn count_dirs(root: &Path, first: &dyn Fn(&std::ffi::OsStr) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut n = 0;
    let mut stack: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && first(&e.file_name()))
        .map(|e| e.path())
        .collect();
    while let Some(d) = stack.pop() {
        n += 1;
        if let Ok(entries) = std::fs::read_dir(&d) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    n
}

/// Named network namespaces (`ip netns list`: the files of /run/netns).
fn netns_names() -> Result<HashSet<String>> {
    files_of(runtime::agent::sandbox::NETNS_DIR)
}

/// Pods' IPC namespaces (files named as their network namespaces).
fn ipcns_names() -> Result<HashSet<String>> {
    files_of(runtime::agent::sandbox::IPCNS_DIR)
}

/// The names in `dir`; none when it does not exist.
fn files_of(dir: &str) -> Result<HashSet<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e).with_context(|| format!("listing {dir}")),
    }
}

/// Names of the host's veth links, from `ip -o link show type veth`.
fn veth_names() -> Result<HashSet<String>> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .context("running ip -o link show type veth")?;
    if !out.status.success() {
        bail!(
            "ip -o link show type veth: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(link_names(&String::from_utf8_lossy(&out.stdout)))
}

/// The link names of `ip -o link` output (`426: vsk…@if2: <…> …`).
fn link_names(out: &str) -> HashSet<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Pids of processes whose argv is `<exe> __container …` and passes
/// `keep`.
fn shims(keep: impl Fn(&[String]) -> bool) -> Vec<u32> {
    processes()
        .filter(|(_, args)| is_shim(args) && keep(args))
        .map(|(pid, _)| pid)
        .collect()
}

fn is_shim(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some(container::HIDDEN_COMMAND)
}

/// Every process's pid and argv (processes that end while being read are
/// skipped).
fn processes() -> impl Iterator<Item = (u32, Vec<String>)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, split_cmdline(&raw)))
        })
}

fn split_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// skiff processes that are not this benchmark's and could start or
/// remove pods: not this process, not its `skiff up`, not a container
/// shim (another cluster's containers left running only ever end). They
/// move the host-wide counts.
fn other_skiffs(up_pid: u32) -> Vec<u32> {
    let me = std::process::id();
    processes()
        .filter(|(pid, args)| {
            let is_skiff = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("skiff"))
            });
            is_skiff && *pid != me && *pid != up_pid && !is_shim(args)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// A loopback `docker-registry` on a free port, killed on drop.
struct Registry {
    child: tokio::process::Child,
    /// `127.0.0.1:PORT`
    host: String,
}

impl Registry {
    async fn start(dir: &Path) -> Result<Registry> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the registry")?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let child = tokio::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting docker-registry")?;
        let host = format!("127.0.0.1:{port}");
        let t = Instant::now();
        while tokio::net::TcpStream::connect(&host).await.is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("docker-registry did not listen on {host} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Registry { child, host })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The real `skiff up`, stopped with SIGINT (or killed on drop).
struct SkiffUp {
    child: Option<tokio::process::Child>,
    pid: u32,
    data: PathBuf,
    log: PathBuf,
}

impl SkiffUp {
    async fn start(
        exe: &Path,
        data: &Path,
        a: &LinuxCyclesArgs,
        registry: &str,
    ) -> Result<SkiffUp> {
        let log = data.with_extension("stderr.log");
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("up")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--node-port", "0"])
            .args(["--gateway-port", "0", "--gateway-tls-port", "0"])
            .args(["--no-service-proxy", "--pod-bridge", &a.pod_bridge])
            .args(["--cluster-cidr", &a.cluster_cidr])
            .args(["--insecure-registry", registry])
            .args(&a.up_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if std::env::var_os("SKIFF_LOG").is_none() {
            cmd.env("SKIFF_LOG", "warn");
        }
        let mut child = cmd.spawn().context("starting skiff up")?;
        let pid = child.id().context("skiff up has no pid")?;
        let stdout = child.stdout.take().context("skiff up's stdout")?;
        // Read to the end, so skiff never blocks on a full pipe; the first
        // line saying `ready` is passed on.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("ready") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let up = SkiffUp {
            child: Some(child),
            pid,
            data: data.to_path_buf(),
            log,
        };
        match tokio::time::timeout(READY_LIMIT, rx).await {
            Ok(Ok(_)) => Ok(up),
            Ok(Err(_)) => bail!("skiff up ended before it was ready: {}", up.tail()),
            Err(_) => bail!(
                "skiff up was not ready within {READY_LIMIT:?}: {}",
                up.tail()
            ),
        }
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory (KiB) and open file descriptors.
    fn usage(&self) -> (u64, usize) {
        let rss = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0);
        (rss, fds)
    }

    /// The end of skiff's stderr, for error messages.
    fn tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// An API client from the kubeconfig `skiff up` wrote, as a user's.
    async fn client(&self) -> Result<kube::Client> {
        let path = self.data.join("kubeconfig.yaml");
        let kc = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("building the API client")?;
        kube::Client::try_from(cfg).context("building the API client")
    }

    /// SIGINT, as a person's Ctrl-C, and its exit within 20 s.
    async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("skiff up is not running")?;
        // The kill utility: no signal crate, no `unsafe`.
        let sent = tokio::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .await
            .context("sending SIGINT to skiff up")?;
        if !sent.success() {
            bail!("could not send SIGINT to skiff up ({sent})");
        }
        match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(status) => status.context("waiting for skiff up"),
            Err(_) => {
                let _ = child.kill().await;
                bail!(
                    "skiff up did not exit within 20 s of SIGINT: {}",
                    self.tail()
                )
            }
        }
    }
}

/// The node is Ready with its pod range, and its bridge is up.
async fn wait_node_ready(nodes: &Api<Node>, bridge: &str) -> Result<()> {
    let t = Instant::now();
    loop {
        let list = nodes.list(&Default::default()).await?;
        let ready = list.items.iter().any(|n| {
            let has_range = n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some();
            let is_ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            has_range && is_ready
        });
        if ready && Path::new("/sys/class/net").join(bridge).exists() {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the node was not Ready with a pod range and bridge {bridge} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `skiff image push LAYOUT REF --insecure`, the real command.
async fn push(exe: &Path, layout: &Path, reference: &str) -> Result<()> {
    let out = tokio::process::Command::new(exe)
        .args(["image", "push"])
        .arg(layout)
        .args([reference, "--insecure"])
        .output()
        .await
        .context("running skiff image push")?;
    if !out.status.success() {
        bail!(
            "skiff image push {reference}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Remove the bridge and masquerade table this run's node made (the node
/// leaves them for its next start).
async fn remove_pod_network(bridge: &str) {
    let table = runtime::agent::sandbox::nat_table(bridge);
    for args in [
        vec!["ip", "link", "del", bridge],
        vec!["nft", "delete", "table", "ip", &table],
    ] {
        let out = tokio::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .await;
        if let Some(o) = out.ok().filter(|o| !o.status.success()) {
            eprintln!(
                "removing {}: {}",
                args[1..].join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Write `bytes` as a blob of the layout at `dir`; its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Result<Value> {
    let digest = sha256(bytes);
    let path = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}))
}

/// An OCI layout at `dir` of a one-layer linux/amd64 image: the host's
/// static busybox.
fn busybox_layout(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .context("writing oci-layout")?;
    let layer = busybox_layer()?;
    let layer_desc = blob(dir, "application/vnd.oci.image.layer.v1.tar", &layer)?;
    let config = json!({
        "architecture": runtime::images::Platform::node().architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    });
    let config_desc = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let top = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    )?;
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .context("writing index.json")?;
    Ok(dir.to_path_buf())
}

/// /bin/busybox with `sh` and `true` linked to it, /etc/passwd, and the
/// directories a container root needs.
fn busybox_layer() -> Result<Vec<u8>> {
    let bytes = std::fs::read("/bin/busybox").context("reading /bin/busybox")?;
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, d, std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "bin/busybox", bytes.as_slice())?;
    for applet in ["sh", "true"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(passwd.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "etc/passwd", &passwd[..])?;
    b.into_inner().context("finishing the busybox layer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_come_from_ip_one_line_output() {
        let out = "426: vskb991feacc4cc@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 42:0d:a2:fe:05:02 brd ff:ff:ff:ff:ff:ff link-netns skiff-b991feacc4cc\n\
                   7: veth0: <BROADCAST> mtu 1500\n\n";
        let names = link_names(out);
        let want: HashSet<String> = ["vskb991feacc4cc", "veth0"].map(String::from).into();
        assert_eq!(names, want);
    }

    #[test]
    fn mount_points_are_the_fifth_field_unescaped() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    95 30 0:50 / /tmp/a\\040b/linux/pods/u/c/fs/rootfs rw - overlay overlay rw,lowerdir=x\n";
        let points: Vec<String> = mount_points(info).collect();
        assert_eq!(points, ["/proc", "/tmp/a b/linux/pods/u/c/fs/rootfs"]);
        assert!(under(&points[1], "/tmp/a b"));
        assert!(!under(&points[1], "/tmp/a"));
        assert!(under("/tmp/a", "/tmp/a"));
    }

    #[test]
    fn shims_are_told_by_the_hidden_command() {
        let args = split_cmdline(b"/usr/bin/skiff\0__container\0shim\0/d/linux/pods/u/c/state\0");
        assert!(is_shim(&args));
        assert!(args.iter().any(|a| under(a, "/d")));
        assert!(!is_shim(&split_cmdline(b"/usr/bin/skiff\0up\0")));
        assert!(!is_shim(&split_cmdline(b"")));
    }
}

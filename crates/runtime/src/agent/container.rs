//! One container's lifecycle: pull, resolve, start, wait, and restart with
//! back-off as the pod's restartPolicy says.
//!
//! Every step is reported into the pod's [`PodRecord`](super::status::PodRecord) (and so to
//! `pods/status`) and as an Event, with the kubelet's reasons:
//! ErrImagePull/ImagePullBackOff, CreateContainerConfigError,
//! CreateContainerError, CrashLoopBackOff.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;

use super::env::{self, HostVolume, PodAddresses, Sources};
use super::events::{EventType, PodEvent};
use super::pods::PodShared;
use super::probe;
use super::status::{now, State, Terminated};
use super::{Ctx, PulledImage};
use crate::cri::{self, ContainerConfig, ContainerRuntime, ExitStatus};

/// Kubernetes' container restart back-off: 10 s doubling to 5 min.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off afresh.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// How a container's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exited 0 and is not restarted.
    Succeeded,
    /// Exited non-zero and is not restarted.
    Failed,
    /// The pod is being stopped.
    Stopped,
}

/// Whether a container that exited with `code` runs again.
pub fn should_restart(policy: &str, code: i32, init: bool) -> bool {
    match policy {
        "Never" => false,
        // Init containers run to completion: they restart only on failure.
        "OnFailure" => code != 0,
        _ if init => code != 0,
        _ => true,
    }
}

/// The delay before restart number `failures` (1 = the first restart):
/// the first restart is immediate, then 10 s doubling up to 5 min, as the
/// kubelet's back-off does.
pub fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let exp = (failures - 2).min(10);
    (BACKOFF_START * 2u32.pow(exp)).min(BACKOFF_MAX)
}

/// Everything one container's loop needs.
pub(crate) struct ContainerLoop {
    pub ctx: Arc<Ctx>,
    pub pod: Pod,
    pub spec: Container,
    pub init: bool,
    pub shared: Arc<PodShared>,
    pub stop: watch::Receiver<Option<Duration>>,
    pub sources: Sources,
    pub volumes: std::collections::HashMap<String, HostVolume>,
    pub handler: Option<String>,
    pub log_dir: PathBuf,
}

impl ContainerLoop {
    fn field_path(&self) -> String {
        let list = if self.init {
            "initContainers"
        } else {
            "containers"
        };
        format!("spec.{list}{{{}}}", self.spec.name)
    }

    fn event(&self, kind: EventType, reason: &'static str, message: String) {
        let ev = PodEvent {
            kind,
            reason,
            message,
            field_path: Some(self.field_path()),
        };
        self.ctx.recorder.record(&self.pod, ev);
    }

    fn set_state(&self, state: State) {
        let (init, name) = (self.init, self.spec.name.clone());
        self.shared.update(|r| {
            if let Some(c) = r.container_mut(init, &name) {
                c.state = state;
            }
        });
    }

    fn waiting(&self, reason: &str, message: Option<String>) {
        self.set_state(State::Waiting {
            reason: reason.into(),
            message,
        });
    }

    fn policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Sleep `d`, or less if the pod is stopped. True when stopped.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        let stopped = tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.stop.wait_for(|s| s.is_some()) => true,
        };
        stopped || self.stopping()
    }

    /// Where this run's output goes: `<logs>/<container>/<restartCount>.log`.
    fn log_path(&self, restart_count: u32) -> PathBuf {
        self.log_dir
            .join(&self.spec.name)
            .join(format!("{restart_count}.log"))
    }

    fn record_snapshot(&self) -> Option<super::status::ContainerRecord> {
        let r = self.shared.record.lock().ok()?;
        let list = if self.init { &r.init } else { &r.containers };
        list.iter().find(|c| c.name == self.spec.name).cloned()
    }

    /// Run the container until it is done for good or the pod stops.
    pub async fn run(mut self) -> Outcome {
        let policy = self.policy();
        let mut failures: u32 = 0;
        self.find_exit_while_away().await;
        // A container the record shows finished (a restarted agent) only
        // runs again if its policy says so.
        if let Some(rec) = self.record_snapshot() {
            if let State::Terminated(t) = &rec.state {
                if !should_restart(&policy, t.exit_code, self.init) {
                    return if t.exit_code == 0 {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    };
                }
                let t = t.clone();
                self.shared.update(|r| {
                    if let Some(c) = r.container_mut(self.init, &self.spec.name) {
                        c.last_terminated = Some(t);
                        c.restart_count += 1;
                    }
                });
            }
        }
        loop {
            let Some(exit) = self.run_once().await else {
                return Outcome::Stopped;
            };
            let (code, ran_for) = exit;
            if self.stopping() {
                return Outcome::Stopped;
            }
            if !should_restart(&policy, code, self.init) {
                return if code == 0 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
            }
            failures = if ran_for >= BACKOFF_RESET {
                1
            } else {
                failures + 1
            };
            if self.back_off(failures).await {
                return Outcome::Stopped;
            }
        }
    }

    /// A container the record shows running under a runtime whose
    /// containers outlive the agent may have ended while no agent watched:
    /// record how, so the restart policy decides as if it had been seen.
    async fn find_exit_while_away(&mut self) {
        let Some(rec) = self.record_snapshot() else {
            return;
        };
        let State::Running { started_at } = &rec.state else {
            return;
        };
        let Some((handler, _)) = rec.container_id.split_once("://") else {
            return;
        };
        let Some(rt) = self.ctx.runtime(handler) else {
            return;
        };
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let log = self.log_path(rec.restart_count);
        let Some(exit) = rt.exited_while_away(&uid, &self.spec.name, &log).await else {
            return;
        };
        let t = Terminated {
            exit_code: exit.code,
            reason: exit.reason.as_str().to_string(),
            message: exit.message.clone(),
            started_at: Some(started_at.clone()),
            finished_at: now(),
            container_id: rec.container_id.clone(),
        };
        self.set_state(State::Terminated(t));
    }

    /// Wait before restart number `failures`, showing CrashLoopBackOff.
    /// True when the pod stopped meanwhile.
    async fn back_off(&mut self, failures: u32) -> bool {
        let delay = backoff(failures);
        let (init, name) = (self.init, self.spec.name.clone());
        let pod = self.pod.metadata.name.clone().unwrap_or_default();
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        // The run that just ended moves to lastState while the next waits,
        // as `kubectl describe` shows it during CrashLoopBackOff.
        let waiting = if delay.is_zero() {
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            }
        } else {
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})",
                    delay.as_secs()
                )),
            }
        };
        self.shared.update(|r| {
            if let Some(c) = r.container_mut(init, &name) {
                if let State::Terminated(t) = &c.state {
                    c.last_terminated = Some(t.clone());
                }
                c.state = waiting;
            }
        });
        if !delay.is_zero() {
            self.event(
                EventType::Warning,
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})"),
            );
        }
        if self.sleep_or_stop(delay).await {
            return true;
        }
        self.shared.update(|r| {
            if let Some(c) = r.container_mut(init, &name) {
                c.restart_count += 1;
            }
        });
        false
    }

    /// Pull, start and wait once. None when the pod stopped before the
    /// container ran; else the exit code and how long it ran.
    async fn run_once(&mut self) -> Option<(i32, Duration)> {
        let (image, handler, mut container) = loop {
            let image = self.pull().await?;
            let (runtime, config) = self.prepare(&image).await?;
            match runtime.start(config).await {
                Ok(c) => break (image, runtime.handler(), c),
                Err(e) => {
                    self.event(EventType::Warning, "Failed", format!("Error: {e}"));
                    self.waiting("CreateContainerError", Some(e.to_string()));
                    if self.sleep_or_stop(BACKOFF_START).await {
                        return None;
                    }
                }
            }
        };
        let started = Instant::now();
        // An adopted container keeps the id and start time it had.
        let kept = container
            .adopted()
            .then(|| self.record_snapshot())
            .flatten()
            .and_then(|c| match c.state {
                State::Running { started_at }
                    if c.container_id.starts_with(&format!("{handler}://")) =>
                {
                    Some((c.container_id, started_at))
                }
                _ => None,
            });
        let adopted = kept.is_some();
        let (id, started_at) = kept.unwrap_or_else(|| {
            (
                format!(
                    "{handler}://{:016x}{:016x}",
                    rand::random::<u64>(),
                    rand::random::<u64>()
                ),
                now(),
            )
        });
        let (init, name, digest) = (self.init, self.spec.name.clone(), image.digest.clone());
        let id2 = id.clone();
        let at = started_at.clone();
        let (has_startup, has_readiness) = if init {
            (false, false)
        } else {
            (
                self.spec.startup_probe.is_some(),
                self.spec.readiness_probe.is_some(),
            )
        };
        self.shared.update(|r| {
            if let Some(c) = r.container_mut(init, &name) {
                c.container_id = id2;
                c.image_id = digest;
                c.state = State::Running { started_at: at };
                // Not started / not ready until the probes say so.
                c.started = has_startup.then_some(false);
                c.probe_ready = has_readiness.then_some(false);
            }
        });
        if !adopted {
            self.event(
                EventType::Normal,
                "Created",
                format!("Created container: {name}"),
            );
            self.event(
                EventType::Normal,
                "Started",
                format!("Started container {name}"),
            );
        }
        // `kubectl exec` finds it while it runs.
        let exec = self.ctx.execs.register(
            self.pod.metadata.uid.as_deref().unwrap_or_default(),
            &name,
            container.exec(),
        );
        let exit = self.wait(container.as_mut()).await;
        drop(exec);
        self.set_state(State::Terminated(Terminated {
            exit_code: exit.code,
            reason: exit.reason.as_str().to_string(),
            message: exit.message.clone(),
            started_at: Some(started_at),
            finished_at: now(),
            container_id: id,
        }));
        Some((exit.code, started.elapsed()))
    }

    /// Wait for the container to exit, stopping it with the grace period
    /// if the pod is stopped meanwhile.
    async fn wait(&mut self, c: &mut dyn cri::Container) -> ExitStatus {
        if !self.stopping() {
            let probes = supervise(Probing {
                exec: c.exec_probe(),
                ctx: self.ctx.clone(),
                pod: self.pod.clone(),
                shared: self.shared.clone(),
                spec: self.spec.clone(),
                field_path: self.field_path(),
                init: self.init,
            });
            let failed = tokio::select! {
                exit = c.wait() => return exit,
                _ = self.stop.wait_for(|s| s.is_some()) => None,
                kind = probes => Some(kind),
            };
            if let Some(kind) = failed {
                // The kubelet restarts a container that fails its liveness
                // or startup probe, with the pod's grace period.
                self.event(
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Container {} failed {} probe, will be restarted",
                        self.spec.name,
                        kind.as_str().to_lowercase()
                    ),
                );
                c.stop(grace_period(&self.pod));
                return c.wait().await;
            }
        }
        let grace = self.stop.borrow().unwrap_or_default();
        self.event(
            EventType::Normal,
            "Killing",
            format!("Stopping container {}", self.spec.name),
        );
        c.stop(grace);
        c.wait().await
    }

    /// Pull the image, retrying with back-off. None when the pod stopped.
    async fn pull(&mut self) -> Option<PulledImage> {
        let image = self.spec.image.clone().unwrap_or_default();
        let policy = self
            .spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image));
        let mut delay = BACKOFF_START;
        loop {
            if self.stopping() {
                return None;
            }
            let present = policy != "Always" && self.ctx.images.present(&image);
            if !present {
                self.event(
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
            }
            let t = Instant::now();
            match self
                .ctx
                .images
                .pull(&image, &policy, self.pull_secrets())
                .await
            {
                Ok(img) => {
                    let message = if present {
                        format!("Container image \"{image}\" already present on machine")
                    } else {
                        format!(
                            "Successfully pulled image \"{image}\" in {}ms",
                            t.elapsed().as_millis()
                        )
                    };
                    self.event(EventType::Normal, "Pulled", message);
                    return Some(img);
                }
                Err(e) => {
                    self.event(
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {e}"),
                    );
                    self.waiting("ErrImagePull", Some(e));
                }
            }
            // Kubernetes shows ErrImagePull for a moment, then the back-off.
            if self.sleep_or_stop(Duration::from_secs(1)).await {
                return None;
            }
            self.waiting(
                "ImagePullBackOff",
                Some(format!("Back-off pulling image \"{image}\"")),
            );
            self.event(
                EventType::Normal,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            );
            if self.sleep_or_stop(delay).await {
                return None;
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    fn pull_secrets(&self) -> Vec<Vec<u8>> {
        let names = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten());
        names
            .filter_map(|n| self.sources.secrets.get(&n.name))
            .filter_map(|d| d.get(".dockerconfigjson").cloned())
            .collect()
    }

    /// The runtime and config for this start, retried with back-off while
    /// they cannot be resolved. None when the pod stopped.
    async fn prepare(
        &mut self,
        image: &PulledImage,
    ) -> Option<(Arc<dyn ContainerRuntime>, ContainerConfig)> {
        loop {
            let result = match self.pick_runtime(image) {
                Ok(rt) if rt.handler() == crate::linux::HANDLER => {
                    match self.shared.sandbox(&self.ctx).await {
                        Ok(sb) => self
                            .config(image, Some(&sb))
                            .map(|cfg| (rt, cfg))
                            .map_err(|e| ("CreateContainerConfigError", e)),
                        Err(e) => {
                            self.ctx.recorder.record(
                                &self.pod,
                                PodEvent {
                                    kind: EventType::Warning,
                                    reason: "FailedCreatePodSandBox",
                                    message: format!("Failed to create pod sandbox: {e}"),
                                    field_path: None,
                                },
                            );
                            Err(("ContainerCreating", e))
                        }
                    }
                }
                Ok(rt) => self
                    .config(image, None)
                    .map(|cfg| (rt, cfg))
                    .map_err(|e| ("CreateContainerConfigError", e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(ok) => return Some(ok),
                Err((reason, message)) => {
                    self.event(EventType::Warning, "Failed", format!("Error: {message}"));
                    self.waiting(reason, Some(message));
                }
            }
            if self.sleep_or_stop(BACKOFF_START).await {
                return None;
            }
            // The missing ConfigMap or Secret may exist by now.
            if let Ok(sources) = env::fetch_sources(&self.ctx.client, &self.pod).await {
                self.sources = sources;
            }
        }
    }

    fn pick_runtime(
        &self,
        image: &PulledImage,
    ) -> Result<Arc<dyn ContainerRuntime>, (&'static str, String)> {
        let name = self.spec.image.clone().unwrap_or_default();
        let handler = match (&self.handler, image.is_wasm) {
            (Some(h), false) if h == "wasmtime" => {
                return Err(("CreateContainerError", format!(
                    "image \"{name}\" is a Linux container image, not a Wasm module or component: RuntimeClass handler \"wasmtime\" runs only Wasm"
                )))
            }
            (Some(h), _) => h.clone(),
            (None, true) => "wasmtime".to_string(),
            (None, false) => crate::linux::HANDLER.to_string(),
        };
        if handler == crate::linux::HANDLER && self.ctx.runtime(&handler).is_none() {
            return Err(("CreateContainerError", format!(
                "image \"{name}\" is a Linux container image and node {} runs no Linux containers (set a Wasm image, or schedule the pod to a node with the \"linux\" handler)",
                self.ctx.cfg.node_name
            )));
        }
        self.ctx.runtime(&handler).ok_or_else(|| {
            (
                "CreateContainerConfigError",
                format!(
                    "no runtime for \"{handler}\" is configured on node {}",
                    self.ctx.cfg.node_name
                ),
            )
        })
    }

    fn config(
        &self,
        image: &PulledImage,
        sandbox: Option<&super::sandbox::Sandbox>,
    ) -> Result<ContainerConfig, String> {
        let addrs = PodAddresses {
            pod_ip: self.shared.pod_ip(&self.ctx).to_string(),
            host_ip: self.ctx.node_ip.to_string(),
        };
        let env = env::resolve_env(&self.spec, &self.pod, &self.sources, &addrs)
            .map_err(|e| e.to_string())?;
        let mounts = env::mounts(&self.spec, &self.volumes).map_err(|e| e.to_string())?;
        let restarts = self.record_snapshot().map_or(0, |c| c.restart_count);
        let log_path = self.log_path(restarts);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("creating the log directory {}: {e}", dir.display()))?;
        }
        let m = &self.pod.metadata;
        let linux = match (&image.linux, sandbox) {
            (Some(img), Some(sb)) => Some(self.linux_config(img, sb)),
            _ => None,
        };
        let args = match &image.linux {
            Some(img) => env::linux_argv(&self.spec, &img.config.entrypoint, &img.config.cmd, &env),
            None => env::argv(&self.spec, &env),
        };
        Ok(ContainerConfig {
            namespace: m.namespace.clone().unwrap_or_default(),
            pod_name: m.name.clone().unwrap_or_default(),
            pod_uid: m.uid.clone().unwrap_or_default(),
            container_name: self.spec.name.clone(),
            image_digest: image.digest.clone(),
            module_path: image.module_path.clone(),
            args,
            env,
            mounts,
            limits: env::limits(&self.spec),
            log_path,
            ports: self
                .spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| u16::try_from(p.container_port).ok())
                .collect(),
            pod_ip: self.shared.pod_ip(&self.ctx),
            pod_labels: m.labels.clone().unwrap_or_default(),
            linux,
        })
    }

    /// What the `linux` handler needs besides the common config.
    fn linux_config(
        &self,
        img: &super::LinuxImage,
        sb: &super::sandbox::Sandbox,
    ) -> cri::LinuxConfig {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let hostname: String = spec
            .hostname
            .clone()
            .or_else(|| self.pod.metadata.name.clone())
            .unwrap_or_default()
            .chars()
            .take(63)
            .collect();
        let cluster = crate::dns::resolv::ClusterDns {
            nameserver: self
                .ctx
                .cfg
                .annotations
                .get(super::DNS_ANNOTATION)
                .and_then(|a| {
                    let gw = self.ctx.network.range()?.gateway();
                    (a.as_str() == format!("{gw}:53")).then_some(std::net::IpAddr::V4(gw))
                }),
            domain: self.ctx.cfg.cluster_domain.clone(),
        };
        let host = crate::dns::resolv::ResolvConf::parse(
            &std::fs::read_to_string(&self.ctx.cfg.resolv_conf).unwrap_or_default(),
        );
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let resolv = crate::dns::resolv::pod_resolv_conf(&spec, &ns, &cluster, &host);
        cri::LinuxConfig {
            layers: img.layers.clone(),
            image: img.config.clone(),
            working_dir: self.spec.working_dir.clone(),
            security: env::security(&self.pod, &self.spec),
            cpu_request_millis: env::cpu_request(&self.spec),
            netns: Some(sb.path()),
            ipcns: Some(sb.ipc_path()),
            hosts: crate::linux::spec::hosts_file(&sb.ip.to_string(), &hostname),
            hostname,
            resolv_conf: resolv.to_string(),
        }
    }
}

/// `imagePullPolicy` when unset: Always for `:latest` or no tag, else
/// IfNotPresent (digests count as pinned).
pub fn default_pull_policy(image: &str) -> String {
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always".into(),
        Some(_) => "IfNotPresent".into(),
    }
}

/// The pod's `terminationGracePeriodSeconds` (Kubernetes' default 30 s).
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// What the probe supervisor of one container run needs.
struct Probing {
    /// Runs exec probes in the container, when it has processes.
    exec: Option<cri::ExecProbe>,
    ctx: Arc<Ctx>,
    pod: Pod,
    shared: Arc<PodShared>,
    spec: Container,
    field_path: String,
    init: bool,
}

impl Probing {
    fn event(&self, kind: EventType, reason: &'static str, message: String) {
        let ev = PodEvent {
            kind,
            reason,
            message,
            field_path: Some(self.field_path.clone()),
        };
        self.ctx.recorder.record(&self.pod, ev);
    }

    fn set(&self, f: impl FnOnce(&mut super::status::ContainerRecord)) {
        let (init, name) = (self.init, self.spec.name.clone());
        self.shared.update(|r| {
            if let Some(c) = r.container_mut(init, &name) {
                f(c);
            }
        });
    }
}

/// Run the container's probes while it runs. Resolves with the probe that
/// failed for good (liveness or startup) when the container must be
/// restarted; never resolves otherwise.
async fn supervise(p: Probing) -> probe::Kind {
    use probe::{Action, Kind, Verdict};
    let specs = if p.init {
        Vec::new()
    } else {
        probe::specs(&p.spec)
    };
    let start = tokio::time::Instant::now();
    let mut active = Vec::new();
    for mut spec in specs {
        if matches!(spec.action, Action::Exec(_)) && p.exec.is_none() {
            spec.action = Action::Unsupported(probe::EXEC_NEEDS_A_PROCESS.into());
        }
        if let Action::Unsupported(why) = &spec.action {
            p.event(
                EventType::Warning,
                "ProbeWarning",
                format!("{} probe is not run: {why}", spec.kind.as_str()),
            );
            // Ignored as if absent: the container does not wait on it.
            match spec.kind {
                Kind::Startup => p.set(|c| c.started = None),
                Kind::Readiness => p.set(|c| c.probe_ready = None),
                Kind::Liveness => {}
            }
            continue;
        }
        let due = start + spec.initial_delay;
        active.push((spec, probe::Counter::default(), due));
    }
    let has_startup = active.iter().any(|(s, _, _)| s.kind == Kind::Startup);
    let mut started = !has_startup;
    let ip = p.shared.pod_ip(&p.ctx).to_string();
    loop {
        // The next probe due among those that may run now: liveness and
        // readiness wait for the startup probe to pass.
        let next = active
            .iter()
            .enumerate()
            .filter(|(_, (s, _, _))| started || s.kind == Kind::Startup)
            .min_by_key(|(_, (_, _, due))| *due)
            .map(|(i, (_, _, due))| (i, *due));
        let Some((i, due)) = next else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(due).await;
        let (spec, counter, due) = &mut active[i];
        *due = tokio::time::Instant::now() + spec.period;
        let result = probe::check(&spec.action, &ip, spec.timeout, p.exec.as_ref()).await;
        if let Err(msg) = &result {
            p.event(
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed: {msg}", spec.kind.as_str()),
            );
        }
        match (spec.kind, counter.record(result.is_ok(), spec)) {
            (Kind::Startup, Verdict::Passed) => {
                started = true;
                let now = tokio::time::Instant::now();
                // Liveness and readiness start counting once started.
                for (s, _, d) in active.iter_mut() {
                    if s.kind != Kind::Startup {
                        *d = now + s.initial_delay;
                    }
                }
                active.retain(|(s, _, _)| s.kind != Kind::Startup);
                p.set(|c| c.started = Some(true));
            }
            (Kind::Readiness, Verdict::Passed) => p.set(|c| c.probe_ready = Some(true)),
            (Kind::Readiness, Verdict::Failed) => p.set(|c| c.probe_ready = Some(false)),
            (kind @ (Kind::Startup | Kind::Liveness), Verdict::Failed) => return kind,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_decides_as_kubernetes() {
        assert!(should_restart("Always", 0, false));
        assert!(should_restart("Always", 1, false));
        assert!(!should_restart("OnFailure", 0, false));
        assert!(should_restart("OnFailure", 2, false));
        assert!(!should_restart("Never", 1, false));
        // Init containers under Always restart only when they fail.
        assert!(!should_restart("Always", 0, true));
        assert!(should_restart("Always", 1, true));
    }

    #[test]
    fn backoff_is_10s_doubling_to_5min() {
        assert_eq!(backoff(1), Duration::ZERO, "the first restart is immediate");
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(100), Duration::from_secs(300));
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("reg:5000/app"), "Always");
        assert_eq!(default_pull_policy("app:latest"), "Always");
        assert_eq!(default_pull_policy("reg:5000/app:v1"), "IfNotPresent");
        assert_eq!(default_pull_policy("app@sha256:abc"), "IfNotPresent");
    }
}

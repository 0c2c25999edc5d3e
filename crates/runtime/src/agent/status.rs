//! What the agent knows about a pod's containers ([`PodRecord`]), and the
//! pod status Kubernetes derives from it (phase, conditions,
//! containerStatuses).
//!
//! The record is the agent's single source of truth for a pod: container
//! loops update it, the status writer turns it into `pods/status` and saves
//! it to the pod's state file, and a restarted agent reads it back to
//! re-adopt the pod without resetting its restart counts.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::PodSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Now, as Kubernetes writes times in status.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub container_id: String,
}

/// `state` of a containerStatus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated(Terminated),
}

/// One container as the agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: String,
    pub state: State,
    pub last_terminated: Option<Terminated>,
    pub restart_count: u32,
    /// The startup probe's verdict; `None` without a startup probe.
    #[serde(default)]
    pub started: Option<bool>,
    /// The readiness probe's verdict; `None` without a readiness probe.
    #[serde(default)]
    pub probe_ready: Option<bool>,
}

impl ContainerRecord {
    /// A container not started yet, waiting with `reason`.
    pub fn waiting(name: &str, image: &str, reason: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: String::new(),
            state: State::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
            started: None,
            probe_ready: None,
        }
    }

    /// Running, and past its startup probe if it has one.
    fn started(&self) -> bool {
        matches!(self.state, State::Running { .. }) && self.started != Some(false)
    }

    /// Started, and passing its readiness probe if it has one.
    fn ready(&self) -> bool {
        self.started() && self.probe_ready != Some(false)
    }

    fn to_status(&self) -> Value {
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => json!({"terminated": terminated(t)}),
        };
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "state": state,
            "lastState": self.last_terminated.as_ref().map_or(json!({}), |t| json!({"terminated": terminated(t)})),
            "ready": self.ready(),
            "started": self.started(),
            "restartCount": self.restart_count,
        });
        if !self.container_id.is_empty() {
            s["containerID"] = json!(self.container_id);
        }
        s
    }
}

fn terminated(t: &Terminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "finishedAt": t.finished_at,
        "containerID": t.container_id,
    });
    if let Some(s) = &t.started_at {
        v["startedAt"] = json!(s);
    }
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

/// Everything the agent keeps about one pod; saved as its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub start_time: Option<String>,
    pub init: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Last status and transition time of each pod condition.
    pub transitions: BTreeMap<String, (bool, String)>,
    /// The pod's own address, when it has one (kept across agent restarts
    /// so an adopted pod keeps its IP).
    #[serde(default)]
    pub pod_ip: Option<String>,
    /// The network namespace of a Linux pod's sandbox, whose veth holds
    /// `pod_ip` (see `agent::sandbox`); None for pods without one.
    #[serde(default)]
    pub sandbox: Option<String>,
}

impl PodRecord {
    /// A fresh record: every container waiting, as the kubelet first
    /// reports them.
    pub fn new(namespace: &str, name: &str, uid: &str, spec: &PodSpec) -> Self {
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let main_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        PodRecord {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            start_time: Some(now()),
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| {
                    ContainerRecord::waiting(
                        &c.name,
                        c.image.as_deref().unwrap_or(""),
                        "PodInitializing",
                    )
                })
                .collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| {
                    ContainerRecord::waiting(&c.name, c.image.as_deref().unwrap_or(""), main_reason)
                })
                .collect(),
            transitions: BTreeMap::new(),
            pod_ip: None,
            sandbox: None,
        }
    }

    /// The record of container `name` (`init` selects init containers).
    pub fn container_mut(&mut self, init: bool, name: &str) -> Option<&mut ContainerRecord> {
        let list = if init {
            &mut self.init
        } else {
            &mut self.containers
        };
        list.iter_mut().find(|c| c.name == name)
    }

    /// Whether every init container completed successfully.
    pub fn initialized(&self) -> bool {
        self.init
            .iter()
            .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
    }

    /// Adopt a record left by a previous run of the agent.
    ///
    /// In-process Wasm guests die with the agent, so a container the record
    /// shows running cannot be re-attached: it is started again once, its
    /// restartCount carried over and counted up by one (a restart did
    /// happen), and the lost run appears in lastState as the kubelet
    /// reports a container it cannot find (`ContainerStatusUnknown`, 137).
    /// Containers that had terminated keep their state, so a completed pod
    /// is not run twice.
    pub fn adopt_after_restart(&mut self) {
        for c in self.init.iter_mut().chain(self.containers.iter_mut()) {
            // A Linux container is its own process tree: it outlived the
            // agent and is adopted by the `linux` runtime, or its end is
            // found then.
            if c.container_id.starts_with("linux://") {
                continue;
            }
            if let State::Running { started_at } = &c.state {
                c.last_terminated = Some(Terminated {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some("The node agent restarted; the in-process guest could not be re-attached and was started again".into()),
                    started_at: Some(started_at.clone()),
                    finished_at: now(),
                    container_id: c.container_id.clone(),
                });
                c.restart_count += 1;
                c.state = State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                };
            }
        }
    }

    /// Read the state file at `path`, if there is a readable one.
    pub fn load(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write the state file atomically (write, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)
    }
}

/// The pod phase from its containers, as the kubelet's `getPhase` decides.
pub fn phase(r: &PodRecord, restart_policy: &str) -> &'static str {
    let init_failed = r
        .init
        .iter()
        .any(|c| matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
    if !r.initialized() {
        return if init_failed && restart_policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &r.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to restart has run before: it counts as
            // stopped, not as never started.
            State::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match restart_policy {
        "Never" if succeeded == stopped => "Succeeded",
        "Never" => "Failed",
        "OnFailure" if succeeded == stopped => "Succeeded",
        "OnFailure" => "Running",
        _ => "Running",
    }
}

fn condition(
    r: &mut PodRecord,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> Value {
    let entry = r
        .transitions
        .entry(kind.to_string())
        .or_insert_with(|| (ok, now()));
    if entry.0 != ok {
        *entry = (ok, now());
    }
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": entry.1});
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The `status` the agent writes to `pods/status`.
pub fn pod_status(r: &mut PodRecord, restart_policy: &str, host_ip: &str, pod_ip: &str) -> Value {
    let phase = phase(r, restart_policy);
    let completed = phase == "Succeeded" || phase == "Failed";
    let initialized = r.initialized();
    let incomplete: Vec<String> = r
        .init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.clone())
        .collect();
    let unready: Vec<String> = r
        .containers
        .iter()
        .filter(|c| !c.ready())
        .map(|c| c.name.clone())
        .collect();
    let ready = unready.is_empty();
    let not_ready_reason = if completed {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let unready_msg = (!ready && !completed)
        .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let conditions = vec![
        condition(r, "PodScheduled", true, None, None),
        condition(
            r,
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )
            }),
        ),
        condition(
            r,
            "ContainersReady",
            ready,
            (!ready).then_some(not_ready_reason),
            unready_msg.clone(),
        ),
        condition(
            r,
            "Ready",
            ready,
            (!ready).then_some(not_ready_reason),
            unready_msg,
        ),
    ];
    let mut s = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": r.start_time,
        "containerStatuses": r.containers.iter().map(ContainerRecord::to_status).collect::<Vec<_>>(),
    });
    if !r.init.is_empty() {
        s["initContainerStatuses"] = json!(r
            .init
            .iter()
            .map(ContainerRecord::to_status)
            .collect::<Vec<_>>());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).expect("spec")
    }

    fn term(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: None,
            started_at: Some("2026-01-01T00:00:00Z".into()),
            finished_at: "2026-01-01T00:00:01Z".into(),
            container_id: "wasmtime://abc".into(),
        })
    }

    fn record(states: Vec<State>) -> PodRecord {
        let mut r = PodRecord::new("ns", "p", "u", &spec(json!({"containers": []})));
        r.containers = states
            .into_iter()
            .enumerate()
            .map(|(i, s)| ContainerRecord {
                state: s,
                ..ContainerRecord::waiting(&format!("c{i}"), "img", "x")
            })
            .collect();
        r
    }

    #[test]
    fn phase_follows_the_kubelet() {
        let run = State::Running {
            started_at: "t".into(),
        };
        let wait = State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        assert_eq!(phase(&record(vec![wait.clone()]), "Always"), "Pending");
        assert_eq!(
            phase(&record(vec![run.clone(), term(0)]), "Never"),
            "Running"
        );
        assert_eq!(phase(&record(vec![term(0)]), "Never"), "Succeeded");
        assert_eq!(phase(&record(vec![term(0), term(1)]), "Never"), "Failed");
        assert_eq!(phase(&record(vec![term(1)]), "OnFailure"), "Running");
        assert_eq!(phase(&record(vec![term(0)]), "OnFailure"), "Succeeded");
        // Always: a stopped container is about to restart.
        assert_eq!(phase(&record(vec![term(0)]), "Always"), "Running");
        // CrashLoopBackOff (waiting after a previous run) is Running, not Pending.
        let mut r = record(vec![wait]);
        r.containers[0].last_terminated = Some(Terminated {
            exit_code: 1,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: String::new(),
        });
        assert_eq!(phase(&r, "Always"), "Running");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let s = spec(
            json!({"initContainers": [{"name": "i", "image": "x"}], "containers": [{"name": "m", "image": "y"}]}),
        );
        let mut r = PodRecord::new("ns", "p", "u", &s);
        assert_eq!(
            r.containers[0].state,
            State::Waiting {
                reason: "PodInitializing".into(),
                message: None
            }
        );
        assert_eq!(phase(&r, "Always"), "Pending");
        let st = pod_status(&mut r, "Always", "10.0.0.1", "10.0.0.1");
        assert_eq!(st["conditions"][1]["type"], "Initialized");
        assert_eq!(st["conditions"][1]["status"], "False");
        assert_eq!(
            st["conditions"][1]["message"],
            "containers with incomplete status: [i]"
        );
        r.init[0].state = term(1);
        assert_eq!(
            phase(&r, "Never"),
            "Failed",
            "a failed init container fails a Never pod"
        );
        assert_eq!(phase(&r, "Always"), "Pending");
        r.init[0].state = term(0);
        assert!(r.initialized());
    }

    #[test]
    fn status_as_kubectl_reads_it() {
        let mut r = record(vec![State::Running {
            started_at: "2026-01-01T00:00:00Z".into(),
        }]);
        r.containers[0].container_id = "wasmtime://abc".into();
        r.containers[0].image_id = "sha256:1".into();
        let st = pod_status(&mut r, "Always", "10.0.0.1", "10.0.0.1");
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "10.0.0.1");
        let c = &st["containerStatuses"][0];
        assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");
        assert_eq!(c["ready"], true);
        assert_eq!(c["containerID"], "wasmtime://abc");
        assert_eq!(st["conditions"][3]["type"], "Ready");
        assert_eq!(st["conditions"][3]["status"], "True");
        let typed: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(st).expect("PodStatus");
        assert_eq!(typed.container_statuses.map(|c| c.len()), Some(1));
        // Completed pods are not ready, with the kubelet's reason.
        let mut done = record(vec![term(0)]);
        let st = pod_status(&mut done, "Never", "h", "p");
        assert_eq!(st["conditions"][3]["reason"], "PodCompleted");
        assert_eq!(
            st["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }

    #[test]
    fn transition_times_move_only_on_change() {
        let mut r = record(vec![State::Running {
            started_at: "t".into(),
        }]);
        pod_status(&mut r, "Always", "h", "p");
        r.transitions
            .insert("Ready".into(), (true, "earlier".into()));
        let st = pod_status(&mut r, "Always", "h", "p");
        assert_eq!(st["conditions"][3]["lastTransitionTime"], "earlier");
        r.containers[0].state = term(1);
        let st = pod_status(&mut r, "Always", "h", "p");
        assert_ne!(st["conditions"][3]["lastTransitionTime"], "earlier");
    }

    #[test]
    fn adoption_restarts_running_containers_once_and_keeps_counts() {
        let mut r = record(vec![
            State::Running {
                started_at: "t0".into(),
            },
            term(0),
        ]);
        r.containers[0].restart_count = 3;
        r.adopt_after_restart();
        assert_eq!(r.containers[0].restart_count, 4);
        assert_eq!(
            r.containers[0]
                .last_terminated
                .as_ref()
                .map(|t| t.reason.as_str()),
            Some("ContainerStatusUnknown")
        );
        assert!(matches!(r.containers[0].state, State::Waiting { .. }));
        assert_eq!(
            r.containers[1].state,
            term(0),
            "finished containers are not run again"
        );
        r.adopt_after_restart();
        assert_eq!(
            r.containers[0].restart_count, 4,
            "adopting twice does not double"
        );
    }

    #[test]
    fn state_file_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state.json");
        let r = record(vec![term(2)]);
        r.save(&path).expect("save");
        assert_eq!(PodRecord::load(&path), Some(r));
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(PodRecord::load(&path), None);
    }
}

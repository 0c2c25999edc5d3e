//! What the Job controller reads off a Job and its pods, as pure functions:
//! counts, completion indexes, the terminal decision, the pod back-off and
//! conditions, with Kubernetes' semantics.
//!
//! skiff counts finished pods the way Kubernetes did before finalizer-based
//! tracking: from the pods that exist, never letting a count fall below
//! what the status already says. A finished pod deleted before the
//! controller saw it is therefore not counted, which Kubernetes' tracking
//! finalizers would prevent.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::replicaset::pods;

/// Annotation and label with a pod's completion index (Indexed mode).
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Kubernetes' longest pause before replacing a failed pod.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A Job's spec with Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `completions`; `None` is the work-queue mode.
    pub completions: Option<i32>,
    /// `parallelism`.
    pub parallelism: i32,
    /// `backoffLimit`.
    pub backoff_limit: i32,
    /// `activeDeadlineSeconds`.
    pub active_deadline: Option<i64>,
    /// `ttlSecondsAfterFinished`.
    pub ttl: Option<i32>,
    /// `completionMode: Indexed`.
    pub indexed: bool,
    /// `suspend`.
    pub suspend: bool,
    /// The template's `restartPolicy` is OnFailure (else Never).
    pub on_failure: bool,
}

impl Spec {
    /// Read a Job's spec, defaulting what the API server may have left out.
    pub fn of(job: &Job) -> Spec {
        let s = job.spec.clone().unwrap_or_default();
        let completions = match (s.completions, s.parallelism) {
            (None, None) => Some(1),
            (c, _) => c,
        };
        let restart = s
            .template
            .spec
            .as_ref()
            .and_then(|p| p.restart_policy.clone());
        Spec {
            completions,
            parallelism: s.parallelism.unwrap_or(1).max(0),
            backoff_limit: s.backoff_limit.unwrap_or(6).max(0),
            active_deadline: s.active_deadline_seconds,
            ttl: s.ttl_seconds_after_finished,
            indexed: s.completion_mode.as_deref() == Some("Indexed"),
            suspend: s.suspend.unwrap_or(false),
            on_failure: restart.as_deref() == Some("OnFailure"),
        }
    }
}

/// The pods' state as the controller counts it.
#[derive(Debug, Default)]
pub struct Counts {
    /// Pods neither finished nor terminating.
    pub active: Vec<Arc<Pod>>,
    /// Terminating pods that have not finished.
    pub terminating: usize,
    /// Active pods whose Ready condition is True.
    pub ready: i32,
    /// Pods that succeeded (in Indexed mode: distinct indexes done).
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Indexes completed (Indexed mode).
    pub completed_indexes: BTreeSet<i32>,
    /// Container restarts of active pods (counts as failures for OnFailure).
    pub restarts: i32,
    /// Failed pods that finished after the last success.
    pub recent_failures: u32,
    /// When the most recent pod failure happened.
    pub last_failure: Option<Timestamp>,
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// A pod's completion index from its annotation (or label).
pub fn index_of(pod: &Pod) -> Option<i32> {
    let m = &pod.metadata;
    m.annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| m.labels.as_ref().and_then(|l| l.get(COMPLETION_INDEX)))?
        .parse()
        .ok()
}

/// When a pod finished: its last container's exit, else when it last
/// changed a condition, else when it was created.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let exits = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0);
    let conditions = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0));
    exits
        .max()
        .or_else(|| conditions.max())
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn restarts(pod: &Pod) -> i32 {
    let s = pod.status.as_ref();
    let init = s.and_then(|s| s.init_container_statuses.as_ref());
    let main = s.and_then(|s| s.container_statuses.as_ref());
    init.into_iter()
        .chain(main)
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// Count the Job's pods against what its status already says.
pub fn count(job: &Job, spec: &Spec, owned: &[Arc<Pod>]) -> Counts {
    let status = job.status.clone().unwrap_or_default();
    let mut c = Counts::default();
    let (mut succeeded, mut failed) = (0, 0);
    let mut last_success = None;
    let mut failures = Vec::new();
    if spec.indexed {
        c.completed_indexes = parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
    }
    for p in owned {
        match phase(p) {
            Some("Succeeded") => {
                succeeded += 1;
                last_success = last_success.max(finished_at(p));
                if let Some(i) = index_of(p).filter(|_| spec.indexed) {
                    c.completed_indexes.insert(i);
                }
            }
            Some("Failed") => {
                failed += 1;
                failures.push(finished_at(p));
            }
            _ if p.metadata.deletion_timestamp.is_some() => c.terminating += 1,
            _ => {
                c.ready += i32::from(pods::is_ready(p));
                c.restarts += restarts(p);
                c.active.push(Arc::clone(p));
            }
        }
    }
    if spec.indexed {
        let n = spec.completions.unwrap_or(0);
        c.completed_indexes.retain(|i| (0..n).contains(i));
        succeeded = c.completed_indexes.len() as i32;
    }
    c.succeeded = succeeded.max(status.succeeded.unwrap_or(0));
    c.failed = failed.max(status.failed.unwrap_or(0));
    c.recent_failures = failures.iter().filter(|f| **f > last_success).count() as u32;
    c.last_failure = failures.into_iter().flatten().max();
    c
}

/// Parse `completedIndexes` ("1,3-5,7").
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// Format indexes as Kubernetes' `completedIndexes`: ascending, every run
/// of consecutive indexes written `first-last`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                parts.push(fmt_run(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        parts.push(fmt_run(r));
    }
    parts.join(",")
}

fn fmt_run((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// Why a Job fails, with Kubernetes' reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `BackoffLimitExceeded` or `DeadlineExceeded`.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

impl Failure {
    fn new(reason: &str, message: &str) -> Failure {
        Failure {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether the pods failed more often than `backoffLimit` allows. With
/// `restartPolicy: OnFailure` the kubelet restarts containers in place, so
/// their restarts count (Kubernetes' `pastBackoffLimitOnFailure`).
pub fn past_backoff_limit(spec: &Spec, c: &Counts) -> bool {
    if c.failed > spec.backoff_limit {
        return true;
    }
    if !spec.on_failure {
        return false;
    }
    if spec.backoff_limit == 0 {
        c.restarts > 0
    } else {
        c.restarts >= spec.backoff_limit
    }
}

/// When `activeDeadlineSeconds` runs out, counted from `startTime`.
pub fn deadline(spec: &Spec, start: Option<Timestamp>) -> Option<Timestamp> {
    let secs = spec.active_deadline?;
    start?.checked_add(SignedDuration::from_secs(secs)).ok()
}

/// Whether the Job must fail now.
pub fn failure(
    spec: &Spec,
    c: &Counts,
    start: Option<Timestamp>,
    now: Timestamp,
) -> Option<Failure> {
    if past_backoff_limit(spec, c) {
        return Some(Failure::new(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    if deadline(spec, start).is_some_and(|d| d <= now) {
        return Some(Failure::new(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ));
    }
    None
}

/// Whether the Job's success criteria are met: every completion done, or
/// in work-queue mode one pod succeeded and none is still running.
pub fn succeeded(spec: &Spec, c: &Counts) -> bool {
    match spec.completions {
        Some(n) => c.succeeded >= n,
        None => c.succeeded > 0 && c.active.is_empty(),
    }
}

/// How many pods should be running now (Kubernetes' `wantActive`).
pub fn want_active(spec: &Spec, c: &Counts) -> usize {
    if spec.suspend {
        return 0;
    }
    let want = match spec.completions {
        // Work queue: once one pod succeeded, start no more; let the rest finish.
        None if c.succeeded > 0 => c.active.len() as i32,
        None => spec.parallelism,
        Some(n) => spec.parallelism.min(n - c.succeeded),
    };
    usize::try_from(want).unwrap_or(0)
}

/// The indexes to start next: the lowest not completed and not running.
pub fn next_indexes(spec: &Spec, c: &Counts, n: usize) -> Vec<i32> {
    let running: BTreeSet<i32> = c.active.iter().filter_map(|p| index_of(p)).collect();
    (0..spec.completions.unwrap_or(0))
        .filter(|i| !c.completed_indexes.contains(i) && !running.contains(i))
        .take(n)
        .collect()
}

/// Active pods an Indexed Job must drop: a second pod for an index, a pod
/// with no or an out-of-range index, or a pod whose index is already done.
pub fn stray_indexed_pods(spec: &Spec, c: &Counts) -> Vec<Arc<Pod>> {
    let n = spec.completions.unwrap_or(0);
    let mut seen = BTreeSet::new();
    let mut sorted = c.active.clone();
    sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    sorted
        .into_iter()
        .filter(|p| match index_of(p) {
            Some(i) if (0..n).contains(&i) && !c.completed_indexes.contains(&i) => !seen.insert(i),
            _ => true,
        })
        .collect()
}

/// How long to wait before replacing failed pods: `base` doubled for each
/// failure since the last success, capped (Kubernetes' pod failure
/// back-off, 10s base).
pub fn backoff_remaining(c: &Counts, base: Duration, now: Timestamp) -> Option<Duration> {
    if c.recent_failures == 0 {
        return None;
    }
    let factor = 1u32 << (c.recent_failures - 1).min(16);
    let delay = base.saturating_mul(factor).min(MAX_BACKOFF);
    let last = c.last_failure?;
    let ready_at = last
        .checked_add(SignedDuration::try_from(delay).ok()?)
        .ok()?;
    (ready_at > now).then(|| ready_at.duration_since(now).unsigned_abs())
}

/// The condition of this type, if True.
pub fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// When the Job finished (Complete or Failed), if it did.
pub fn finished_at_time(job: &Job) -> Option<Timestamp> {
    let done = condition(job, "Complete").or_else(|| condition(job, "Failed"))?;
    job.status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .or(done.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Set a condition, keeping its transition time when the status is the
/// same (Kubernetes' `updateConditionsWithTransitionTime`).
pub fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let now = Time(now);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Some(now.clone());
        }
        if c.status != status || c.reason.as_deref() != Some(reason) {
            c.last_probe_time = Some(now);
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        return;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"restartPolicy": spec.get("restartPolicy").cloned()
            .unwrap_or(json!("Never")), "containers": [{"name": "c", "image": "x"}]}});
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec})).unwrap()
    }

    fn pod(phase: &str, index: Option<i32>, restarts: i32) -> Arc<Pod> {
        let ann = index.map(|i| json!({COMPLETION_INDEX: i.to_string()}));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "annotations": ann, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"containers": []},
                "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "x",
                    "imageID": "", "ready": false, "restartCount": restarts}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn defaults_follow_kubernetes() {
        // completions and parallelism unset: one pod, one completion.
        let s = Spec::of(&job(json!({})));
        assert_eq!(
            (s.completions, s.parallelism, s.backoff_limit),
            (Some(1), 1, 6)
        );
        // parallelism alone: the work-queue mode.
        let s = Spec::of(&job(json!({"parallelism": 3})));
        assert_eq!((s.completions, s.parallelism), (None, 3));
    }

    #[test]
    fn want_active_is_bounded_by_parallelism_and_remaining_completions() {
        let s = Spec::of(&job(json!({"completions": 3, "parallelism": 2})));
        let j = job(json!({}));
        let c = count(&j, &s, &[]);
        assert_eq!(want_active(&s, &c), 2);
        let c = count(
            &j,
            &s,
            &[pod("Succeeded", None, 0), pod("Succeeded", None, 0)],
        );
        assert_eq!(want_active(&s, &c), 1);
        assert!(!succeeded(&s, &c));
        let c = count(
            &j,
            &s,
            &std::array::from_fn::<_, 3, _>(|_| pod("Succeeded", None, 0)),
        );
        assert_eq!(want_active(&s, &c), 0);
        assert!(succeeded(&s, &c));
        let suspended = Spec { suspend: true, ..s };
        assert_eq!(want_active(&suspended, &count(&j, &suspended, &[])), 0);
    }

    #[test]
    fn work_queue_completes_when_one_succeeded_and_the_rest_finished() {
        let s = Spec::of(&job(json!({"parallelism": 2})));
        let j = job(json!({}));
        let c = count(
            &j,
            &s,
            &[pod("Succeeded", None, 0), pod("Running", None, 0)],
        );
        assert!(!succeeded(&s, &c));
        assert_eq!(want_active(&s, &c), 1, "no new pods once one succeeded");
        let c = count(
            &j,
            &s,
            &[pod("Succeeded", None, 0), pod("Succeeded", None, 0)],
        );
        assert!(succeeded(&s, &c));
    }

    #[test]
    fn backoff_limit_counts_failed_pods_or_restarts_with_on_failure() {
        let s = Spec::of(&job(json!({"backoffLimit": 1})));
        let j = job(json!({}));
        assert!(!past_backoff_limit(
            &s,
            &count(&j, &s, &[pod("Failed", None, 0)])
        ));
        let two = [pod("Failed", None, 0), pod("Failed", None, 0)];
        assert!(past_backoff_limit(&s, &count(&j, &s, &two)));
        let f = failure(&s, &count(&j, &s, &two), None, Timestamp::now()).unwrap();
        assert_eq!(f.reason, "BackoffLimitExceeded");
        let of = Spec::of(&job(
            json!({"backoffLimit": 2, "restartPolicy": "OnFailure"}),
        ));
        assert!(!past_backoff_limit(
            &of,
            &count(&j, &of, &[pod("Running", None, 1)])
        ));
        assert!(past_backoff_limit(
            &of,
            &count(&j, &of, &[pod("Running", None, 2)])
        ));
    }

    #[test]
    fn the_deadline_counts_from_start_time() {
        let s = Spec::of(&job(json!({"activeDeadlineSeconds": 10})));
        let c = Counts::default();
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        assert!(failure(&s, &c, Some(start), at("2026-01-01T00:00:09Z")).is_none());
        let f = failure(&s, &c, Some(start), at("2026-01-01T00:00:10Z")).unwrap();
        assert_eq!(f.reason, "DeadlineExceeded");
        assert!(failure(&s, &c, None, at("2030-01-01T00:00:00Z")).is_none());
    }

    #[test]
    fn completed_indexes_round_trip_in_kubernetes_format() {
        let set = parse_indexes("1,3-5,7");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [1, 3, 4, 5, 7]);
        assert_eq!(format_indexes(&set), "1,3-5,7");
        assert_eq!(format_indexes(&parse_indexes("0,1")), "0-1");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("x,-").is_empty());
    }

    #[test]
    fn indexed_jobs_start_the_lowest_missing_indexes_and_drop_duplicates() {
        let s = Spec::of(&job(
            json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}),
        ));
        let j = job(json!({}));
        let c = count(
            &j,
            &s,
            &[pod("Succeeded", Some(0), 0), pod("Running", Some(2), 0)],
        );
        assert_eq!(c.succeeded, 1);
        assert_eq!(next_indexes(&s, &c, 1), [1]);
        assert_eq!(next_indexes(&s, &c, 5), [1, 3]);
        let c = count(
            &j,
            &s,
            &[
                pod("Running", Some(1), 0),
                pod("Running", Some(1), 0),
                pod("Running", Some(9), 0),
            ],
        );
        assert_eq!(stray_indexed_pods(&s, &c).len(), 2);
        // A succeeded index counts once however many pods succeeded for it.
        let c = count(
            &j,
            &s,
            &[pod("Succeeded", Some(0), 0), pod("Succeeded", Some(0), 0)],
        );
        assert_eq!(c.succeeded, 1);
    }

    #[test]
    fn failed_pods_are_replaced_after_a_doubling_back_off() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let mut c = Counts {
            recent_failures: 1,
            last_failure: Some(at("2026-01-01T00:00:00Z")),
            ..Counts::default()
        };
        let base = Duration::from_secs(10);
        assert_eq!(
            backoff_remaining(&c, base, at("2026-01-01T00:00:04Z")),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            backoff_remaining(&c, base, at("2026-01-01T00:00:10Z")),
            None
        );
        c.recent_failures = 3;
        assert_eq!(
            backoff_remaining(&c, base, at("2026-01-01T00:00:10Z")),
            Some(Duration::from_secs(30))
        );
        c.recent_failures = 0;
        assert_eq!(
            backoff_remaining(&c, base, at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut v = Vec::new();
        set_condition(
            &mut v,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            t0,
        );
        set_condition(
            &mut v,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            t1,
        );
        assert_eq!(v[0].last_transition_time.as_ref().unwrap().0, t0);
        set_condition(
            &mut v,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            t1,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].last_transition_time.as_ref().unwrap().0, t1);
    }
}

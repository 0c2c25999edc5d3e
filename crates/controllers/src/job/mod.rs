//! The Job controller (batch/v1): run pods to completion, as Kubernetes'.
//!
//! Each reconcile reads the Job and the pods from watch caches, claims pods
//! by the Job's selector (which skiff's API server generates from the Job's
//! UID unless `manualSelector` is set, labelling the template with
//! `batch.kubernetes.io/controller-uid` and `job-name` as Kubernetes does),
//! counts them ([`state`]) and takes one step:
//!
//! - a Job past `backoffLimit` or `activeDeadlineSeconds` gets the
//!   `FailureTarget` condition, loses its running pods, and once none is
//!   left the `Failed` condition;
//! - a Job whose completions are reached gets `SuccessCriteriaMet`, loses
//!   any pod still running, then `Complete` and `completionTime`;
//! - otherwise, unless suspended, it starts pods up to `parallelism` (one
//!   per missing index in Indexed mode), after a doubling back-off when
//!   pods failed, and removes extras.
//!
//! A finished Job with `ttlSecondsAfterFinished` is deleted (background
//! propagation: the garbage collector removes its pods) once the TTL has
//! passed. Status goes through the status subresource.

pub mod state;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use crate::daemonset::podctl;
use crate::reconcile::{self, claim, Key, Owner, Requeue, Seen, WorkQueue};
use crate::replicaset::expectations::Expectations;
use crate::replicaset::pods::pick_for_deletion;
use state::{Counts, Failure, Spec, COMPLETION_INDEX};

/// Workers reconciling different Jobs at once.
const WORKERS: usize = 4;
/// Kubernetes' first pause before replacing a failed pod.
const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// Why a Job reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("job {key}: {action}: {source}")]
    Api {
        /// The Job.
        key: Key,
        /// What the controller was doing.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

fn api_err<'a>(key: &'a Key, action: &'static str) -> impl FnOnce(kube::Error) -> Error + 'a {
    move |source| Error::Api {
        key: key.clone(),
        action,
        source,
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Expectations,
    queue: WorkQueue,
    /// The first pause before replacing a failed pod.
    pod_backoff: Duration,
}

/// Run the Job controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    run_with_backoff(client, informers, POD_FAILURE_BACKOFF).await
}

/// [`run`] with another first pod failure back-off (tests shorten it).
async fn run_with_backoff(
    client: Client,
    informers: &reconcile::Informers,
    pod_backoff: Duration,
) -> anyhow::Result<()> {
    let (jobs, job_events) = informers.watch::<Job>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let ctx = Arc::new(Ctx {
        client,
        jobs,
        pods,
        expectations: Expectations::default(),
        queue: WorkQueue::new(),
        pod_backoff,
    });
    let job_loop = job_events.for_each(|ev| {
        if let Seen::Applied(job) | Seen::Deleted(job) = ev {
            ctx.queue.add(Key::of(&job));
        }
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        ctx.pod_seen(ev);
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        let synced =
            ctx.jobs.wait_until_ready().await.is_ok() && ctx.pods.wait_until_ready().await.is_ok();
        if synced {
            ctx.queue
                .run(WORKERS, move |key| {
                    let ctx = worker_ctx.clone();
                    async move { ctx.reconcile(key).await }
                })
                .await;
        }
    };
    tokio::select! {
        () = job_loop => anyhow::bail!("the Job watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = workers => anyhow::bail!("the Job workers stopped"),
    }
}

/// What one reconcile decided for the status.
struct Outcome {
    status: JobStatus,
    requeue: Requeue,
}

impl Ctx {
    /// Queue the Job a pod event concerns: its controller, or for an orphan
    /// every Job in its namespace whose selector matches.
    fn pod_seen(&self, ev: Seen<Pod>) {
        reconcile::queue_owners(&self.queue, &self.jobs, "Job", ev, |job, pod| {
            selector_of(job).matches(pod.metadata.labels.as_ref())
        });
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let Some(job) = self.jobs.get(&key.object_ref()) else {
            self.expectations.forget(&key);
            return Ok(Requeue::Never);
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Never);
        }
        if let Some(finished) = state::finished_at_time(&job) {
            return self.expire(&key, &job, finished).await;
        }
        let sel = selector_of(&job);
        if sel.is_empty() || sel.matches_nothing() {
            return Ok(Requeue::Never);
        }
        let candidates = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(key.namespace.as_str()));
        let client = self.client.clone();
        let owned = claim(
            |ns| Api::<Pod>::namespaced(client.clone(), ns),
            &Owner::of(job.as_ref()),
            &sel,
            candidates,
        )
        .await
        .map_err(api_err(&key, "claiming pods"))?;
        let spec = Spec::of(&job);
        let counts = state::count(&job, &spec, &owned);
        let outcome = self.step(&key, &job, &spec, &counts).await;
        // Write what was decided even when a pod call failed, so the
        // status never lags behind the pods.
        let written = match &outcome {
            Ok(o) => self.update_status(&key, &job, &o.status).await,
            Err(_) => Ok(()),
        };
        let outcome = outcome?;
        written?;
        Ok(outcome.requeue)
    }

    /// Decide and act: fail, complete, or manage the pods.
    async fn step(&self, key: &Key, job: &Job, spec: &Spec, c: &Counts) -> Result<Outcome, Error> {
        let now = Timestamp::now();
        let old = job.status.clone().unwrap_or_default();
        let mut conditions = old.conditions.clone().unwrap_or_default();
        let start = self.start_time(spec, &old, &mut conditions, now);
        let mut status = JobStatus {
            start_time: start.map(Time),
            active: Some(c.active.len() as i32),
            ready: Some(c.ready),
            succeeded: Some(c.succeeded),
            failed: Some(c.failed),
            completed_indexes: spec
                .indexed
                .then(|| state::format_indexes(&c.completed_indexes)),
            // What this controller does not manage stays as it is, so an
            // unchanged status compares equal and is not written again.
            ..old.clone()
        };
        let mut requeue = Requeue::Never;
        let target = state::condition(job, "FailureTarget").map(|t| Failure {
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone().unwrap_or_default(),
        });
        let failure = target.or_else(|| {
            (!spec.suspend)
                .then(|| state::failure(spec, c, start, now))
                .flatten()
        });
        if let Some(f) = failure {
            self.finish_pods(key, c).await?;
            set(&mut conditions, "FailureTarget", &f.reason, &f.message, now);
            if c.active.is_empty() && c.terminating == 0 {
                set(&mut conditions, "Failed", &f.reason, &f.message, now);
            }
            status.active = Some(0);
        } else if state::succeeded(spec, c) || state::condition(job, "SuccessCriteriaMet").is_some()
        {
            const MSG: &str = "Reached expected number of succeeded pods";
            self.finish_pods(key, c).await?;
            set(
                &mut conditions,
                "SuccessCriteriaMet",
                "CompletionsReached",
                MSG,
                now,
            );
            if c.active.is_empty() && c.terminating == 0 {
                set(&mut conditions, "Complete", "CompletionsReached", MSG, now);
                status.completion_time = Some(Time(now));
            }
            status.active = Some(0);
        } else {
            requeue = self.manage(key, job, spec, c, now).await?;
            if let Some(d) = state::deadline(spec, start).filter(|_| !spec.suspend) {
                let wait = d.duration_since(now).unsigned_abs() + Duration::from_millis(10);
                requeue = requeue.min(Requeue::After(wait));
            }
        }
        status.conditions = (!conditions.is_empty()).then_some(conditions);
        Ok(Outcome { status, requeue })
    }

    /// `startTime`, and the Suspended condition: a resumed Job starts its
    /// deadline afresh, as in Kubernetes.
    fn start_time(
        &self,
        spec: &Spec,
        old: &JobStatus,
        conditions: &mut Vec<JobCondition>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let was_suspended = conditions
            .iter()
            .any(|c| c.type_ == "Suspended" && c.status == "True");
        if spec.suspend {
            set(
                conditions,
                "Suspended",
                "JobSuspended",
                "Job suspended",
                now,
            );
            return old.start_time.as_ref().map(|t| t.0);
        }
        if was_suspended {
            state::set_condition(
                conditions,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            return Some(now);
        }
        Some(old.start_time.as_ref().map_or(now, |t| t.0))
    }

    /// Delete every running pod of a Job that has reached its end.
    async fn finish_pods(&self, key: &Key, c: &Counts) -> Result<(), Error> {
        if c.active.is_empty() {
            return Ok(());
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        podctl::delete_pods(&api, key, &self.expectations, c.active.clone())
            .await
            .map_err(api_err(key, "deleting pods"))
    }

    /// Start or stop pods to have `want_active` running.
    async fn manage(
        &self,
        key: &Key,
        job: &Job,
        spec: &Spec,
        c: &Counts,
        now: Timestamp,
    ) -> Result<Requeue, Error> {
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Requeue::Never);
        }
        let want = state::want_active(spec, c);
        let mut doomed = if spec.indexed {
            state::stray_indexed_pods(spec, c)
        } else {
            Vec::new()
        };
        let keep: Vec<Arc<Pod>> = c
            .active
            .iter()
            .filter(|p| !doomed.iter().any(|d| Arc::ptr_eq(d, p)))
            .cloned()
            .collect();
        if keep.len() > want {
            doomed.extend(pick_for_deletion(&keep, keep.len() - want));
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        if !doomed.is_empty() {
            podctl::delete_pods(&api, key, &self.expectations, doomed)
                .await
                .map_err(api_err(key, "deleting pods"))?;
        }
        let missing = want.saturating_sub(keep.len());
        if missing == 0 {
            return Ok(Requeue::Never);
        }
        if let Some(wait) = state::backoff_remaining(c, self.pod_backoff, now) {
            return Ok(Requeue::After(wait));
        }
        let pods = if spec.indexed {
            state::next_indexes(spec, c, missing)
                .into_iter()
                .map(|i| pod_for(job, Some(i)))
                .collect()
        } else {
            (0..missing).map(|_| pod_for(job, None)).collect()
        };
        podctl::create_pods(&api, key, &self.expectations, pods)
            .await
            .map_err(api_err(key, "creating pods"))?;
        Ok(Requeue::Never)
    }

    /// Delete a finished Job once `ttlSecondsAfterFinished` has passed.
    async fn expire(&self, key: &Key, job: &Job, finished: Timestamp) -> Result<Requeue, Error> {
        let Some(ttl) = Spec::of(job).ttl else {
            return Ok(Requeue::Never);
        };
        let now = Timestamp::now();
        let at = finished
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(ttl)))
            .unwrap_or(finished);
        if at > now {
            let wait = at.duration_since(now).unsigned_abs() + Duration::from_millis(10);
            return Ok(Requeue::After(wait));
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        tracing::debug!(%key, "deleting finished Job after its TTL");
        match Api::<Job>::namespaced(self.client.clone(), &key.namespace)
            .delete(&key.name, &dp)
            .await
        {
            Ok(_) => Ok(Requeue::Never),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Requeue::Never),
            Err(source) => Err(Error::Api {
                key: key.clone(),
                action: "deleting the finished Job",
                source,
            }),
        }
    }

    /// Write the status through the subresource when it changed.
    async fn update_status(&self, key: &Key, job: &Job, status: &JobStatus) -> Result<(), Error> {
        if job.status.as_ref() == Some(status) {
            return Ok(());
        }
        let patch = json!({ "status": status });
        let api = Api::<Job>::namespaced(self.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Api {
                key: key.clone(),
                action: "updating status",
                source,
            }),
        }
    }
}

/// Set a condition True.
fn set(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    state::set_condition(conditions, type_, "True", reason, message, now);
}

/// The Job's selector; a Job without one selects nothing.
fn selector_of(job: &Job) -> reconcile::Selector {
    job.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(reconcile::selector)
        .unwrap_or_else(reconcile::Selector::nothing)
}

/// A pod as the Job creates it: the template (whose labels carry the
/// Job's selector), `generateName: JOB-` (`JOB-INDEX-` in Indexed mode,
/// with the index as annotation, label, hostname and
/// `JOB_COMPLETION_INDEX` from the annotation), controlled by the Job.
fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            spec.hostname = Some(format!("{name}-{i}"));
            for c in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(&mut spec.containers)
            {
                add_index_env(c);
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: tm.finalizers,
            owner_references: Some(vec![Owner::of(job).reference()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `JOB_COMPLETION_INDEX` from the pod's index annotation, unless the
/// container sets it itself.
fn add_index_env(c: &mut k8s_openapi::api::core::v1::Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
        return;
    }
    env.push(EnvVar {
        name: "JOB_COMPLETION_INDEX".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..EnvVarSource::default()
        }),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;

//! `meta.k8s.io/v1` Table output, the server-side printing behind
//! `kubectl get`.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! and prints whatever columns the server sends, so the columns and cells
//! here follow the Kubernetes API server's printers column for column: the
//! pod STATUS state machine, `RESTARTS` with the time of the last restart,
//! `<none>`/`<unknown>`/`<pending>` placeholders where Kubernetes prints
//! them. Like the API server, every row carries the `-o wide` cells too
//! (priority 1 columns); kubectl drops them unless asked for wide output.
//!
//! Column names are Kubernetes' (`Name`, `Up-to-date`, `Port(s)`); kubectl
//! upper-cases them for display. skiff adds one column of its own: `Arch`
//! on Nodes, because nodes of several architectures (and `wasm`) are normal
//! in a skiff cluster.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::selector::LabelSelector;

/// One column of a Table, as `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human-readable name; kubectl upper-cases it for the header.
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// `name` for the column that holds the object's name, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for default output, 1 for `-o wide` only.
    pub priority: i32,
}

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label query over pods that should match the replica count.",
);

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "IP address allocated to the pod."),
    wide("Node", "string", "The node the pod is bound to."),
    wide("Nominated Node", "string", "The node the scheduler nominated for this pod after preemption."),
    wide("Readiness Gates", "string", "Pod conditions evaluated for readiness, as true/total."),
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const REPLICA_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
    col("Current", "integer", "The number of nodes that are running at least one daemon pod and are supposed to."),
    col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of it running and ready."),
    col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod."),
    col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of it running and available."),
    col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];
const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format."),
    col(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    col(
        "Suspend",
        "boolean",
        "Whether subsequent executions are suspended.",
    ),
    col("Active", "integer", "The number of currently running jobs."),
    col(
        "Last Schedule",
        "string",
        "The last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "string",
        "The node's first InternalIP address.",
    ),
    wide(
        "External-IP",
        "string",
        "The node's first ExternalIP address.",
    ),
    wide("OS-Image", "string", "OS Image reported by the node."),
    wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node.",
    ),
    wide("Arch", "string", "The Architecture reported by the node."),
];
const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "How the Service is exposed."),
    col(
        "Cluster-IP",
        "string",
        "The IP address of the service, usually assigned randomly.",
    ),
    col(
        "External-IP",
        "string",
        "IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    col(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    wide(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];
const RUNTIME_CLASS: &[Column] = &[
    NAME,
    col("Handler", "string", "The underlying runtime and configuration that the CRI implementation will use to handle pods of this class."),
    AGE,
];
const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];
const EVENT: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning)."),
    col("Reason", "string", "A short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "The field of the object the event is about, such as a container."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    Column {
        priority: 1,
        ..NAME
    },
];
const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", "string", "Number of data and binaryData entries."),
    AGE,
];
const SECRET: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Number of data entries."),
    AGE,
];
const WEBHOOK_CONFIGURATION: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks in the configuration",
    ),
    AGE,
];

const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        "Number of secrets pods running as this service account may use.",
    ),
    AGE,
];
const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];
const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "The type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "The network ports exposed by each endpoint.",
    ),
    col(
        "Endpoints",
        "string",
        "The addresses of the endpoints in this slice.",
    ),
    AGE,
];
const LEASE: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "The identity of the holder of a current lease.",
    ),
    AGE,
];
const INGRESS: &[Column] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];
const INGRESS_CLASS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];
const ROLE: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];
const ROLE_BINDING: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        "The Role or ClusterRole the binding refers to.",
    ),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];
const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];
const PRIORITY_CLASS: &[Column] = &[
    NAME,
    col(
        "Value",
        "integer",
        "The priority of pods that name this class.",
    ),
    col(
        "Global-Default",
        "boolean",
        "Whether this class is the default for pods without a priority class.",
    ),
    AGE,
    col(
        "PreemptionPolicy",
        "string",
        "The policy for preempting pods with lower priority.",
    ),
];
const CSR: &[Column] = &[
    NAME,
    AGE,
    col(
        "SignerName",
        "string",
        "The name of the signer to fulfil the request.",
    ),
    col("Requestor", "string", "Who made the request."),
    col(
        "RequestedDuration",
        "string",
        "The requested validity of the certificate.",
    ),
    col(
        "Condition",
        "string",
        "Approved, Denied or Failed, and Issued once signed; Pending before.",
    ),
];
const DEFAULT: &[Column] = &[NAME, AGE];

/// The printer a kind gets; everything Kubernetes has no printer for in
/// this list shows `Name` and `Age`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Printer {
    Csr,
    Pod,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Node,
    Service,
    RuntimeClass,
    Namespace,
    Event,
    ConfigMap,
    Secret,
    ServiceAccount,
    Endpoints,
    EndpointSlice,
    Lease,
    Ingress,
    IngressClass,
    Role,
    RoleBinding,
    ControllerRevision,
    PriorityClass,
    WebhookConfiguration,
    Default,
}

fn printer(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => Printer::Pod,
        ("apps", "Deployment") => Printer::Deployment,
        ("apps", "ReplicaSet") => Printer::ReplicaSet,
        ("apps", "DaemonSet") => Printer::DaemonSet,
        ("apps", "StatefulSet") => Printer::StatefulSet,
        ("apps", "ControllerRevision") => Printer::ControllerRevision,
        ("batch", "Job") => Printer::Job,
        ("batch", "CronJob") => Printer::CronJob,
        ("", "Node") => Printer::Node,
        ("", "Service") => Printer::Service,
        ("node.k8s.io", "RuntimeClass") => Printer::RuntimeClass,
        ("", "Namespace") => Printer::Namespace,
        ("" | "events.k8s.io", "Event") => Printer::Event,
        ("", "ConfigMap") => Printer::ConfigMap,
        ("", "Secret") => Printer::Secret,
        ("", "ServiceAccount") => Printer::ServiceAccount,
        ("", "Endpoints") => Printer::Endpoints,
        ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
        ("coordination.k8s.io", "Lease") => Printer::Lease,
        ("certificates.k8s.io", "CertificateSigningRequest") => Printer::Csr,
        ("networking.k8s.io", "Ingress") => Printer::Ingress,
        ("networking.k8s.io", "IngressClass") => Printer::IngressClass,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => Printer::Role,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Printer::RoleBinding,
        ("scheduling.k8s.io", "PriorityClass") => Printer::PriorityClass,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => Printer::WebhookConfiguration,
        _ => Printer::Default,
    }
}

impl Printer {
    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD,
            Printer::Deployment => DEPLOYMENT,
            Printer::ReplicaSet => REPLICA_SET,
            Printer::DaemonSet => DAEMON_SET,
            Printer::StatefulSet => STATEFUL_SET,
            Printer::Job => JOB,
            Printer::CronJob => CRON_JOB,
            Printer::Node => NODE,
            Printer::Service => SERVICE,
            Printer::RuntimeClass => RUNTIME_CLASS,
            Printer::Namespace => NAMESPACE,
            Printer::Event => EVENT,
            Printer::ConfigMap => CONFIG_MAP,
            Printer::Secret => SECRET,
            Printer::ServiceAccount => SERVICE_ACCOUNT,
            Printer::Endpoints => ENDPOINTS,
            Printer::EndpointSlice => ENDPOINT_SLICE,
            Printer::Lease => LEASE,
            Printer::Csr => CSR,
            Printer::Ingress => INGRESS,
            Printer::IngressClass => INGRESS_CLASS,
            Printer::Role => ROLE,
            Printer::RoleBinding => ROLE_BINDING,
            Printer::ControllerRevision => CONTROLLER_REVISION,
            Printer::PriorityClass => PRIORITY_CLASS,
            Printer::WebhookConfiguration => WEBHOOK_CONFIGURATION,
            Printer::Default => DEFAULT,
        }
    }

    fn cells(self, o: &Value, now: DateTime<Utc>) -> Vec<Value> {
        match self {
            Printer::Pod => pod_cells(o, now),
            Printer::Deployment => deployment_cells(o, now),
            Printer::ReplicaSet => replica_set_cells(o, now),
            Printer::DaemonSet => daemon_set_cells(o, now),
            Printer::StatefulSet => stateful_set_cells(o, now),
            Printer::Job => job_cells(o, now),
            Printer::CronJob => cron_job_cells(o, now),
            Printer::Node => node_cells(o, now),
            Printer::Service => service_cells(o, now),
            Printer::RuntimeClass => vec![name(o), st(o, "/handler"), age(o, now)],
            Printer::Namespace => vec![name(o), st(o, "/status/phase"), age(o, now)],
            Printer::Event => event_cells(o, now),
            Printer::ConfigMap => {
                let n = len(o, "/data") + len(o, "/binaryData");
                vec![name(o), json!(n), age(o, now)]
            }
            Printer::Secret => vec![name(o), st(o, "/type"), json!(len(o, "/data")), age(o, now)],
            Printer::ServiceAccount => vec![name(o), json!(len(o, "/secrets")), age(o, now)],
            Printer::Endpoints => vec![name(o), json!(format_endpoints(o)), age(o, now)],
            Printer::EndpointSlice => endpoint_slice_cells(o, now),
            Printer::Lease => vec![name(o), st(o, "/spec/holderIdentity"), age(o, now)],
            Printer::Csr => csr_cells(o, now),
            Printer::Ingress => ingress_cells(o, now),
            Printer::IngressClass => ingress_class_cells(o, now),
            Printer::Role => vec![name(o), json!(created_at(o))],
            Printer::RoleBinding => role_binding_cells(o, now),
            Printer::ControllerRevision => controller_revision_cells(o, now),
            Printer::PriorityClass => vec![
                name(o),
                json!(int(o, "/value")),
                json!(o["globalDefault"].as_bool().unwrap_or(false)),
                age(o, now),
                st(o, "/preemptionPolicy"),
            ],
            Printer::WebhookConfiguration => {
                vec![name(o), json!(len(o, "/webhooks")), age(o, now)]
            }
            Printer::Default => vec![name(o), age(o, now)],
        }
    }
}

/// The columns of a kind's Table, wide ones included.
pub fn columns(group: &str, kind: &str) -> Vec<Column> {
    printer(group, kind).columns().to_vec()
}

/// One row's cells for an object, in [`columns`] order.
pub fn cells(group: &str, kind: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    printer(group, kind).cells(obj, now)
}

/// The whole `meta.k8s.io/v1` Table for a list (or a single object).
///
/// `include_object` is the request's `includeObject`: `Metadata` (the
/// default: a `PartialObjectMetadata`), `Object` (the object itself) or
/// `None` (null).
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_metadata: Value,
    include_object: &str,
    now: DateTime<Utc>,
) -> Value {
    let p = printer(group, kind);
    let column_definitions: Vec<Value> = p
        .columns()
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format,
                   "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(p, o, include_object, now))
        .collect();
    let metadata = if list_metadata.is_object() {
        list_metadata
    } else {
        json!({})
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

fn row(p: Printer, o: &Value, include_object: &str, now: DateTime<Utc>) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => o.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(p.cells(o, now)));
    // Kubernetes marks finished pods with a Completed row condition.
    if p == Printer::Pod {
        if let Some(c) = pod_row_condition(o) {
            r.insert("conditions".into(), json!([c]));
        }
    }
    r.insert("object".into(), object);
    Value::Object(r)
}

fn pod_row_condition(o: &Value) -> Option<Value> {
    let (reason, message) = match o.pointer("/status/phase")?.as_str()? {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!({"type": "Completed", "status": "True", "reason": reason, "message": message}))
}

/// Kubernetes' `HumanDuration`: the approximate age shown in `AGE` columns,
/// with more precision for short durations.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

// ---------------------------------------------------------------------------
// Small readers over the JSON object.

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn csr_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut cond: Vec<String> = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str().map(str::to_string))
        .collect();
    if o["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        cond.push("Issued".into());
    }
    let cond = if cond.is_empty() {
        "Pending".to_string()
    } else {
        cond.join(",")
    };
    let duration = o
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or("<none>".to_string(), |s| format!("{}d", s / 86_400));
    vec![
        name(o),
        age(o, now),
        st(o, "/spec/signerName"),
        st(o, "/spec/username"),
        json!(duration),
        json!(cond),
    ]
}

fn st(o: &Value, ptr: &str) -> Value {
    json!(s(o, ptr))
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Entries of a map or list field.
fn len(o: &Value, ptr: &str) -> usize {
    match o.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

fn name(o: &Value) -> Value {
    st(o, "/metadata/name")
}

fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Time since a timestamp, `<unknown>` when it is unset.
fn since(v: Option<&Value>, now: DateTime<Utc>) -> String {
    match timestamp(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn age(o: &Value, now: DateTime<Utc>) -> Value {
    json!(since(o.pointer("/metadata/creationTimestamp"), now))
}

/// RFC 3339 creation time, as the API server's default table prints it.
fn created_at(o: &Value) -> String {
    timestamp(o.pointer("/metadata/creationTimestamp"))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `a=b,c=d` sorted by key, or `<none>`.
fn format_labels(v: Option<&Value>) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A `metav1.LabelSelector` as Kubernetes' `FormatLabelSelector` prints it.
fn format_label_selector(v: Option<&Value>) -> String {
    match LabelSelector::from_json(v.unwrap_or(&Value::Null)) {
        Ok(sel) if sel.to_string().is_empty() => "<none>".into(),
        Ok(sel) => sel.to_string(),
        Err(_) => "<error>".into(),
    }
}

/// Names and images of a pod template's containers, comma-joined.
fn container_cells(o: &Value, spec_ptr: &str) -> [Value; 2] {
    let containers = arr(o, &format!("{spec_ptr}/containers"));
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    [json!(names.join(",")), json!(images.join(","))]
}

/// `replicas`, which Kubernetes defaults to 1 for workloads.
fn desired_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn has_condition(o: &Value, ty: &str, status: &str) -> bool {
    arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == ty)
        .is_some_and(|c| s(c, "/status") == status)
}

// ---------------------------------------------------------------------------
// Pods.

/// What `printPod` works out about a pod's containers.
#[derive(Debug, Default)]
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<DateTime<Utc>>,
}

impl PodSummary {
    fn note_restarts(&mut self, status: &Value) {
        self.restarts += int(status, "/restartCount");
        let finished = timestamp(status.pointer("/lastState/terminated/finishedAt"));
        self.last_restart = self.last_restart.max(finished);
    }
}

fn pod_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let p = pod_summary(o);
    let restarts = match p.last_restart {
        Some(t) if p.restarts != 0 => {
            format!("{} ({} ago)", p.restarts, human_duration(now - t))
        }
        _ => p.restarts.to_string(),
    };
    let ip = [s(o, "/status/podIPs/0/ip"), s(o, "/status/podIP")]
        .into_iter()
        .find(|ip| !ip.is_empty())
        .unwrap_or("");
    vec![
        name(o),
        json!(format!("{}/{}", p.ready, p.total)),
        json!(p.reason),
        json!(restarts),
        age(o, now),
        json!(or_none(ip)),
        json!(or_none(s(o, "/spec/nodeName"))),
        json!(or_none(s(o, "/status/nominatedNodeName"))),
        json!(readiness_gates(o)),
    ]
}

fn readiness_gates(o: &Value) -> String {
    let gates = arr(o, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".into();
    }
    let ready = gates
        .iter()
        .filter(|g| has_condition(o, s(g, "/conditionType"), "True"))
        .count();
    format!("{ready}/{}", gates.len())
}

/// Kubernetes' pod STATUS state machine: phase or reason first, then init
/// containers, then app containers (last one wins), then deletion.
fn pod_summary(o: &Value) -> PodSummary {
    let init_specs = arr(o, "/spec/initContainers");
    let restartable: Vec<&str> = init_specs
        .iter()
        .filter(|c| s(c, "/restartPolicy") == "Always")
        .map(|c| s(c, "/name"))
        .collect();
    let mut p = PodSummary {
        total: arr(o, "/spec/containers").len() + restartable.len(),
        reason: initial_reason(o),
        ..PodSummary::default()
    };
    let (initializing, sidecars) = init_container_status(o, &mut p, &restartable, init_specs.len());
    if !initializing || has_condition(o, "Initialized", "True") {
        p.restarts = sidecars.restarts;
        p.last_restart = sidecars.last_restart;
        app_container_status(o, &mut p);
    }
    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let terminal = matches!(s(o, "/status/phase"), "Succeeded" | "Failed");
    if deleting && s(o, "/status/reason") == "NodeLost" {
        p.reason = "Unknown".into();
    } else if deleting && !terminal {
        p.reason = "Terminating".into();
    }
    p
}

fn initial_reason(o: &Value) -> String {
    let gated = arr(o, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated");
    if gated {
        return "SchedulingGated".into();
    }
    let reason = s(o, "/status/reason");
    if reason.is_empty() {
        s(o, "/status/phase").into()
    } else {
        reason.into()
    }
}

/// Walk init container statuses until the first one still in the way.
/// Returns whether the pod is still initializing, and the restarts of
/// restartable (sidecar) init containers, which count for running pods too.
fn init_container_status(
    o: &Value,
    p: &mut PodSummary,
    restartable: &[&str],
    init_count: usize,
) -> (bool, PodSummary) {
    let mut sidecars = PodSummary::default();
    for (i, c) in arr(o, "/status/initContainerStatuses").iter().enumerate() {
        p.note_restarts(c);
        let is_sidecar = restartable.contains(&s(c, "/name"));
        if is_sidecar {
            sidecars.note_restarts(c);
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let waiting_reason = s(c, "/state/waiting/reason");
        match terminated {
            Some(t) if int(t, "/exitCode") == 0 => continue,
            _ if is_sidecar && c["started"].as_bool() == Some(true) => {
                if c["ready"].as_bool() == Some(true) {
                    p.ready += 1;
                }
                continue;
            }
            Some(t) => p.reason = format!("Init:{}", terminated_reason(t)),
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                p.reason = format!("Init:{waiting_reason}")
            }
            None => p.reason = format!("Init:{i}/{init_count}"),
        }
        return (true, sidecars);
    }
    (false, sidecars)
}

/// `reason`, else `Signal:N`, else `ExitCode:N`.
fn terminated_reason(t: &Value) -> String {
    let reason = s(t, "/reason");
    if !reason.is_empty() {
        return reason.into();
    }
    match int(t, "/signal") {
        0 => format!("ExitCode:{}", int(t, "/exitCode")),
        sig => format!("Signal:{sig}"),
    }
}

fn app_container_status(o: &Value, p: &mut PodSummary) {
    let mut has_running = false;
    for c in arr(o, "/status/containerStatuses").iter().rev() {
        p.note_restarts(c);
        let waiting = s(c, "/state/waiting/reason");
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let running = c.pointer("/state/running").is_some_and(Value::is_object);
        if !waiting.is_empty() {
            p.reason = waiting.into();
        } else if let Some(t) = terminated {
            p.reason = terminated_reason(t);
        } else if c["ready"].as_bool() == Some(true) && running {
            has_running = true;
            p.ready += 1;
        }
    }
    if p.reason == "Completed" && has_running {
        p.reason = if has_condition(o, "Ready", "True") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
}

// ---------------------------------------------------------------------------
// Workloads.

fn deployment_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Deployments print their selector without the `<none>` placeholder.
    let selector =
        match LabelSelector::from_json(o.pointer("/spec/selector").unwrap_or(&Value::Null)) {
            Ok(sel) => sel.to_string(),
            Err(_) => "<invalid>".into(),
        };
    let [names, images] = container_cells(o, "/spec/template/spec");
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
        age(o, now),
        names,
        images,
        json!(selector),
    ]
}

fn replica_set_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let [names, images] = container_cells(o, "/spec/template/spec");
    vec![
        name(o),
        json!(desired_replicas(o)),
        json!(int(o, "/status/replicas")),
        json!(int(o, "/status/readyReplicas")),
        age(o, now),
        names,
        images,
        json!(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

fn daemon_set_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let [names, images] = container_cells(o, "/spec/template/spec");
    vec![
        name(o),
        json!(int(o, "/status/desiredNumberScheduled")),
        json!(int(o, "/status/currentNumberScheduled")),
        json!(int(o, "/status/numberReady")),
        json!(int(o, "/status/updatedNumberScheduled")),
        json!(int(o, "/status/numberAvailable")),
        json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
        age(o, now),
        names,
        images,
        json!(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

fn stateful_set_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let [names, images] = container_cells(o, "/spec/template/spec");
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        age(o, now),
        names,
        images,
    ]
}

fn job_status(o: &Value) -> &'static str {
    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if has_condition(o, "Complete", "True") {
        "Complete"
    } else if has_condition(o, "Failed", "True") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_condition(o, "Suspended", "True") {
        "Suspended"
    } else if has_condition(o, "FailureTarget", "True") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(o: &Value) -> String {
    let succeeded = int(o, "/status/succeeded");
    if let Some(c) = o.pointer("/spec/completions").and_then(Value::as_i64) {
        return format!("{succeeded}/{c}");
    }
    match int(o, "/spec/parallelism") {
        p if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

fn job_duration(o: &Value, now: DateTime<Utc>) -> String {
    let Some(start) = timestamp(o.pointer("/status/startTime")) else {
        return String::new();
    };
    let end = timestamp(o.pointer("/status/completionTime")).unwrap_or(now);
    human_duration(end - start)
}

fn job_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let [names, images] = container_cells(o, "/spec/template/spec");
    vec![
        name(o),
        json!(job_status(o)),
        json!(job_completions(o)),
        json!(job_duration(o, now)),
        age(o, now),
        names,
        images,
        json!(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

fn cron_job_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last = match o.pointer("/status/lastScheduleTime") {
        Some(v) if !v.is_null() => since(Some(v), now),
        _ => "<none>".into(),
    };
    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let [names, images] = container_cells(o, "/spec/jobTemplate/spec/template/spec");
    vec![
        name(o),
        st(o, "/spec/schedule"),
        json!(or_none(s(o, "/spec/timeZone"))),
        json!(suspend),
        json!(len(o, "/status/active")),
        json!(last),
        age(o, now),
        names,
        images,
        json!(format_label_selector(
            o.pointer("/spec/jobTemplate/spec/selector")
        )),
    ]
}

fn controller_revision_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = arr(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| {
            let group = s(r, "/apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
            let kind = s(r, "/kind").to_lowercase();
            let group_kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{group_kind}/{}", s(r, "/name"))
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(o),
        json!(controller),
        json!(int(o, "/revision")),
        age(o, now),
    ]
}

// ---------------------------------------------------------------------------
// Nodes, Services and networking.

fn node_status(o: &Value) -> String {
    let ready = arr(o, "/status/conditions")
        .iter()
        .rfind(|c| s(c, "/type") == "Ready");
    let mut status = match ready {
        Some(c) if s(c, "/status") == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Roles from `node-role.kubernetes.io/<role>` keys and the older
/// `kubernetes.io/role=<role>` label, sorted and de-duplicated.
fn node_roles(o: &Value) -> String {
    let mut roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|r| !r.is_empty()),
            None => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    or_none(&roles.join(","))
}

fn node_address(o: &Value, ty: &str) -> String {
    arr(o, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == ty)
        .map_or_else(|| "<none>".into(), |a| s(a, "/address").into())
}

fn or_unknown(v: &str) -> Value {
    json!(if v.is_empty() { "<unknown>" } else { v })
}

fn node_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(node_status(o)),
        json!(node_roles(o)),
        age(o, now),
        st(o, "/status/nodeInfo/kubeletVersion"),
        json!(node_address(o, "InternalIP")),
        json!(node_address(o, "ExternalIP")),
        or_unknown(s(o, "/status/nodeInfo/osImage")),
        or_unknown(s(o, "/status/nodeInfo/kernelVersion")),
        or_unknown(s(o, "/status/nodeInfo/containerRuntimeVersion")),
        or_unknown(s(o, "/status/nodeInfo/architecture")),
    ]
}

/// Load balancer ingress points: IPs, else hostnames, sorted and unique.
fn load_balancer_addresses(o: &Value) -> String {
    let mut addrs: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match s(i, "/ip") {
            "" => s(i, "/hostname"),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.join(",")
}

fn service_external_ip(o: &Value, ty: &str) -> String {
    let external: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(o);
            let mut all: Vec<&str> = lb.split(',').filter(|a| !a.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(o, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match s(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int(p, "/nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int(p, "/port")),
                _ => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

fn service_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Kubernetes defaults an unset type to ClusterIP.
    let ty = match s(o, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = [s(o, "/spec/clusterIPs/0"), s(o, "/spec/clusterIP")]
        .into_iter()
        .find(|ip| !ip.is_empty())
        .unwrap_or("");
    vec![
        name(o),
        json!(ty),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(o, ty)),
        json!(service_ports(o)),
        age(o, now),
        json!(format_labels(o.pointer("/spec/selector"))),
    ]
}

/// `a,b,c + N more...`, at most three shown.
fn list_with_more(list: &[String], count: usize) -> String {
    let shown = list.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if count > 3 {
        format!("{shown} + {} more...", count - 3)
    } else {
        shown
    }
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Endpoints as `ip:port` pairs, three at most, or `<none>`.
fn format_endpoints(o: &Value) -> String {
    let subsets = arr(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    for ss in subsets {
        let ips = arr(ss, "/addresses").iter().map(|a| s(a, "/ip"));
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            list.extend(ips.map(str::to_string));
            continue;
        }
        for port in ports {
            let p = int(port, "/port");
            list.extend(ips.clone().map(|ip| host_port(ip, p)));
        }
    }
    list_with_more(&list, list.len())
}

fn unset_if_empty(s: String) -> String {
    if s.is_empty() {
        "<unset>".into()
    } else {
        s
    }
}

fn endpoint_slice_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports: Vec<String> = arr(o, "/ports")
        .iter()
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".into(),
        })
        .collect();
    let addrs: Vec<String> = arr(o, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses").iter().filter_map(Value::as_str))
        .map(str::to_string)
        .collect();
    vec![
        name(o),
        st(o, "/addressType"),
        json!(unset_if_empty(list_with_more(&ports, ports.len()))),
        json!(unset_if_empty(list_with_more(&addrs, addrs.len()))),
        age(o, now),
    ]
}

fn ingress_hosts(o: &Value) -> String {
    let rules = arr(o, "/spec/rules");
    let hosts: Vec<String> = rules
        .iter()
        .take(3)
        .map(|r| s(r, "/host"))
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    if hosts.is_empty() {
        return "*".into();
    }
    if rules.len() > 3 {
        format!("{} + {} more...", hosts.join(","), rules.len() - 3)
    } else {
        hosts.join(",")
    }
}

fn ingress_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports = if arr(o, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(o),
        json!(or_none(s(o, "/spec/ingressClassName"))),
        json!(ingress_hosts(o)),
        json!(load_balancer_addresses(o)),
        json!(ports),
        age(o, now),
    ]
}

fn ingress_class_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match o.pointer("/spec/parameters").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let kind = match p["apiGroup"].as_str() {
                Some(g) => format!("{}.{g}", s(p, "/kind")),
                None => s(p, "/kind").to_string(),
            };
            format!("{kind}/{}", s(p, "/name"))
        }
    };
    vec![
        name(o),
        st(o, "/spec/controller"),
        json!(parameters),
        age(o, now),
    ]
}

fn role_binding_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let subjects = arr(o, "/subjects");
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s_| s(s_, "/kind") == kind)
            .map(|s_| match kind {
                "ServiceAccount" => format!("{}/{}", s(s_, "/namespace"), s(s_, "/name")),
                _ => s(s_, "/name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            s(o, "/roleRef/kind"),
            s(o, "/roleRef/name")
        )),
        age(o, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

// ---------------------------------------------------------------------------
// Events, in both the core/v1 and the events.k8s.io/v1 shape.

/// A field of a core/v1 Event, or its events.k8s.io/v1 name.
fn ev<'a>(o: &'a Value, core: &str, events: &str) -> Option<&'a Value> {
    o.pointer(core)
        .filter(|v| !v.is_null())
        .or_else(|| o.pointer(events).filter(|v| !v.is_null()))
}

fn ev_str<'a>(o: &'a Value, core: &str, events: &str) -> &'a str {
    ev(o, core, events).and_then(Value::as_str).unwrap_or("")
}

fn event_source(o: &Value) -> String {
    let component = [
        ev_str(o, "/source/component", "/deprecatedSource/component"),
        ev_str(o, "/reportingComponent", "/reportingController"),
    ]
    .into_iter()
    .find(|c| !c.is_empty())
    .unwrap_or("");
    let instance = [
        ev_str(o, "/source/host", "/deprecatedSource/host"),
        s(o, "/reportingInstance"),
    ]
    .into_iter()
    .find(|c| !c.is_empty())
    .unwrap_or("");
    if instance.is_empty() {
        component.into()
    } else {
        format!("{component}, {instance}")
    }
}

fn event_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first = match ev(o, "/firstTimestamp", "/deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(o.pointer("/eventTime"), now),
    };
    let mut last = match ev(o, "/lastTimestamp", "/deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = ev(o, "/count", "/deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = o.get("series").filter(|v| v.is_object()) {
        last = since(series.get("lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        // Singleton events carry no count in the newer API.
        count = 1;
    }
    let kind = ev_str(o, "/involvedObject/kind", "/regarding/kind").to_lowercase();
    let target = match ev_str(o, "/involvedObject/name", "/regarding/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    vec![
        json!(last),
        st(o, "/type"),
        st(o, "/reason"),
        json!(target),
        json!(ev_str(
            o,
            "/involvedObject/fieldPath",
            "/regarding/fieldPath"
        )),
        json!(event_source(o)),
        json!(ev_str(o, "/message", "/note").trim()),
        json!(first),
        json!(count),
        name(o),
    ]
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A timestamp `secs` seconds before [`now`].
    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn names(group: &str, kind: &str, priority: i32) -> Vec<&'static str> {
        columns(group, kind)
            .into_iter()
            .filter(|c| c.priority == priority)
            .map(|c| c.name)
            .collect()
    }

    fn cell(group: &str, kind: &str, obj: &Value, column: &str) -> Value {
        let i = columns(group, kind)
            .iter()
            .position(|c| c.name == column)
            .unwrap();
        cells(group, kind, obj, now())[i].clone()
    }

    fn status(pod: Value) -> String {
        cell("", "Pod", &pod, "Status")
            .as_str()
            .unwrap()
            .to_string()
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": ago(3600 * 5 + 60 * 3)})
    }

    #[test]
    fn human_duration_boundaries_match_kubernetes() {
        let d = |s: i64| human_duration(Duration::seconds(s));
        assert_eq!(d(-5), "<invalid>");
        assert_eq!(d(-1), "0s");
        assert_eq!(d(0), "0s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(5 * 60 + 3), "5m3s");
        assert_eq!(d(10 * 60 - 1), "9m59s");
        assert_eq!(d(10 * 60), "10m");
        assert_eq!(d(3 * 3600 - 1), "179m");
        assert_eq!(d(3 * 3600), "3h");
        assert_eq!(d(3 * 3600 + 30 * 60), "3h30m");
        assert_eq!(d(8 * 3600), "8h");
        assert_eq!(d(47 * 3600 + 59 * 60), "47h");
        assert_eq!(d(48 * 3600), "2d");
        assert_eq!(d(51 * 3600), "2d3h");
        assert_eq!(d(8 * 86400), "8d");
        assert_eq!(d(729 * 86400), "729d");
        assert_eq!(d(730 * 86400), "2y");
        assert_eq!(d(800 * 86400), "2y70d");
        assert_eq!(d(8 * 365 * 86400), "8y");
        assert_eq!(d(9 * 365 * 86400 + 5 * 86400), "9y");
    }

    #[test]
    fn pod_columns_match_kubectl() {
        assert_eq!(
            names("", "Pod", 0),
            ["Name", "Ready", "Status", "Restarts", "Age"]
        );
        assert_eq!(
            names("", "Pod", 1),
            ["IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(columns("", "Pod")[0].format, "name");
    }

    #[test]
    fn running_pod_row() {
        let pod = json!({
            "metadata": meta("web-1"),
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                     "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}
                ]}
        });
        assert_eq!(
            cells("", "Pod", &pod, now()),
            [
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("5h3m"),
                json!("10.0.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("0/1")
            ]
        );
    }

    #[test]
    fn pending_pod_without_node_or_ip() {
        let pod = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
                         "status": {"phase": "Pending"}});
        let c = cells("", "Pod", &pod, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "Pending");
        assert_eq!(c[3], "0");
        assert_eq!(
            &c[5..],
            [
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_status_from_waiting_and_terminated_reasons() {
        let with = |state: Value| {
            json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Running", "containerStatuses": [{"name": "a", "state": state}]}})
        };
        assert_eq!(
            status(with(json!({"waiting": {"reason": "ContainerCreating"}}))),
            "ContainerCreating"
        );
        assert_eq!(
            status(with(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(with(
                json!({"terminated": {"reason": "Error", "exitCode": 1}})
            )),
            "Error"
        );
        assert_eq!(
            status(with(
                json!({"terminated": {"reason": "Completed", "exitCode": 0}})
            )),
            "Completed"
        );
        assert_eq!(
            status(with(json!({"terminated": {"exitCode": 0, "signal": 9}}))),
            "Signal:9"
        );
        assert_eq!(
            status(with(json!({"terminated": {"exitCode": 137}}))),
            "ExitCode:137"
        );
        // A waiting container with no reason leaves the phase.
        assert_eq!(status(with(json!({"waiting": {}}))), "Running");
    }

    #[test]
    fn pod_status_completed_but_one_container_running() {
        // Kubernetes: "Completed" turns back to Running (or NotReady) while a
        // ready container is still running.
        let pod = |ready_cond: &str| {
            json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                   "status": {"phase": "Running",
                     "conditions": [{"type": "Ready", "status": ready_cond}],
                     "containerStatuses": [
                       {"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                       {"name": "b", "ready": true, "state": {"running": {}}}]}})
        };
        assert_eq!(status(pod("True")), "Running");
        assert_eq!(status(pod("False")), "NotReady");
    }

    #[test]
    fn pod_status_while_initializing() {
        let pod = |init_state: Value| {
            json!({"metadata": meta("p"),
                   "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
                   "status": {"phase": "Pending",
                     "initContainerStatuses": [
                        {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "i2", "restartCount": 3, "state": init_state}],
                     "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        assert_eq!(status(pod(json!({"running": {}}))), "Init:1/2");
        assert_eq!(
            status(pod(json!({"waiting": {"reason": "PodInitializing"}}))),
            "Init:1/2"
        );
        assert_eq!(
            status(pod(json!({"waiting": {"reason": "ImagePullBackOff"}}))),
            "Init:ImagePullBackOff"
        );
        assert_eq!(
            status(pod(json!({"terminated": {"exitCode": 2}}))),
            "Init:ExitCode:2"
        );
        assert_eq!(
            status(pod(json!({"terminated": {"exitCode": 2, "signal": 15}}))),
            "Init:Signal:15"
        );
        assert_eq!(
            status(pod(
                json!({"terminated": {"exitCode": 1, "reason": "Error"}})
            )),
            "Init:Error"
        );
        // Init container restarts count while initializing.
        assert_eq!(
            cell("", "Pod", &pod(json!({"running": {}})), "Restarts"),
            "3"
        );
    }

    #[test]
    fn pod_with_single_init_container_reads_init_0_of_1() {
        let pod = json!({"metadata": meta("p"),
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending",
              "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(status(pod), "Init:0/1");
    }

    #[test]
    fn sidecar_init_containers_count_toward_ready_and_total() {
        let pod = json!({"metadata": meta("p"),
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
              "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                                         "state": {"running": {}}}],
              "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}});
        let c = cells("", "Pod", &pod, now());
        assert_eq!(c[1], "2/2");
        assert_eq!(c[2], "Running");
        // A restart without a recorded finish time prints the bare count.
        assert_eq!(c[3], "1");
    }

    #[test]
    fn pod_deletion_states() {
        let mut pod = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
                             "status": {"phase": "Running"}});
        pod["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status(pod.clone()), "Terminating");
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(status(pod.clone()), "Unknown");
        // A finished pod being deleted keeps its final state.
        let done = json!({"metadata": {"name": "d", "deletionTimestamp": ago(1)},
                          "spec": {"containers": [{"name": "a"}]},
                          "status": {"phase": "Succeeded", "containerStatuses": [
                              {"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
        assert_eq!(status(done), "Completed");
    }

    #[test]
    fn scheduling_gated_and_status_reason() {
        let gated = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
        assert_eq!(status(gated), "SchedulingGated");
        let evicted = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(status(evicted), "Evicted");
    }

    #[test]
    fn deployment_row() {
        assert_eq!(
            names("apps", "Deployment", 0),
            ["Name", "Ready", "Up-to-date", "Available", "Age"]
        );
        assert_eq!(
            names("apps", "Deployment", 1),
            ["Containers", "Images", "Selector"]
        );
        let d = json!({"metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("apps", "Deployment", &d, now()),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5h3m"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web")
            ]
        );
        // A freshly created deployment has no status yet.
        let fresh = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}});
        assert_eq!(cell("apps", "Deployment", &fresh, "Ready"), "0/1");
        assert_eq!(cell("apps", "Deployment", &fresh, "Age"), "<unknown>");
    }

    #[test]
    fn replica_set_daemon_set_and_stateful_set_rows() {
        assert_eq!(
            names("apps", "ReplicaSet", 0),
            ["Name", "Desired", "Current", "Ready", "Age"]
        );
        let rs = json!({"metadata": meta("web-5d8f"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        assert_eq!(
            cells("apps", "ReplicaSet", &rs, now()),
            [
                json!("web-5d8f"),
                json!(3),
                json!(3),
                json!(1),
                json!("5h3m"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web,pod-template-hash=5d8f")
            ]
        );

        assert_eq!(
            names("apps", "DaemonSet", 0),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age"
            ]
        );
        let ds = json!({"metadata": meta("agent"),
            "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": []}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let c = cells("apps", "DaemonSet", &ds, now());
        assert_eq!(
            &c[1..7],
            [
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(c[10], "app");

        assert_eq!(names("apps", "StatefulSet", 0), ["Name", "Ready", "Age"]);
        let sts = json!({"metadata": meta("db"), "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(cell("apps", "StatefulSet", &sts, "Ready"), "3/3");
    }

    #[test]
    fn job_rows() {
        assert_eq!(
            names("batch", "Job", 0),
            ["Name", "Status", "Completions", "Duration", "Age"]
        );
        let done = json!({"metadata": meta("pi"),
            "spec": {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(540),
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells("batch", "Job", &done, now()),
            [
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("60s"),
                json!("5h3m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=abc")
            ]
        );
        let running = json!({"metadata": meta("work"), "spec": {"parallelism": 3},
                             "status": {"startTime": ago(150), "active": 3}});
        assert_eq!(cell("batch", "Job", &running, "Status"), "Running");
        assert_eq!(cell("batch", "Job", &running, "Completions"), "0/1 of 3");
        assert_eq!(cell("batch", "Job", &running, "Duration"), "2m30s");
        let new = json!({"metadata": meta("new"), "spec": {}});
        assert_eq!(cell("batch", "Job", &new, "Duration"), "");
        assert_eq!(cell("batch", "Job", &new, "Completions"), "0/1");
        let failed = json!({"metadata": meta("f"), "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(cell("batch", "Job", &failed, "Status"), "Failed");
        let suspended = json!({"metadata": meta("s"), "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(cell("batch", "Job", &suspended, "Status"), "Suspended");
    }

    #[test]
    fn cron_job_row() {
        let cj = json!({"metadata": meta("nightly"), "spec": {"schedule": "0 3 * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}});
        let c = cells("batch", "CronJob", &cj, now());
        assert_eq!(
            &c[..6],
            [
                json!("nightly"),
                json!("0 3 * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>")
            ]
        );
        assert_eq!(c[9], "<none>");
    }

    #[test]
    fn node_rows() {
        assert_eq!(
            names("", "Node", 0),
            ["Name", "Status", "Roles", "Age", "Version"]
        );
        assert_eq!(
            names("", "Node", 1),
            [
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
                "Arch"
            ]
        );
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": ago(3 * 86400 + 7200),
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-skiff", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                             "containerRuntimeVersion": "skiff://0.1.0", "architecture": "arm64"}}});
        assert_eq!(
            cells("", "Node", &node, now()),
            [
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("3d2h"),
                json!("v1.33.0-skiff"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("skiff://0.1.0"),
                json!("arm64")
            ]
        );
        let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = cells("", "Node", &bare, now());
        assert_eq!(&c[1..3], [json!("NotReady"), json!("<none>")]);
        assert_eq!(
            &c[7..],
            [
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        assert_eq!(
            cell("", "Node", &json!({"metadata": {"name": "n3"}}), "Status"),
            "Unknown"
        );
    }

    #[test]
    fn service_rows() {
        assert_eq!(
            names("", "Service", 0),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age"
            ]
        );
        let svc = json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"], "selector": {"app": "web", "tier": "fe"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("", "Service", &svc, now()),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("5h3m"),
                json!("app=web,tier=fe")
            ]
        );
        let lb = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": [{"port": 443}]}});
        assert_eq!(cell("", "Service", &lb, "External-IP"), "<pending>");
        assert_eq!(cell("", "Service", &lb, "Port(s)"), "443/TCP");
        let mut lb_ready = lb.clone();
        lb_ready["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}});
        assert_eq!(
            cell("", "Service", &lb_ready, "External-IP"),
            "203.0.113.9,lb.example.com"
        );
        let headless =
            json!({"metadata": meta("db"), "spec": {"type": "ClusterIP", "clusterIP": "None"}});
        assert_eq!(cell("", "Service", &headless, "Cluster-IP"), "None");
        assert_eq!(cell("", "Service", &headless, "Port(s)"), "<none>");
        assert_eq!(cell("", "Service", &headless, "Selector"), "<none>");
        let ext = json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(cell("", "Service", &ext, "Cluster-IP"), "<none>");
        assert_eq!(cell("", "Service", &ext, "External-IP"), "example.com");
    }

    #[test]
    fn event_rows_in_both_apis() {
        assert_eq!(
            names("", "Event", 0),
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
        let ev = json!({"metadata": {"name": "web-1.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled", "type": "Normal", "message": "Container image pulled\n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4});
        assert_eq!(
            cells("", "Event", &ev, now()),
            [
                json!("30s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{nginx}"),
                json!("kubelet, n1"),
                json!("Container image pulled"),
                json!("10m"),
                json!(4),
                json!("web-1.17a")
            ]
        );
        let new_api = json!({"metadata": {"name": "e2"}, "eventTime": "2024-05-01T11:59:00.000000Z",
            "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-skiff",
            "regarding": {"kind": "Pod", "name": "web-2"}, "reason": "Scheduled", "type": "Normal",
            "note": "Successfully assigned default/web-2 to n1"});
        assert_eq!(
            cells("events.k8s.io", "Event", &new_api, now()),
            [
                json!("60s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web-2"),
                json!(""),
                json!("default-scheduler, default-scheduler-skiff"),
                json!("Successfully assigned default/web-2 to n1"),
                json!("60s"),
                json!(1),
                json!("e2")
            ]
        );
        let series = json!({"metadata": {"name": "e3"}, "eventTime": ago(3600), "involvedObject": {"kind": "Node"},
            "series": {"count": 7, "lastObservedTime": ago(10)}});
        let c = cells("", "Event", &series, now());
        assert_eq!(
            (c[0].clone(), c[3].clone(), c[8].clone()),
            (json!("10s"), json!("node"), json!(7))
        );
    }

    #[test]
    fn config_and_identity_rows() {
        let cm = json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            cells("", "ConfigMap", &cm, now()),
            [json!("cfg"), json!(3), json!("5h3m")]
        );
        let secret = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("", "Secret", &secret, now()),
            [
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("5h3m")
            ]
        );
        let sa = json!({"metadata": meta("default")});
        assert_eq!(
            cells("", "ServiceAccount", &sa, now()),
            [json!("default"), json!(0), json!("5h3m")]
        );
        let ns = json!({"metadata": meta("kube-system"), "status": {"phase": "Active"}});
        assert_eq!(
            cells("", "Namespace", &ns, now()),
            [json!("kube-system"), json!("Active"), json!("5h3m")]
        );
        let rc = json!({"metadata": meta("wasmtime"), "handler": "wasmtime"});
        assert_eq!(
            cells("node.k8s.io", "RuntimeClass", &rc, now()),
            [json!("wasmtime"), json!("wasmtime"), json!("5h3m")]
        );
        let lease = json!({"metadata": meta("n1"), "spec": {"holderIdentity": "n1"}});
        assert_eq!(cell("coordination.k8s.io", "Lease", &lease, "Holder"), "n1");
        assert_eq!(
            cell(
                "coordination.k8s.io",
                "Lease",
                &json!({"metadata": meta("x"), "spec": {}}),
                "Holder"
            ),
            ""
        );
    }

    #[test]
    fn endpoints_and_endpoint_slices() {
        let ep = json!({"metadata": meta("web"), "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            cell("", "Endpoints", &ep, "Endpoints"),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        assert_eq!(
            cell(
                "",
                "Endpoints",
                &json!({"metadata": meta("e")}),
                "Endpoints"
            ),
            "<none>"
        );
        let headless =
            json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
        assert_eq!(cell("", "Endpoints", &headless, "Endpoints"), "fd00::1");
        let v6 = json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cell("", "Endpoints", &v6, "Endpoints"), "[fd00::1]:80");

        assert_eq!(
            names("discovery.k8s.io", "EndpointSlice", 0),
            ["Name", "AddressType", "Ports", "Endpoints", "Age"]
        );
        let slice = json!({"metadata": meta("web-abc"), "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", &slice, now()),
            [
                json!("web-abc"),
                json!("IPv4"),
                json!("80,metrics,*"),
                json!("10.0.0.1,10.0.0.2"),
                json!("5h3m")
            ]
        );
        let empty = json!({"metadata": meta("e"), "addressType": "IPv4"});
        assert_eq!(
            cell("discovery.k8s.io", "EndpointSlice", &empty, "Endpoints"),
            "<unset>"
        );
    }

    #[test]
    fn ingress_rows() {
        let ing = json!({"metadata": meta("web"), "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}});
        assert_eq!(
            cells("networking.k8s.io", "Ingress", &ing, now()),
            [
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com"),
                json!("192.168.1.10"),
                json!("80, 443"),
                json!("5h3m")
            ]
        );
        let bare = json!({"metadata": meta("any"), "spec": {"rules": [{}]}});
        let c = cells("networking.k8s.io", "Ingress", &bare, now());
        assert_eq!(
            &c[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
        let class = json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            cells("networking.k8s.io", "IngressClass", &class, now()),
            [
                json!("nginx"),
                json!("k8s.io/ingress-nginx"),
                json!("IngressParameters.k8s.example.com/external-lb"),
                json!("5h3m")
            ]
        );
    }

    #[test]
    fn rbac_rows() {
        assert_eq!(
            names("rbac.authorization.k8s.io", "ClusterRole", 0),
            ["Name", "Created At"]
        );
        assert_eq!(
            columns("rbac.authorization.k8s.io", "Role")[1].type_,
            "date"
        );
        let role =
            json!({"metadata": {"name": "view", "creationTimestamp": "2024-04-01T08:30:00Z"}});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "ClusterRole", &role, now()),
            [json!("view"), json!("2024-04-01T08:30:00Z")]
        );
        let rb = json!({"metadata": meta("admins"), "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}, {"kind": "User", "name": "bob"}]});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "RoleBinding", &rb, now()),
            [
                json!("admins"),
                json!("ClusterRole/admin"),
                json!("5h3m"),
                json!("alice, bob"),
                json!("ops"),
                json!("build/ci")
            ]
        );
    }

    #[test]
    fn controller_revision_and_priority_class_rows() {
        let cr = json!({"metadata": {"name": "agent-7d9", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]}, "revision": 2});
        assert_eq!(
            cell("apps", "ControllerRevision", &cr, "Controller"),
            "daemonset.apps/agent"
        );
        assert_eq!(cell("apps", "ControllerRevision", &cr, "Revision"), 2);
        let pc = json!({"metadata": meta("system-node-critical"), "value": 2000001000, "globalDefault": false,
                        "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            cells("scheduling.k8s.io", "PriorityClass", &pc, now()),
            [
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("5h3m"),
                json!("PreemptLowerPriority")
            ]
        );
    }

    #[test]
    fn other_kinds_show_name_and_age() {
        assert_eq!(names("example.com", "Widget", 0), ["Name", "Age"]);
        let w = json!({"metadata": meta("w1")});
        assert_eq!(
            cells("example.com", "Widget", &w, now()),
            [json!("w1"), json!("5h3m")]
        );
    }

    #[test]
    fn table_shape_and_include_object() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "done", "resourceVersion": "7", "creationTimestamp": ago(60)},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"}});
        let list_meta = json!({"resourceVersion": "42", "continue": "tok"});
        let t = table(
            "",
            "Pod",
            std::slice::from_ref(&pod),
            list_meta.clone(),
            "Metadata",
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], list_meta);
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": "Name must be unique within a namespace.", "priority": 0})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        let row = &t["rows"][0];
        assert_eq!(row["cells"].as_array().unwrap().len(), 9);
        assert_eq!(
            row["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                        "metadata": pod["metadata"]})
        );
        assert_eq!(row["conditions"][0]["reason"], "Succeeded");

        let full = table(
            "",
            "Pod",
            std::slice::from_ref(&pod),
            json!({}),
            "Object",
            now(),
        );
        assert_eq!(full["rows"][0]["object"], pod);
        let none = table(
            "",
            "Pod",
            std::slice::from_ref(&pod),
            Value::Null,
            "None",
            now(),
        );
        assert_eq!(none["rows"][0]["object"], Value::Null);
        assert_eq!(none["metadata"], json!({}));
        let empty = table(
            "apps",
            "Deployment",
            &[],
            json!({"resourceVersion": "1"}),
            "Metadata",
            now(),
        );
        assert_eq!(empty["rows"], json!([]));
    }
}

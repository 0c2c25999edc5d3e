//! A container's argv, environment, volumes and limits resolved from the pod
//! spec, with Kubernetes' semantics.
//!
//! The ConfigMaps and Secrets a pod refers to are fetched once
//! ([`fetch_sources`]); everything else here is pure so that it can be
//! tested against how the kubelet behaves: `command` replaces the image's
//! entrypoint and `args` its cmd, `$(VAR)` references expand to earlier
//! variables (`$$` escapes), `env` overrides `envFrom`, configMap, secret
//! and downwardAPI volumes are read-only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount, Volume};
use kube::api::Api;

use crate::cri::{Limits, Mount};

/// Why a container's configuration could not be resolved. The pod shows it
/// under `CreateContainerConfigError`, with the kubelet's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("volume {0} has a type skiff does not support yet (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected)")]
    UnsupportedVolume(String),
    #[error("unable to find volume \"{0}\" for volumeMount")]
    MissingVolume(String),
    #[error("the API server could not be asked for {what}: {message}")]
    Unreachable { what: String, message: String },
    #[error("no ServiceAccount token was issued for projected path {0:?}")]
    TokenMissing(String),
    #[error("writing volume {volume}: {message}")]
    Io { volume: String, message: String },
}

/// The ConfigMaps and Secrets of the pod's namespace it refers to (a name
/// that does not exist is absent), and the ServiceAccount tokens its
/// projected volumes ask for.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub config_maps: HashMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    pub tokens: HashMap<TokenKey, String>,
}

/// What a projected `serviceAccountToken` source asks for: an audience
/// (empty: the API server's) and a lifetime in seconds.
pub type TokenKey = (String, i64);

/// The token requests of the pod's projected volumes.
pub fn token_requests(pod: &Pod) -> Vec<TokenKey> {
    let mut out: Vec<TokenKey> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(token_key)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn token_key(t: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection) -> TokenKey {
    (
        t.audience.clone().unwrap_or_default(),
        t.expiration_seconds.unwrap_or(3600),
    )
}

/// Names of every ConfigMap and Secret the pod refers to (env, envFrom,
/// volumes, projected volumes, image pull secrets).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                cms.push(r.name.clone());
            }
            if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                secrets.push(r.name.clone());
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &p.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        secrets.push(s.name.clone());
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Fetch what the pod refers to, all requests at once (a pod's start
/// waits for the slowest, not their sum). Missing objects are left out
/// (whether that is an error depends on `optional` where they are used).
pub async fn fetch_sources(client: &kube::Client, pod: &Pod) -> Result<Sources, EnvError> {
    use futures::future::try_join_all;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let (cms, secrets) = referenced(pod);
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps = try_join_all(cms.into_iter().map(|name| {
        let api = &cm_api;
        async move {
            let cm = api
                .get_opt(&name)
                .await
                .map_err(unreachable(format!("configmap \"{name}\"")))?;
            Ok::<_, EnvError>(cm.map(|cm| {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, v.0);
                }
                (name, data)
            }))
        }
    }));
    let secrets = try_join_all(secrets.into_iter().map(|name| {
        let api = &secret_api;
        async move {
            let secret = api
                .get_opt(&name)
                .await
                .map_err(unreachable(format!("secret \"{name}\"")))?;
            Ok::<_, EnvError>(secret.map(|s| {
                let mut data: BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    data.insert(k, v.into_bytes());
                }
                (name, data)
            }))
        }
    }));
    let tokens = try_join_all(token_requests(pod).into_iter().map(|key| async move {
        let token = request_token(client, pod, &key).await?;
        Ok::<_, EnvError>((key, token))
    }));
    let (config_maps, secrets, tokens) = futures::try_join!(config_maps, secrets, tokens)?;
    Ok(Sources {
        config_maps: config_maps.into_iter().flatten().collect(),
        secrets: secrets.into_iter().flatten().collect(),
        tokens: tokens.into_iter().collect(),
    })
}

/// A token of the pod's ServiceAccount bound to the pod, as `key` asks
/// (the node's TokenRequest; the API server checks the pod is on this node).
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    key: &TokenKey,
) -> Result<String, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let (audience, seconds) = key.clone();
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if audience.is_empty() {
                Vec::new()
            } else {
                vec![audience]
            },
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create_token_request(&account, &Default::default(), &request)
        .await
        .map_err(unreachable(format!(
            "a token for service account \"{account}\""
        )))?;
    Ok(issued.status.map(|s| s.token).unwrap_or_default())
}

/// How long a projected token is used before the node asks for another:
/// 80% of the lifetime the volume asks for, and at most a day, as the
/// kubelet does (a pod's 3607 s token is extended to a year by the API
/// server, but is still renewed after 48 minutes).
pub fn refresh_after(requested_seconds: i64) -> std::time::Duration {
    let seconds = u64::try_from(requested_seconds.max(600)).unwrap_or(600) * 8 / 10;
    std::time::Duration::from_secs(seconds.min(24 * 3600))
}

/// Renew the pod's projected tokens for as long as this future runs (the
/// pod's lifetime): each one [`refresh_after`] it was issued, retried
/// every 10 s while the API server cannot be reached.
pub async fn keep_tokens_fresh(client: kube::Client, pod: Pod, pod_dir: PathBuf) {
    use tokio::time::Instant;
    let mut due: Vec<(TokenKey, Instant)> = token_requests(&pod)
        .into_iter()
        .map(|k| {
            let at = Instant::now() + refresh_after(k.1);
            (k, at)
        })
        .collect();
    while let Some(next) = due.iter().map(|(_, at)| *at).min() {
        tokio::time::sleep_until(next).await;
        for (key, at) in due.iter_mut().filter(|(_, at)| *at <= Instant::now()) {
            *at = match refresh_token(&client, &pod, &pod_dir, key).await {
                Ok(()) => Instant::now() + refresh_after(key.1),
                Err(e) => {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "renewing a projected ServiceAccount token");
                    Instant::now() + std::time::Duration::from_secs(10)
                }
            };
        }
    }
}

/// Ask for a new token for `key` and replace every projected file that
/// holds it (write, then rename, so a reader never sees half a token and
/// containers see the new file through their directory mounts).
pub async fn refresh_token(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
    key: &TokenKey,
) -> Result<(), EnvError> {
    let token = request_token(client, pod, key).await?;
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let sources = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
        for t in sources.filter_map(|s| s.service_account_token.as_ref()) {
            if token_key(t) != *key {
                continue;
            }
            let dir = pod_dir.join("volumes").join(&v.name);
            let io = |e: std::io::Error| EnvError::Io {
                volume: v.name.clone(),
                message: e.to_string(),
            };
            let staged = format!("{}.skiff-new", t.path);
            write_file(&dir, &staged, token.as_bytes()).map_err(io)?;
            std::fs::rename(dir.join(&staged), dir.join(&t.path)).map_err(io)?;
        }
    }
    Ok(())
}

fn unreachable(what: String) -> impl FnOnce(kube::Error) -> EnvError {
    move |e: kube::Error| EnvError::Unreachable {
        what,
        message: e.to_string(),
    }
}

/// The addresses the pod is reachable at, for `status.podIP`/`hostIP`.
#[derive(Debug, Clone, Default)]
pub struct PodAddresses {
    pub pod_ip: String,
    pub host_ip: String,
}

/// The value of a downward API `fieldPath`.
pub fn field_value(pod: &Pod, path: &str, addrs: &PodAddresses) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => addrs.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => addrs.host_ip.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels['") {
                m.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations['") {
                m.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(EnvError::FieldPath(path.to_string()));
            }
        }
    })
}

/// Labels or annotations as the downward API writes them: `k="v"` lines,
/// sorted, values quoted as Go's `%q` does.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expand `$(NAME)` references as Kubernetes does: defined names are
/// replaced, undefined ones stay as written, `$$` is a literal `$`.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn lookup(
    sources: &HashMap<String, BTreeMap<String, Vec<u8>>>,
    kind: &'static str,
    ns: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, EnvError> {
    let Some(data) = sources.get(name) else {
        if optional {
            return Ok(None);
        }
        return Err(match kind {
            "ConfigMap" => EnvError::ConfigMapNotFound(name.to_string()),
            _ => EnvError::SecretNotFound(name.to_string()),
        });
    };
    match data.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => Err(EnvError::KeyNotFound {
            key: key.to_string(),
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
    }
}

/// Whether `k` may be an environment variable name (Kubernetes' C
/// identifier-ish rule: no `=`, not empty, printable ASCII).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && k.bytes().all(|b| b.is_ascii_graphic())
}

fn push(env: &mut Vec<(String, String)>, k: String, v: String) {
    if let Some(slot) = env.iter_mut().find(|(n, _)| *n == k) {
        slot.1 = v;
    } else {
        env.push((k, v));
    }
}

/// The container's environment: `envFrom` first (later sources win), then
/// `env` in order, each value expanded against what came before it.
pub fn resolve_env(
    c: &Container,
    pod: &Pod,
    src: &Sources,
    addrs: &PodAddresses,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    // Set by the container runtime on Kubernetes; the container's own env
    // may override it.
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    push(&mut env, "HOSTNAME".into(), hostname);
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (data, optional, missing) = if let Some(r) = &f.config_map_ref {
            (
                src.config_maps.get(&r.name),
                r.optional.unwrap_or(false),
                EnvError::ConfigMapNotFound(r.name.clone()),
            )
        } else if let Some(r) = &f.secret_ref {
            (
                src.secrets.get(&r.name),
                r.optional.unwrap_or(false),
                EnvError::SecretNotFound(r.name.clone()),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    let name = format!("{prefix}{k}");
                    // The kubelet skips invalid names (and records an Event).
                    if valid_env_name(&name) {
                        push(&mut env, name, String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
            None if optional => {}
            None => return Err(missing),
        }
    }
    for e in c.env.iter().flatten() {
        let vars: HashMap<String, String> = env.iter().cloned().collect();
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &vars)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    lookup(
                        &src.config_maps,
                        "ConfigMap",
                        &ns,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    lookup(
                        &src.secrets,
                        "Secret",
                        &ns,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                    )?
                } else if let Some(r) = &from.field_ref {
                    Some(field_value(pod, &r.field_path, addrs)?)
                } else {
                    from.resource_field_ref
                        .as_ref()
                        .map(|r| resource_field(c, &r.resource))
                }
            }
        };
        if let Some(v) = value {
            push(&mut env, e.name.clone(), v);
        }
    }
    Ok(env)
}

/// `resourceFieldRef` without a divisor: the limit (or request) as written,
/// `0` when unset, as the kubelet reports an unset limit as node capacity
/// we do not have here.
fn resource_field(c: &Container, resource: &str) -> String {
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let r = c.resources.as_ref();
    let map = match kind {
        "requests" => r.and_then(|r| r.requests.as_ref()),
        _ => r.and_then(|r| r.limits.as_ref()),
    };
    map.and_then(|m| m.get(name))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "0".to_string())
}

/// argv for a Wasm container. A Wasm image has no entrypoint, so `command`
/// (if set) is argv, else `argv[0]` is the container's name; `args` follow.
/// `$(VAR)` references expand against the container's environment.
pub fn argv(c: &Container, env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let mut out: Vec<String> = match &c.command {
        Some(cmd) if !cmd.is_empty() => cmd.iter().map(|s| expand(s, &vars)).collect(),
        _ => vec![c.name.clone()],
    };
    out.extend(c.args.iter().flatten().map(|s| expand(s, &vars)));
    out
}

/// argv for a Linux container, merged with the image as Kubernetes merges
/// them: `command` replaces the image's Entrypoint (and drops its Cmd),
/// `args` replace its Cmd. `$(VAR)` references in command and args expand
/// against the container's environment; the image's strings are used as
/// they are.
pub fn linux_argv(
    c: &Container,
    entrypoint: &[String],
    cmd: &[String],
    env: &[(String, String)],
) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let exp = |v: &Vec<String>| v.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    let command = c.command.as_ref().filter(|v| !v.is_empty());
    let args = c.args.as_ref().filter(|v| !v.is_empty());
    match (command, args) {
        (Some(command), Some(args)) => [exp(command), exp(args)].concat(),
        (Some(command), None) => exp(command),
        (None, Some(args)) => [entrypoint.to_vec(), exp(args)].concat(),
        (None, None) => [entrypoint, cmd].concat(),
    }
}

/// The container's securityContext over the pod's, for the `linux`
/// handler.
pub fn security(pod: &Pod, c: &Container) -> crate::cri::Security {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let id = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
    let mut groups: Vec<u32> = psc
        .supplemental_groups
        .iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    if let Some(fs) = id(psc.fs_group) {
        if !groups.contains(&fs) {
            groups.push(fs);
        }
    }
    let caps = csc.capabilities.unwrap_or_default();
    crate::cri::Security {
        run_as_user: id(csc.run_as_user).or(id(psc.run_as_user)),
        run_as_group: id(csc.run_as_group).or(id(psc.run_as_group)),
        run_as_non_root: csc.run_as_non_root.or(psc.run_as_non_root) == Some(true),
        supplemental_groups: groups,
        read_only_root_filesystem: csc.read_only_root_filesystem == Some(true),
        privileged: csc.privileged == Some(true),
        capabilities_add: caps.add.unwrap_or_default(),
        capabilities_drop: caps.drop.unwrap_or_default(),
    }
}

/// `resources.requests.cpu` in millicores.
pub fn cpu_request(c: &Container) -> Option<u64> {
    let q = c
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("cpu")?
        .0
        .clone();
    apimachinery::validation::parse_quantity(&q)
        .ok()
        .and_then(|v| u64::try_from(v).ok())
}

/// `resources.limits` in the runtime's units.
pub fn limits(c: &Container) -> Limits {
    let get = |name: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .map(|q| q.0.clone())
    };
    Limits {
        memory_bytes: get("memory")
            .and_then(|q| apimachinery::validation::quantity::quantity_value(&q).ok())
            .and_then(|v| u64::try_from(v).ok()),
        cpu_millis: get("cpu")
            .and_then(|q| apimachinery::validation::parse_quantity(&q).ok())
            .and_then(|v| u64::try_from(v).ok()),
    }
}

/// A volume on the host, and whether Kubernetes always mounts it read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Materialize the pod's volumes under `pod_dir/volumes/<name>`: emptyDir
/// directories, configMap/secret/downwardAPI/projected files. hostPath
/// volumes are used where they are.
pub fn materialize_volumes(
    pod: &Pod,
    src: &Sources,
    addrs: &PodAddresses,
    pod_dir: &Path,
) -> Result<HashMap<String, HostVolume>, EnvError> {
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        out.insert(v.name.clone(), materialize(pod, v, src, addrs, pod_dir)?);
    }
    Ok(out)
}

fn materialize(
    pod: &Pod,
    v: &Volume,
    src: &Sources,
    addrs: &PodAddresses,
    pod_dir: &Path,
) -> Result<HostVolume, EnvError> {
    let dir = pod_dir.join("volumes").join(&v.name);
    let io = |e: std::io::Error| EnvError::Io {
        volume: v.name.clone(),
        message: e.to_string(),
    };
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
            std::fs::create_dir_all(&path).map_err(io)?;
        }
        return Ok(HostVolume {
            path,
            read_only: false,
        });
    }
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    if v.empty_dir.is_some() {
        return Ok(HostVolume {
            path: dir,
            read_only: false,
        });
    } else if let Some(c) = &v.config_map {
        files = keyed_files(
            &src.config_maps,
            "ConfigMap",
            &ns,
            &c.name,
            c.items.as_deref(),
            c.optional.unwrap_or(false),
        )?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        files = keyed_files(
            &src.secrets,
            "Secret",
            &ns,
            &name,
            s.items.as_deref(),
            s.optional.unwrap_or(false),
        )?;
    } else if let Some(d) = &v.downward_api {
        for item in d.items.iter().flatten() {
            if let Some(f) = &item.field_ref {
                files.push((
                    item.path.clone(),
                    field_value(pod, &f.field_path, addrs)?.into_bytes(),
                ));
            }
        }
    } else if let Some(p) = &v.projected {
        for s in p.sources.iter().flatten() {
            if let Some(c) = &s.config_map {
                files.extend(keyed_files(
                    &src.config_maps,
                    "ConfigMap",
                    &ns,
                    &c.name,
                    c.items.as_deref(),
                    c.optional.unwrap_or(false),
                )?);
            }
            if let Some(sec) = &s.secret {
                files.extend(keyed_files(
                    &src.secrets,
                    "Secret",
                    &ns,
                    &sec.name,
                    sec.items.as_deref(),
                    sec.optional.unwrap_or(false),
                )?);
            }
            for item in s.downward_api.iter().flat_map(|d| d.items.iter().flatten()) {
                if let Some(f) = &item.field_ref {
                    files.push((
                        item.path.clone(),
                        field_value(pod, &f.field_path, addrs)?.into_bytes(),
                    ));
                }
            }
            if let Some(t) = &s.service_account_token {
                let token = src
                    .tokens
                    .get(&token_key(t))
                    .ok_or_else(|| EnvError::TokenMissing(t.path.clone()))?;
                files.push((t.path.clone(), token.clone().into_bytes()));
            }
            // clusterTrustBundle sources are not served.
        }
    } else {
        return Err(EnvError::UnsupportedVolume(v.name.clone()));
    }
    for (rel, data) in files {
        write_file(&dir, &rel, &data).map_err(io)?;
    }
    Ok(HostVolume {
        path: dir,
        read_only: true,
    })
}

fn keyed_files(
    sources: &HashMap<String, BTreeMap<String, Vec<u8>>>,
    kind: &'static str,
    ns: &str,
    name: &str,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>, EnvError> {
    let Some(data) = sources.get(name) else {
        if optional {
            return Ok(Vec::new());
        }
        return Err(match kind {
            "ConfigMap" => EnvError::ConfigMapNotFound(name.to_string()),
            _ => EnvError::SecretNotFound(name.to_string()),
        });
    };
    match items {
        None => Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(items) => items
            .iter()
            .map(|i| match data.get(&i.key) {
                Some(v) => Ok((i.path.clone(), v.clone())),
                None => Err(EnvError::KeyNotFound {
                    key: i.key.clone(),
                    kind,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                }),
            })
            .filter(|r| !(optional && r.is_err()))
            .collect(),
    }
}

/// Write `rel` under `dir`, refusing paths that would leave it.
fn write_file(dir: &Path, rel: &str, data: &[u8]) -> std::io::Result<()> {
    let rel_path = Path::new(rel);
    let escapes = rel_path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes || rel.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("path {rel:?} must be relative and may not contain '..'"),
        ));
    }
    let path = dir.join(rel_path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, data)
}

/// The container's volumeMounts as runtime mounts; `subPath` selects a
/// directory inside the volume.
pub fn mounts(
    c: &Container,
    volumes: &HashMap<String, HostVolume>,
) -> Result<Vec<Mount>, EnvError> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let v = volumes
                .get(&m.name)
                .ok_or_else(|| EnvError::MissingVolume(m.name.clone()))?;
            let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => v.path.join(sub),
                None => v.path.clone(),
            };
            Ok(Mount {
                host_path,
                container_path: m.mount_path.clone(),
                read_only: v.read_only || m.read_only.unwrap_or(false),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "a \"b\""}},
            "spec": spec,
        }))
        .expect("pod")
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert(
            "cfg".into(),
            BTreeMap::from([
                ("GREETING".into(), b"hi".to_vec()),
                ("bad=name".into(), b"x".to_vec()),
            ]),
        );
        s.secrets.insert(
            "creds".into(),
            BTreeMap::from([("password".into(), b"s3cret".to_vec())]),
        );
        s
    }

    fn addrs() -> PodAddresses {
        PodAddresses {
            pod_ip: "10.1.0.7".into(),
            host_ip: "10.1.0.1".into(),
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = HashMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        // Undefined references stay as written; $$ escapes.
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5", &vars), "cost $5");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("$", &vars), "$");
    }

    #[test]
    fn env_from_then_env_with_value_from() {
        let p = pod(json!({"nodeName": "n1", "containers": []}));
        let c = container(json!({
            "name": "main",
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
            "env": [
                {"name": "CM_GREETING", "value": "overridden $(CM_GREETING)"},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            ],
        }));
        let env = resolve_env(&c, &p, &sources(), &addrs()).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_GREETING"), Some("overridden hi"));
        assert_eq!(get("PW"), Some("s3cret"));
        assert_eq!(get("POD"), Some("web-1"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("IP"), Some("10.1.0.7"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("OPT"), None, "optional missing refs are skipped");
        assert_eq!(
            get("CM_bad=name"),
            None,
            "invalid names from envFrom are skipped"
        );
        assert_eq!(env.iter().filter(|(n, _)| n == "CM_GREETING").count(), 1);
    }

    #[test]
    fn missing_refs_use_the_kubelets_messages() {
        let p = pod(json!({"containers": []}));
        let c = container(
            json!({"name": "m", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}),
        );
        let e = resolve_env(&c, &p, &sources(), &addrs()).expect_err("missing");
        assert_eq!(e.to_string(), "configmap \"gone\" not found");
        let c = container(
            json!({"name": "m", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]}),
        );
        let e = resolve_env(&c, &p, &sources(), &addrs()).expect_err("missing key");
        assert_eq!(e.to_string(), "couldn't find key user in Secret shop/creds");
        let c = container(
            json!({"name": "m", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}),
        );
        assert!(resolve_env(&c, &p, &sources(), &addrs()).is_err());
    }

    #[test]
    fn argv_command_replaces_entrypoint_args_follow() {
        let env = vec![("WHO".to_string(), "world".to_string())];
        let c = container(json!({"name": "hello", "args": ["--greet", "$(WHO)"]}));
        assert_eq!(
            argv(&c, &env),
            ["hello", "--greet", "world"],
            "argv[0] is the container name"
        );
        let c = container(json!({"name": "hello", "command": ["tool.wasm", "run"], "args": ["x"]}));
        assert_eq!(argv(&c, &env), ["tool.wasm", "run", "x"]);
    }

    #[test]
    fn limits_in_bytes_and_millicores() {
        let c = container(
            json!({"name": "m", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}),
        );
        assert_eq!(
            limits(&c),
            Limits {
                memory_bytes: Some(64 << 20),
                cpu_millis: Some(250)
            }
        );
        assert_eq!(limits(&container(json!({"name": "m"}))), Limits::default());
    }

    #[test]
    fn volumes_materialized_and_read_only_where_kubernetes_says() {
        let dir = tempfile::tempdir().expect("tmp");
        let host = dir.path().join("host");
        let p = pod(json!({"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "GREETING", "path": "sub/greeting.txt"}]}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "host", "hostPath": {"path": host.display().to_string(), "type": "DirectoryOrCreate"}},
        ]}));
        let vols = materialize_volumes(&p, &sources(), &addrs(), dir.path()).expect("volumes");
        let read = |v: &str, f: &str| std::fs::read_to_string(vols[v].path.join(f)).expect("file");
        assert_eq!(read("conf", "sub/greeting.txt"), "hi");
        assert_eq!(read("creds", "password"), "s3cret");
        assert_eq!(read("info", "labels"), "app=\"web\"\ntier=\"front\"");
        assert!(host.is_dir(), "DirectoryOrCreate creates");
        assert!(vols["conf"].read_only && vols["creds"].read_only);
        assert!(!vols["scratch"].read_only);
        let c = container(json!({"name": "m", "volumeMounts": [
            {"name": "scratch", "mountPath": "/tmp", "readOnly": true},
            {"name": "conf", "mountPath": "/etc/app"},
            {"name": "host", "mountPath": "/data", "subPath": "x"},
        ]}));
        let m = mounts(&c, &vols).expect("mounts");
        assert!(m[0].read_only, "readOnly honoured");
        assert!(m[1].read_only, "configMap volumes are always read-only");
        assert_eq!(m[2].host_path, host.join("x"));
        let bad =
            container(json!({"name": "m", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}));
        assert_eq!(
            mounts(&bad, &vols).expect_err("missing").to_string(),
            "unable to find volume \"nope\" for volumeMount"
        );
    }

    #[test]
    fn item_paths_cannot_escape_the_volume() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pod(json!({"containers": [], "volumes": [
            {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "GREETING", "path": "../../etc/passwd"}]}},
        ]}));
        assert!(materialize_volumes(&p, &sources(), &addrs(), dir.path()).is_err());
    }

    #[test]
    fn unsupported_volume_types_are_refused_clearly() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pod(
            json!({"containers": [], "volumes": [{"name": "nfs", "nfs": {"server": "s", "path": "/"}}]}),
        );
        let e = materialize_volumes(&p, &sources(), &addrs(), dir.path()).expect_err("nfs");
        assert!(e.to_string().starts_with("volume nfs has a type"), "{e}");
    }

    #[test]
    fn referenced_objects_are_collected_once() {
        let p = pod(
            json!({"imagePullSecrets": [{"name": "reg"}], "containers": [
            {"name": "a", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
        ], "volumes": [{"name": "s", "secret": {"secretName": "creds"}}]}),
        );
        let (cms, secrets) = referenced(&p);
        assert_eq!(cms, ["cfg"]);
        assert_eq!(secrets, ["creds", "reg"]);
    }

    #[test]
    fn linux_argv_merges_with_the_image_as_kubernetes_does() {
        let ep = vec!["/entry".to_string()];
        let cmd = vec!["default".to_string()];
        let env = vec![("X".to_string(), "1".to_string())];
        let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|v| v.into_iter().map(String::from).collect()),
            args: args.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        assert_eq!(
            linux_argv(&c(None, None), &ep, &cmd, &env),
            vec!["/entry", "default"]
        );
        assert_eq!(
            linux_argv(&c(None, Some(vec!["$(X)"])), &ep, &cmd, &env),
            vec!["/entry", "1"]
        );
        assert_eq!(
            linux_argv(&c(Some(vec!["sh"]), None), &ep, &cmd, &env),
            vec!["sh"]
        );
        assert_eq!(
            linux_argv(&c(Some(vec!["sh"]), Some(vec!["-c", "x"])), &ep, &cmd, &env),
            vec!["sh", "-c", "x"]
        );
    }
}

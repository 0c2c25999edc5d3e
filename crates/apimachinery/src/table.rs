//! PLACEHOLDER until the table module lands.
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_metadata: Value,
    include_object: &str,
    now: DateTime<Utc>,
) -> Value {
    let _ = (group, kind, include_object, now);
    json!({"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":list_metadata,"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"","priority":0}],"rows":objects.iter().map(|o| json!({"cells":[o["metadata"]["name"].clone()],"object":o})).collect::<Vec<_>>()})
}

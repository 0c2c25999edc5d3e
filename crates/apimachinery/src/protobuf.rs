//! Decoding the Kubernetes protobuf request bodies that kubectl 1.32 and
//! later send.
//!
//! From 1.32 on, kubectl sends `application/vnd.kubernetes.protobuf` instead
//! of JSON wherever it uses its typed client: every `create <kind>`
//! subcommand, `auth can-i`, `auth whoami`, `autoscale`, `certificate
//! approve|deny`, `debug node/...`, `debug --copy-to` and `drain` (the
//! `DeleteOptions` it sends when the server offers no eviction). Commands
//! that work on arbitrary objects (`apply`, `create -f`, `run`, `expose`,
//! `label`, `patch`, `scale`, `delete`) still send JSON. skiff stores and
//! answers JSON only, so the API server turns such a body into the JSON
//! object Kubernetes would have decoded and carries on as if JSON had been
//! sent.
//!
//! The body is the four magic bytes `k8s\0` followed by a `runtime.Unknown`
//! envelope whose `typeMeta` names the kind and whose `raw` bytes hold the
//! object's message (field numbers from Kubernetes' `generated.proto`).
//! Messages are described as data (a `Message` table per type), so a new
//! kind is a new table, not new decoding code. Field numbers and JSON names
//! in the tables were taken from the Kubernetes 1.33 `generated.proto` and
//! `types.go` files. Fields whose Go type is a pointer keep zero values
//! (`replicas: 0`, `immutable: false`); other zero values are dropped, as
//! Go's `omitempty` would drop them from Kubernetes' JSON.
//!
//! Unknown field numbers are skipped, as every protobuf reader does, so a
//! newer kubectl sending a field skiff does not know yet is not rejected.
//! Malformed input is an error, never a panic, and nesting is bounded.

use chrono::DateTime;
use serde_json::{Map, Value};

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Deepest message nesting accepted. The deepest served type (a container
/// port inside a CronJob) is about ten levels down, so this only stops
/// hostile input from exhausting the stack.
const MAX_DEPTH: usize = 32;

/// What went wrong decoding a protobuf body. The messages end up in the
/// `Status` of a 400 response, so they name the message being decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body: missing the \"k8s\\x00\" prefix of a Kubernetes protobuf message")]
    BadMagic,
    /// A length, varint or fixed-width value runs past the end of its message.
    #[error("protobuf body: unexpected end of message decoding {0}")]
    Truncated(&'static str),
    /// A varint longer than ten bytes.
    #[error("protobuf body: varint overflows 64 bits decoding {0}")]
    VarintOverflow(&'static str),
    /// Field number 0, or a wire type protobuf does not define (6, 7) or
    /// Kubernetes never uses (groups).
    #[error(
        "protobuf body: invalid field key (field {field}, wire type {wire}) decoding {message}"
    )]
    BadKey {
        message: &'static str,
        field: u64,
        wire: u8,
    },
    /// A known field arrived with a wire type that does not fit its type.
    #[error("protobuf body: field {field} of {message} has wire type {wire}, which does not fit its type")]
    WrongWireType {
        message: &'static str,
        field: &'static str,
        wire: u8,
    },
    /// A string field is not UTF-8.
    #[error("protobuf body: field {field} of {message} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    /// A `FieldsV1` value (server-side apply field set) is not JSON.
    #[error("protobuf body: field {field} of {message} is not valid JSON")]
    InvalidJson {
        message: &'static str,
        field: &'static str,
    },
    /// A timestamp outside the range RFC 3339 can express.
    #[error("protobuf body: field {field} of {message} is not a valid time")]
    InvalidTime {
        message: &'static str,
        field: &'static str,
    },
    /// Messages nested deeper than `MAX_DEPTH` (32) levels.
    #[error("protobuf body: messages nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The envelope names a kind skiff has no protobuf table for.
    #[error("protobuf body: kind {kind:?} in {api_version:?} is not supported; send JSON")]
    UnsupportedKind { api_version: String, kind: String },
    /// The envelope's raw bytes are compressed or otherwise encoded.
    #[error("protobuf body: content encoding {0:?} is not supported; send JSON")]
    UnsupportedEncoding(String),
}

/// Whether a `Content-Type` header names Kubernetes protobuf (parameters
/// such as `;charset` allowed, case-insensitive as media types are).
pub fn is_protobuf_content_type(ct: &str) -> bool {
    let media = ct.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/vnd.kubernetes.protobuf")
}

/// Decode a Kubernetes protobuf request body into the equivalent JSON object
/// (apiVersion and kind set from the envelope's typeMeta).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let envelope = Envelope::parse(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(
            envelope.content_encoding,
        ));
    }
    let message = root_message(&envelope.api_version, &envelope.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: envelope.api_version.clone(),
            kind: envelope.kind.clone(),
        }
    })?;
    let mut object = decode_message(envelope.raw, message, 0)?;
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` wrapper around every Kubernetes protobuf object.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    const NAME: &'static str = "runtime.Unknown";

    fn parse(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        let mut reader = Reader::new(buf, Self::NAME);
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (1, WIRE_LEN) => {
                    let meta = decode_message(reader.bytes()?, &RUNTIME_TYPE_META, 0)?;
                    envelope.api_version = string_of(&meta, "apiVersion");
                    envelope.kind = string_of(&meta, "kind");
                }
                (2, WIRE_LEN) => envelope.raw = reader.bytes()?,
                (3, WIRE_LEN) => {
                    envelope.content_encoding =
                        utf8(reader.bytes()?, Self::NAME, "contentEncoding")?
                }
                _ => reader.skip(wire)?,
            }
        }
        Ok(envelope)
    }
}

fn string_of(object: &Map<String, Value>, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The message table for a served kind, by the envelope's apiVersion and kind.
fn root_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    ROOTS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A cursor over one protobuf message; `message` names it in errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            message,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(ProtobufError::Truncated(self.message))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            // The tenth byte may only carry the 64th bit.
            if i == 9 && byte > 1 {
                return Err(ProtobufError::VarintOverflow(self.message));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow(self.message))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated(self.message))?;
        self.take(len)
    }

    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, ProtobufError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        let known_wire = matches!(wire, WIRE_VARINT | WIRE_FIXED64 | WIRE_LEN | WIRE_FIXED32);
        if field == 0 || field > u64::from(u32::MAX >> 3) || !known_wire {
            return Err(ProtobufError::BadKey {
                message: self.message,
                field,
                wire,
            });
        }
        Ok(Some((field, wire)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtobufError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => self.bytes().map(drop),
        }
    }
}

// ---------------------------------------------------------------------------
// Message tables and the table-driven decoder
// ---------------------------------------------------------------------------

/// A protobuf message type: its name (for errors) and its fields.
struct Message {
    name: &'static str,
    fields: &'static [Field],
}

/// One field of a [`Message`].
struct Field {
    number: u64,
    /// The JSON name, as Kubernetes' `types.go` tags it.
    json: &'static str,
    kind: Kind,
    shape: Shape,
}

/// How many values a field holds and whether a zero value is kept.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// A Go value field: dropped from the JSON when zero (`omitempty`).
    Val,
    /// A Go pointer field: present means set, even to zero.
    Ptr,
    /// `repeated`: a JSON array.
    List,
    /// `map<string, V>`: a JSON object.
    Map,
    /// An embedded Go struct (`json:",inline"`): its fields join the
    /// parent's JSON object.
    Inline,
}

/// The type of one value.
enum Kind {
    Str,
    /// `[]byte`, base64 in JSON as Go's encoding/json writes it.
    Bytes,
    Int32,
    Int64,
    Bool,
    Msg(&'static Message),
    /// `metav1.Time` {seconds, nanos}, an RFC 3339 string in JSON.
    Time,
    /// `intstr.IntOrString` {type, intVal, strVal}.
    IntOrString,
    /// `resource.Quantity` {string}.
    Quantity,
    /// Embedded JSON bytes (`FieldsV1`): the JSON value itself.
    RawJson,
    /// A Go `[]string` type that protobuf wraps in a message with a
    /// repeated field 1 (`ExtraValue`): a plain JSON array.
    StringList,
}

impl Field {
    const fn new(number: u64, json: &'static str, kind: Kind, shape: Shape) -> Self {
        Field {
            number,
            json,
            kind,
            shape,
        }
    }
    const fn val(number: u64, json: &'static str, kind: Kind) -> Self {
        Self::new(number, json, kind, Shape::Val)
    }
    const fn ptr(number: u64, json: &'static str, kind: Kind) -> Self {
        Self::new(number, json, kind, Shape::Ptr)
    }
    const fn list(number: u64, json: &'static str, kind: Kind) -> Self {
        Self::new(number, json, kind, Shape::List)
    }
    const fn map(number: u64, json: &'static str, kind: Kind) -> Self {
        Self::new(number, json, kind, Shape::Map)
    }
    const fn inline(number: u64, kind: Kind) -> Self {
        Self::new(number, "", kind, Shape::Inline)
    }
}

fn decode_message(
    buf: &[u8],
    message: &'static Message,
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let mut object = Map::new();
    let mut reader = Reader::new(buf, message.name);
    while let Some((number, wire)) = reader.key()? {
        match message.fields.iter().find(|f| f.number == number) {
            Some(field) => decode_field(&mut reader, wire, message, field, &mut object, depth)?,
            None => reader.skip(wire)?,
        }
    }
    Ok(object)
}

fn decode_field(
    reader: &mut Reader<'_>,
    wire: u8,
    message: &'static Message,
    field: &'static Field,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtobufError> {
    let ctx = Ctx {
        message,
        field,
        depth,
    };
    match field.shape {
        Shape::Val | Shape::Ptr => {
            let value = ctx.value(reader, wire, &field.kind)?;
            if field.shape == Shape::Ptr || !is_zero(&value) {
                object.insert(field.json.into(), value);
            } else {
                // A later zero overrides an earlier value, as in protobuf.
                object.remove(field.json);
            }
        }
        Shape::Inline => {
            if let Value::Object(fields) = ctx.value(reader, wire, &field.kind)? {
                object.extend(fields);
            }
        }
        Shape::List => {
            let values = ctx.repeated(reader, wire)?;
            let entry = object
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.extend(values);
            }
        }
        Shape::Map => {
            let (key, value) = ctx.map_entry(reader, wire)?;
            let entry = object
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = entry {
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

/// The message and field being decoded, for errors and depth.
struct Ctx {
    message: &'static Message,
    field: &'static Field,
    depth: usize,
}

impl Ctx {
    fn wrong_wire(&self, wire: u8) -> ProtobufError {
        ProtobufError::WrongWireType {
            message: self.message.name,
            field: self.field.json,
            wire,
        }
    }

    /// One value of `kind`, checking the wire type fits it.
    fn value(
        &self,
        reader: &mut Reader<'_>,
        wire: u8,
        kind: &Kind,
    ) -> Result<Value, ProtobufError> {
        let numeric = matches!(kind, Kind::Int32 | Kind::Int64 | Kind::Bool);
        let expected = if numeric { WIRE_VARINT } else { WIRE_LEN };
        if wire != expected {
            return Err(self.wrong_wire(wire));
        }
        match kind {
            // Negative int32 values travel sign-extended to 64 bits; the
            // truncating casts recover them.
            Kind::Int32 => Ok(Value::from(reader.varint()? as i32)),
            Kind::Int64 => Ok(Value::from(reader.varint()? as i64)),
            Kind::Bool => Ok(Value::Bool(reader.varint()? != 0)),
            _ => self.length_delimited(reader.bytes()?, kind),
        }
    }

    fn length_delimited(&self, bytes: &[u8], kind: &Kind) -> Result<Value, ProtobufError> {
        let (message, field) = (self.message.name, self.field.json);
        match kind {
            Kind::Str => utf8(bytes, message, field).map(Value::String),
            Kind::Bytes => Ok(Value::String(base64(bytes))),
            Kind::Msg(inner) => decode_message(bytes, inner, self.depth + 1).map(Value::Object),
            Kind::Time => self.time(bytes),
            Kind::IntOrString => self.int_or_string(bytes),
            Kind::Quantity => {
                let q = decode_message(bytes, &RESOURCE_QUANTITY, self.depth + 1)?;
                Ok(Value::String(string_of(&q, "string")))
            }
            Kind::RawJson => {
                let raw = raw_field(bytes)?;
                serde_json::from_slice(raw)
                    .map_err(|_| ProtobufError::InvalidJson { message, field })
            }
            Kind::StringList => {
                let list = decode_message(bytes, &STRING_LIST, self.depth + 1)?;
                Ok(list
                    .get("items")
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new())))
            }
            Kind::Int32 | Kind::Int64 | Kind::Bool => Err(self.wrong_wire(WIRE_LEN)),
        }
    }

    /// A repeated field: one element, or several packed numbers.
    fn repeated(&self, reader: &mut Reader<'_>, wire: u8) -> Result<Vec<Value>, ProtobufError> {
        let numeric = matches!(self.field.kind, Kind::Int32 | Kind::Int64 | Kind::Bool);
        if !(numeric && wire == WIRE_LEN) {
            return Ok(vec![self.value(reader, wire, &self.field.kind)?]);
        }
        let mut packed = Reader::new(reader.bytes()?, self.message.name);
        let mut values = Vec::new();
        while packed.pos < packed.buf.len() {
            values.push(self.value(&mut packed, WIRE_VARINT, &self.field.kind)?);
        }
        Ok(values)
    }

    /// A map entry: a message with the key as field 1 and the value as field 2.
    fn map_entry(
        &self,
        reader: &mut Reader<'_>,
        wire: u8,
    ) -> Result<(String, Value), ProtobufError> {
        if wire != WIRE_LEN {
            return Err(self.wrong_wire(wire));
        }
        let mut entry = Reader::new(reader.bytes()?, self.message.name);
        let mut key = String::new();
        let mut value = None;
        while let Some((number, wire)) = entry.key()? {
            match number {
                1 => {
                    key = self
                        .value(&mut entry, wire, &Kind::Str)?
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                }
                2 => value = Some(self.value(&mut entry, wire, &self.field.kind)?),
                _ => entry.skip(wire)?,
            }
        }
        // An absent value is the zero value of its type.
        let value = value.unwrap_or_else(|| zero_of(&self.field.kind));
        Ok((key, value))
    }

    fn time(&self, bytes: &[u8]) -> Result<Value, ProtobufError> {
        let t = decode_message(bytes, &META_V1_TIME, self.depth + 1)?;
        let seconds = t.get("seconds").and_then(Value::as_i64).unwrap_or(0);
        let nanos = t.get("nanos").and_then(Value::as_i64).unwrap_or(0);
        if seconds == 0 && nanos == 0 {
            // Go's zero time.Time, which Kubernetes writes as null.
            return Ok(Value::Null);
        }
        // metav1.Time is serialized with second precision.
        let time = DateTime::from_timestamp(seconds, 0).ok_or(ProtobufError::InvalidTime {
            message: self.message.name,
            field: self.field.json,
        })?;
        Ok(Value::String(time.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
    }

    fn int_or_string(&self, bytes: &[u8]) -> Result<Value, ProtobufError> {
        let v = decode_message(bytes, &INTSTR_INT_OR_STRING, self.depth + 1)?;
        // type 1 is intstr.String; anything else is intstr.Int.
        if v.get("type").and_then(Value::as_i64) == Some(1) {
            Ok(Value::String(string_of(&v, "strVal")))
        } else {
            Ok(v.get("intVal").cloned().unwrap_or(Value::from(0)))
        }
    }
}

/// Field 1 of a `FieldsV1` message: its raw JSON bytes.
fn raw_field(buf: &[u8]) -> Result<&[u8], ProtobufError> {
    let mut reader = Reader::new(buf, "FieldsV1");
    let mut raw: &[u8] = b"{}";
    while let Some((number, wire)) = reader.key()? {
        match (number, wire) {
            (1, WIRE_LEN) => raw = reader.bytes()?,
            _ => reader.skip(wire)?,
        }
    }
    Ok(raw)
}

fn utf8(bytes: &[u8], message: &'static str, field: &'static str) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 { message, field })
}

/// Whether Go's `omitempty` would leave this value out.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The JSON of a type's zero value, for map entries sent without a value.
fn zero_of(kind: &Kind) -> Value {
    match kind {
        Kind::Str | Kind::Bytes | Kind::Quantity => Value::String(String::new()),
        Kind::Int32 | Kind::Int64 | Kind::IntOrString => Value::from(0),
        Kind::Bool => Value::Bool(false),
        Kind::Msg(_) | Kind::RawJson => Value::Object(Map::new()),
        Kind::StringList => Value::Array(Vec::new()),
        Kind::Time => Value::Null,
    }
}

/// Standard base64 with padding, as Go's encoding/json writes `[]byte`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tables. Field numbers, JSON names and pointer-ness follow Kubernetes 1.33
// (`k8s.io/api` and `k8s.io/apimachinery` v0.33.0 `generated.proto` and
// `types.go`). Status fields are left out (clients do not send them and the
// API server ignores them on create), except a CertificateSigningRequest's,
// which `kubectl certificate approve` sends to the approval subresource.
// Deprecated in-tree cloud volume sources (`gcePersistentDisk`, `nfs`,
// `rbd`, ...) are not described: kubectl's typed commands never set them,
// and an undescribed field is skipped like any unknown one.
// ---------------------------------------------------------------------------

/// The kinds skiff decodes, by apiVersion and kind.
static ROOTS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &CORE_V1_NAMESPACE),
    ("v1", "Pod", &CORE_V1_POD),
    ("v1", "DeleteOptions", &META_V1_DELETE_OPTIONS),
    ("meta.k8s.io/v1", "DeleteOptions", &META_V1_DELETE_OPTIONS),
    ("policy/v1", "Eviction", &POLICY_V1_EVICTION),
    (
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        &CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST,
    ),
    (
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        &AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER,
    ),
    ("v1", "ConfigMap", &CORE_V1_CONFIG_MAP),
    ("v1", "Secret", &CORE_V1_SECRET),
    ("v1", "ServiceAccount", &CORE_V1_SERVICE_ACCOUNT),
    ("v1", "Service", &CORE_V1_SERVICE),
    ("v1", "ResourceQuota", &CORE_V1_RESOURCE_QUOTA),
    ("apps/v1", "Deployment", &APPS_V1_DEPLOYMENT),
    ("batch/v1", "Job", &BATCH_V1_JOB),
    ("batch/v1", "CronJob", &BATCH_V1_CRON_JOB),
    ("rbac.authorization.k8s.io/v1", "Role", &RBAC_V1_ROLE),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &RBAC_V1_ROLE_BINDING,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &RBAC_V1_CLUSTER_ROLE,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &RBAC_V1_CLUSTER_ROLE_BINDING,
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &SCHEDULING_V1_PRIORITY_CLASS,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        &POLICY_V1_POD_DISRUPTION_BUDGET,
    ),
    ("networking.k8s.io/v1", "Ingress", &NETWORKING_V1_INGRESS),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW,
    ),
    (
        "authentication.k8s.io/v1",
        "TokenRequest",
        &AUTHENTICATION_V1_TOKEN_REQUEST,
    ),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &AUTHENTICATION_V1_SELF_SUBJECT_REVIEW,
    ),
];

/// `runtime.TypeMeta` inside the envelope.
static RUNTIME_TYPE_META: Message = Message {
    name: "TypeMeta",
    fields: &[
        Field::val(1, "apiVersion", Kind::Str),
        Field::val(2, "kind", Kind::Str),
    ],
};
/// `metav1.Time`, read before it becomes an RFC 3339 string.
static META_V1_TIME: Message = Message {
    name: "Time",
    fields: &[
        Field::val(1, "seconds", Kind::Int64),
        Field::val(2, "nanos", Kind::Int32),
    ],
};
/// `intstr.IntOrString`, read before it becomes a number or a string.
static INTSTR_INT_OR_STRING: Message = Message {
    name: "IntOrString",
    fields: &[
        Field::val(1, "type", Kind::Int64),
        Field::val(2, "intVal", Kind::Int32),
        Field::val(3, "strVal", Kind::Str),
    ],
};
/// The protobuf wrapper of a Go `[]string` type.
static STRING_LIST: Message = Message {
    name: "ExtraValue",
    fields: &[Field::list(1, "items", Kind::Str)],
};
/// `resource.Quantity`, whose canonical string is all it carries.
static RESOURCE_QUANTITY: Message = Message {
    name: "Quantity",
    fields: &[Field::val(1, "string", Kind::Str)],
};

/// `k8s.io.api.core.v1.Namespace`
static CORE_V1_NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_NAMESPACE_SPEC)),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta`
static META_V1_OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "generateName", Kind::Str),
        Field::val(3, "namespace", Kind::Str),
        Field::val(4, "selfLink", Kind::Str),
        Field::val(5, "uid", Kind::Str),
        Field::val(6, "resourceVersion", Kind::Str),
        Field::val(7, "generation", Kind::Int64),
        Field::val(8, "creationTimestamp", Kind::Time),
        Field::ptr(9, "deletionTimestamp", Kind::Time),
        Field::ptr(10, "deletionGracePeriodSeconds", Kind::Int64),
        Field::map(11, "labels", Kind::Str),
        Field::map(12, "annotations", Kind::Str),
        Field::list(13, "ownerReferences", Kind::Msg(&META_V1_OWNER_REFERENCE)),
        Field::list(14, "finalizers", Kind::Str),
        Field::list(
            17,
            "managedFields",
            Kind::Msg(&META_V1_MANAGED_FIELDS_ENTRY),
        ),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference`
static META_V1_OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(3, "name", Kind::Str),
        Field::val(4, "uid", Kind::Str),
        Field::val(5, "apiVersion", Kind::Str),
        Field::ptr(6, "controller", Kind::Bool),
        Field::ptr(7, "blockOwnerDeletion", Kind::Bool),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry`
static META_V1_MANAGED_FIELDS_ENTRY: Message = Message {
    name: "ManagedFieldsEntry",
    fields: &[
        Field::val(1, "manager", Kind::Str),
        Field::val(2, "operation", Kind::Str),
        Field::val(3, "apiVersion", Kind::Str),
        Field::ptr(4, "time", Kind::Time),
        Field::val(6, "fieldsType", Kind::Str),
        Field::ptr(7, "fieldsV1", Kind::RawJson),
        Field::val(8, "subresource", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.NamespaceSpec`
static CORE_V1_NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[Field::list(1, "finalizers", Kind::Str)],
};
/// `k8s.io.api.core.v1.Pod`
static CORE_V1_POD: Message = Message {
    name: "Pod",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_POD_SPEC)),
    ],
};
/// `k8s.io.api.core.v1.PodSpec`
static CORE_V1_POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        Field::list(1, "volumes", Kind::Msg(&CORE_V1_VOLUME)),
        Field::list(2, "containers", Kind::Msg(&CORE_V1_CONTAINER)),
        Field::val(3, "restartPolicy", Kind::Str),
        Field::ptr(4, "terminationGracePeriodSeconds", Kind::Int64),
        Field::ptr(5, "activeDeadlineSeconds", Kind::Int64),
        Field::val(6, "dnsPolicy", Kind::Str),
        Field::map(7, "nodeSelector", Kind::Str),
        Field::val(8, "serviceAccountName", Kind::Str),
        Field::val(9, "serviceAccount", Kind::Str),
        Field::val(10, "nodeName", Kind::Str),
        Field::val(11, "hostNetwork", Kind::Bool),
        Field::val(12, "hostPID", Kind::Bool),
        Field::val(13, "hostIPC", Kind::Bool),
        Field::ptr(
            14,
            "securityContext",
            Kind::Msg(&CORE_V1_POD_SECURITY_CONTEXT),
        ),
        Field::list(
            15,
            "imagePullSecrets",
            Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE),
        ),
        Field::val(16, "hostname", Kind::Str),
        Field::val(17, "subdomain", Kind::Str),
        Field::ptr(18, "affinity", Kind::Msg(&CORE_V1_AFFINITY)),
        Field::val(19, "schedulerName", Kind::Str),
        Field::list(20, "initContainers", Kind::Msg(&CORE_V1_CONTAINER)),
        Field::ptr(21, "automountServiceAccountToken", Kind::Bool),
        Field::list(22, "tolerations", Kind::Msg(&CORE_V1_TOLERATION)),
        Field::list(23, "hostAliases", Kind::Msg(&CORE_V1_HOST_ALIAS)),
        Field::val(24, "priorityClassName", Kind::Str),
        Field::ptr(25, "priority", Kind::Int32),
        Field::ptr(26, "dnsConfig", Kind::Msg(&CORE_V1_POD_DNS_CONFIG)),
        Field::ptr(27, "shareProcessNamespace", Kind::Bool),
        Field::list(28, "readinessGates", Kind::Msg(&CORE_V1_POD_READINESS_GATE)),
        Field::ptr(29, "runtimeClassName", Kind::Str),
        Field::ptr(30, "enableServiceLinks", Kind::Bool),
        Field::ptr(31, "preemptionPolicy", Kind::Str),
        Field::map(32, "overhead", Kind::Quantity),
        Field::list(
            33,
            "topologySpreadConstraints",
            Kind::Msg(&CORE_V1_TOPOLOGY_SPREAD_CONSTRAINT),
        ),
        Field::list(
            34,
            "ephemeralContainers",
            Kind::Msg(&CORE_V1_EPHEMERAL_CONTAINER),
        ),
        Field::ptr(35, "setHostnameAsFQDN", Kind::Bool),
        Field::ptr(36, "os", Kind::Msg(&CORE_V1_POD_OS)),
        Field::ptr(37, "hostUsers", Kind::Bool),
        Field::list(
            38,
            "schedulingGates",
            Kind::Msg(&CORE_V1_POD_SCHEDULING_GATE),
        ),
        Field::list(39, "resourceClaims", Kind::Msg(&CORE_V1_POD_RESOURCE_CLAIM)),
        Field::ptr(40, "resources", Kind::Msg(&CORE_V1_RESOURCE_REQUIREMENTS)),
    ],
};
/// `k8s.io.api.core.v1.Volume`
static CORE_V1_VOLUME: Message = Message {
    name: "Volume",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::inline(2, Kind::Msg(&CORE_V1_VOLUME_SOURCE)),
    ],
};
/// `k8s.io.api.core.v1.VolumeSource`
static CORE_V1_VOLUME_SOURCE: Message = Message {
    name: "VolumeSource",
    fields: &[
        Field::ptr(1, "hostPath", Kind::Msg(&CORE_V1_HOST_PATH_VOLUME_SOURCE)),
        Field::ptr(2, "emptyDir", Kind::Msg(&CORE_V1_EMPTY_DIR_VOLUME_SOURCE)),
        Field::ptr(6, "secret", Kind::Msg(&CORE_V1_SECRET_VOLUME_SOURCE)),
        Field::ptr(
            10,
            "persistentVolumeClaim",
            Kind::Msg(&CORE_V1_PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
        ),
        Field::ptr(
            16,
            "downwardAPI",
            Kind::Msg(&CORE_V1_DOWNWARD_API_VOLUME_SOURCE),
        ),
        Field::ptr(
            19,
            "configMap",
            Kind::Msg(&CORE_V1_CONFIG_MAP_VOLUME_SOURCE),
        ),
        Field::ptr(26, "projected", Kind::Msg(&CORE_V1_PROJECTED_VOLUME_SOURCE)),
        Field::ptr(28, "csi", Kind::Msg(&CORE_V1_CSI_VOLUME_SOURCE)),
        Field::ptr(29, "ephemeral", Kind::Msg(&CORE_V1_EPHEMERAL_VOLUME_SOURCE)),
        Field::ptr(30, "image", Kind::Msg(&CORE_V1_IMAGE_VOLUME_SOURCE)),
    ],
};
/// `k8s.io.api.core.v1.HostPathVolumeSource`
static CORE_V1_HOST_PATH_VOLUME_SOURCE: Message = Message {
    name: "HostPathVolumeSource",
    fields: &[
        Field::val(1, "path", Kind::Str),
        Field::ptr(2, "type", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.EmptyDirVolumeSource`
static CORE_V1_EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "EmptyDirVolumeSource",
    fields: &[
        Field::val(1, "medium", Kind::Str),
        Field::ptr(2, "sizeLimit", Kind::Quantity),
    ],
};
/// `k8s.io.api.core.v1.SecretVolumeSource`
static CORE_V1_SECRET_VOLUME_SOURCE: Message = Message {
    name: "SecretVolumeSource",
    fields: &[
        Field::val(1, "secretName", Kind::Str),
        Field::list(2, "items", Kind::Msg(&CORE_V1_KEY_TO_PATH)),
        Field::ptr(3, "defaultMode", Kind::Int32),
        Field::ptr(4, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.KeyToPath`
static CORE_V1_KEY_TO_PATH: Message = Message {
    name: "KeyToPath",
    fields: &[
        Field::val(1, "key", Kind::Str),
        Field::val(2, "path", Kind::Str),
        Field::ptr(3, "mode", Kind::Int32),
    ],
};
/// `k8s.io.api.core.v1.PersistentVolumeClaimVolumeSource`
static CORE_V1_PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message {
    name: "PersistentVolumeClaimVolumeSource",
    fields: &[
        Field::val(1, "claimName", Kind::Str),
        Field::val(2, "readOnly", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.DownwardAPIVolumeSource`
static CORE_V1_DOWNWARD_API_VOLUME_SOURCE: Message = Message {
    name: "DownwardAPIVolumeSource",
    fields: &[
        Field::list(1, "items", Kind::Msg(&CORE_V1_DOWNWARD_API_VOLUME_FILE)),
        Field::ptr(2, "defaultMode", Kind::Int32),
    ],
};
/// `k8s.io.api.core.v1.DownwardAPIVolumeFile`
static CORE_V1_DOWNWARD_API_VOLUME_FILE: Message = Message {
    name: "DownwardAPIVolumeFile",
    fields: &[
        Field::val(1, "path", Kind::Str),
        Field::ptr(2, "fieldRef", Kind::Msg(&CORE_V1_OBJECT_FIELD_SELECTOR)),
        Field::ptr(
            3,
            "resourceFieldRef",
            Kind::Msg(&CORE_V1_RESOURCE_FIELD_SELECTOR),
        ),
        Field::ptr(4, "mode", Kind::Int32),
    ],
};
/// `k8s.io.api.core.v1.ObjectFieldSelector`
static CORE_V1_OBJECT_FIELD_SELECTOR: Message = Message {
    name: "ObjectFieldSelector",
    fields: &[
        Field::val(1, "apiVersion", Kind::Str),
        Field::val(2, "fieldPath", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ResourceFieldSelector`
static CORE_V1_RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "ResourceFieldSelector",
    fields: &[
        Field::val(1, "containerName", Kind::Str),
        Field::val(2, "resource", Kind::Str),
        Field::val(3, "divisor", Kind::Quantity),
    ],
};
/// `k8s.io.api.core.v1.ConfigMapVolumeSource`
static CORE_V1_CONFIG_MAP_VOLUME_SOURCE: Message = Message {
    name: "ConfigMapVolumeSource",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::list(2, "items", Kind::Msg(&CORE_V1_KEY_TO_PATH)),
        Field::ptr(3, "defaultMode", Kind::Int32),
        Field::ptr(4, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.LocalObjectReference`
static CORE_V1_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[Field::val(1, "name", Kind::Str)],
};
/// `k8s.io.api.core.v1.ProjectedVolumeSource`
static CORE_V1_PROJECTED_VOLUME_SOURCE: Message = Message {
    name: "ProjectedVolumeSource",
    fields: &[
        Field::list(1, "sources", Kind::Msg(&CORE_V1_VOLUME_PROJECTION)),
        Field::ptr(2, "defaultMode", Kind::Int32),
    ],
};
/// `k8s.io.api.core.v1.VolumeProjection`
static CORE_V1_VOLUME_PROJECTION: Message = Message {
    name: "VolumeProjection",
    fields: &[
        Field::ptr(1, "secret", Kind::Msg(&CORE_V1_SECRET_PROJECTION)),
        Field::ptr(
            2,
            "downwardAPI",
            Kind::Msg(&CORE_V1_DOWNWARD_API_PROJECTION),
        ),
        Field::ptr(3, "configMap", Kind::Msg(&CORE_V1_CONFIG_MAP_PROJECTION)),
        Field::ptr(
            4,
            "serviceAccountToken",
            Kind::Msg(&CORE_V1_SERVICE_ACCOUNT_TOKEN_PROJECTION),
        ),
        Field::ptr(
            5,
            "clusterTrustBundle",
            Kind::Msg(&CORE_V1_CLUSTER_TRUST_BUNDLE_PROJECTION),
        ),
    ],
};
/// `k8s.io.api.core.v1.SecretProjection`
static CORE_V1_SECRET_PROJECTION: Message = Message {
    name: "SecretProjection",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::list(2, "items", Kind::Msg(&CORE_V1_KEY_TO_PATH)),
        Field::ptr(4, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.DownwardAPIProjection`
static CORE_V1_DOWNWARD_API_PROJECTION: Message = Message {
    name: "DownwardAPIProjection",
    fields: &[Field::list(
        1,
        "items",
        Kind::Msg(&CORE_V1_DOWNWARD_API_VOLUME_FILE),
    )],
};
/// `k8s.io.api.core.v1.ConfigMapProjection`
static CORE_V1_CONFIG_MAP_PROJECTION: Message = Message {
    name: "ConfigMapProjection",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::list(2, "items", Kind::Msg(&CORE_V1_KEY_TO_PATH)),
        Field::ptr(4, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.ServiceAccountTokenProjection`
static CORE_V1_SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message {
    name: "ServiceAccountTokenProjection",
    fields: &[
        Field::val(1, "audience", Kind::Str),
        Field::ptr(2, "expirationSeconds", Kind::Int64),
        Field::val(3, "path", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ClusterTrustBundleProjection`
static CORE_V1_CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message {
    name: "ClusterTrustBundleProjection",
    fields: &[
        Field::ptr(1, "name", Kind::Str),
        Field::ptr(2, "signerName", Kind::Str),
        Field::ptr(3, "labelSelector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::val(4, "path", Kind::Str),
        Field::ptr(5, "optional", Kind::Bool),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector`
static META_V1_LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        Field::map(1, "matchLabels", Kind::Str),
        Field::list(
            2,
            "matchExpressions",
            Kind::Msg(&META_V1_LABEL_SELECTOR_REQUIREMENT),
        ),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement`
static META_V1_LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[
        Field::val(1, "key", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::list(3, "values", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.CSIVolumeSource`
static CORE_V1_CSI_VOLUME_SOURCE: Message = Message {
    name: "CSIVolumeSource",
    fields: &[
        Field::val(1, "driver", Kind::Str),
        Field::ptr(2, "readOnly", Kind::Bool),
        Field::ptr(3, "fsType", Kind::Str),
        Field::map(4, "volumeAttributes", Kind::Str),
        Field::ptr(
            5,
            "nodePublishSecretRef",
            Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE),
        ),
    ],
};
/// `k8s.io.api.core.v1.EphemeralVolumeSource`
static CORE_V1_EPHEMERAL_VOLUME_SOURCE: Message = Message {
    name: "EphemeralVolumeSource",
    fields: &[Field::ptr(
        1,
        "volumeClaimTemplate",
        Kind::Msg(&CORE_V1_PERSISTENT_VOLUME_CLAIM_TEMPLATE),
    )],
};
/// `k8s.io.api.core.v1.PersistentVolumeClaimTemplate`
static CORE_V1_PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message {
    name: "PersistentVolumeClaimTemplate",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_PERSISTENT_VOLUME_CLAIM_SPEC)),
    ],
};
/// `k8s.io.api.core.v1.PersistentVolumeClaimSpec`
static CORE_V1_PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message {
    name: "PersistentVolumeClaimSpec",
    fields: &[
        Field::list(1, "accessModes", Kind::Str),
        Field::val(
            2,
            "resources",
            Kind::Msg(&CORE_V1_VOLUME_RESOURCE_REQUIREMENTS),
        ),
        Field::val(3, "volumeName", Kind::Str),
        Field::ptr(4, "selector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::ptr(5, "storageClassName", Kind::Str),
        Field::ptr(6, "volumeMode", Kind::Str),
        Field::ptr(
            7,
            "dataSource",
            Kind::Msg(&CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE),
        ),
        Field::ptr(
            8,
            "dataSourceRef",
            Kind::Msg(&CORE_V1_TYPED_OBJECT_REFERENCE),
        ),
        Field::ptr(9, "volumeAttributesClassName", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.VolumeResourceRequirements`
static CORE_V1_VOLUME_RESOURCE_REQUIREMENTS: Message = Message {
    name: "VolumeResourceRequirements",
    fields: &[
        Field::map(1, "limits", Kind::Quantity),
        Field::map(2, "requests", Kind::Quantity),
    ],
};
/// `k8s.io.api.core.v1.TypedLocalObjectReference`
static CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "TypedLocalObjectReference",
    fields: &[
        Field::ptr(1, "apiGroup", Kind::Str),
        Field::val(2, "kind", Kind::Str),
        Field::val(3, "name", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.TypedObjectReference`
static CORE_V1_TYPED_OBJECT_REFERENCE: Message = Message {
    name: "TypedObjectReference",
    fields: &[
        Field::ptr(1, "apiGroup", Kind::Str),
        Field::val(2, "kind", Kind::Str),
        Field::val(3, "name", Kind::Str),
        Field::ptr(4, "namespace", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ImageVolumeSource`
static CORE_V1_IMAGE_VOLUME_SOURCE: Message = Message {
    name: "ImageVolumeSource",
    fields: &[
        Field::val(1, "reference", Kind::Str),
        Field::val(2, "pullPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.Container`
static CORE_V1_CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "image", Kind::Str),
        Field::list(3, "command", Kind::Str),
        Field::list(4, "args", Kind::Str),
        Field::val(5, "workingDir", Kind::Str),
        Field::list(6, "ports", Kind::Msg(&CORE_V1_CONTAINER_PORT)),
        Field::list(7, "env", Kind::Msg(&CORE_V1_ENV_VAR)),
        Field::val(8, "resources", Kind::Msg(&CORE_V1_RESOURCE_REQUIREMENTS)),
        Field::list(9, "volumeMounts", Kind::Msg(&CORE_V1_VOLUME_MOUNT)),
        Field::ptr(10, "livenessProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::ptr(11, "readinessProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::ptr(12, "lifecycle", Kind::Msg(&CORE_V1_LIFECYCLE)),
        Field::val(13, "terminationMessagePath", Kind::Str),
        Field::val(14, "imagePullPolicy", Kind::Str),
        Field::ptr(15, "securityContext", Kind::Msg(&CORE_V1_SECURITY_CONTEXT)),
        Field::val(16, "stdin", Kind::Bool),
        Field::val(17, "stdinOnce", Kind::Bool),
        Field::val(18, "tty", Kind::Bool),
        Field::list(19, "envFrom", Kind::Msg(&CORE_V1_ENV_FROM_SOURCE)),
        Field::val(20, "terminationMessagePolicy", Kind::Str),
        Field::list(21, "volumeDevices", Kind::Msg(&CORE_V1_VOLUME_DEVICE)),
        Field::ptr(22, "startupProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::list(
            23,
            "resizePolicy",
            Kind::Msg(&CORE_V1_CONTAINER_RESIZE_POLICY),
        ),
        Field::ptr(24, "restartPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ContainerPort`
static CORE_V1_CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "hostPort", Kind::Int32),
        Field::val(3, "containerPort", Kind::Int32),
        Field::val(4, "protocol", Kind::Str),
        Field::val(5, "hostIP", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.EnvFromSource`
static CORE_V1_ENV_FROM_SOURCE: Message = Message {
    name: "EnvFromSource",
    fields: &[
        Field::val(1, "prefix", Kind::Str),
        Field::ptr(2, "configMapRef", Kind::Msg(&CORE_V1_CONFIG_MAP_ENV_SOURCE)),
        Field::ptr(3, "secretRef", Kind::Msg(&CORE_V1_SECRET_ENV_SOURCE)),
    ],
};
/// `k8s.io.api.core.v1.ConfigMapEnvSource`
static CORE_V1_CONFIG_MAP_ENV_SOURCE: Message = Message {
    name: "ConfigMapEnvSource",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::ptr(2, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.SecretEnvSource`
static CORE_V1_SECRET_ENV_SOURCE: Message = Message {
    name: "SecretEnvSource",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::ptr(2, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.EnvVar`
static CORE_V1_ENV_VAR: Message = Message {
    name: "EnvVar",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "value", Kind::Str),
        Field::ptr(3, "valueFrom", Kind::Msg(&CORE_V1_ENV_VAR_SOURCE)),
    ],
};
/// `k8s.io.api.core.v1.EnvVarSource`
static CORE_V1_ENV_VAR_SOURCE: Message = Message {
    name: "EnvVarSource",
    fields: &[
        Field::ptr(1, "fieldRef", Kind::Msg(&CORE_V1_OBJECT_FIELD_SELECTOR)),
        Field::ptr(
            2,
            "resourceFieldRef",
            Kind::Msg(&CORE_V1_RESOURCE_FIELD_SELECTOR),
        ),
        Field::ptr(
            3,
            "configMapKeyRef",
            Kind::Msg(&CORE_V1_CONFIG_MAP_KEY_SELECTOR),
        ),
        Field::ptr(4, "secretKeyRef", Kind::Msg(&CORE_V1_SECRET_KEY_SELECTOR)),
    ],
};
/// `k8s.io.api.core.v1.ConfigMapKeySelector`
static CORE_V1_CONFIG_MAP_KEY_SELECTOR: Message = Message {
    name: "ConfigMapKeySelector",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::val(2, "key", Kind::Str),
        Field::ptr(3, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.SecretKeySelector`
static CORE_V1_SECRET_KEY_SELECTOR: Message = Message {
    name: "SecretKeySelector",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE)),
        Field::val(2, "key", Kind::Str),
        Field::ptr(3, "optional", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.ResourceRequirements`
static CORE_V1_RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        Field::map(1, "limits", Kind::Quantity),
        Field::map(2, "requests", Kind::Quantity),
        Field::list(3, "claims", Kind::Msg(&CORE_V1_RESOURCE_CLAIM)),
    ],
};
/// `k8s.io.api.core.v1.ResourceClaim`
static CORE_V1_RESOURCE_CLAIM: Message = Message {
    name: "ResourceClaim",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "request", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ContainerResizePolicy`
static CORE_V1_CONTAINER_RESIZE_POLICY: Message = Message {
    name: "ContainerResizePolicy",
    fields: &[
        Field::val(1, "resourceName", Kind::Str),
        Field::val(2, "restartPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.VolumeMount`
static CORE_V1_VOLUME_MOUNT: Message = Message {
    name: "VolumeMount",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "readOnly", Kind::Bool),
        Field::val(3, "mountPath", Kind::Str),
        Field::val(4, "subPath", Kind::Str),
        Field::ptr(5, "mountPropagation", Kind::Str),
        Field::val(6, "subPathExpr", Kind::Str),
        Field::ptr(7, "recursiveReadOnly", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.VolumeDevice`
static CORE_V1_VOLUME_DEVICE: Message = Message {
    name: "VolumeDevice",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "devicePath", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.Probe`
static CORE_V1_PROBE: Message = Message {
    name: "Probe",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_PROBE_HANDLER)),
        Field::val(2, "initialDelaySeconds", Kind::Int32),
        Field::val(3, "timeoutSeconds", Kind::Int32),
        Field::val(4, "periodSeconds", Kind::Int32),
        Field::val(5, "successThreshold", Kind::Int32),
        Field::val(6, "failureThreshold", Kind::Int32),
        Field::ptr(7, "terminationGracePeriodSeconds", Kind::Int64),
    ],
};
/// `k8s.io.api.core.v1.ProbeHandler`
static CORE_V1_PROBE_HANDLER: Message = Message {
    name: "ProbeHandler",
    fields: &[
        Field::ptr(1, "exec", Kind::Msg(&CORE_V1_EXEC_ACTION)),
        Field::ptr(2, "httpGet", Kind::Msg(&CORE_V1_HTTP_GET_ACTION)),
        Field::ptr(3, "tcpSocket", Kind::Msg(&CORE_V1_TCP_SOCKET_ACTION)),
        Field::ptr(4, "grpc", Kind::Msg(&CORE_V1_GRPC_ACTION)),
    ],
};
/// `k8s.io.api.core.v1.ExecAction`
static CORE_V1_EXEC_ACTION: Message = Message {
    name: "ExecAction",
    fields: &[Field::list(1, "command", Kind::Str)],
};
/// `k8s.io.api.core.v1.HTTPGetAction`
static CORE_V1_HTTP_GET_ACTION: Message = Message {
    name: "HTTPGetAction",
    fields: &[
        Field::val(1, "path", Kind::Str),
        Field::val(2, "port", Kind::IntOrString),
        Field::val(3, "host", Kind::Str),
        Field::val(4, "scheme", Kind::Str),
        Field::list(5, "httpHeaders", Kind::Msg(&CORE_V1_HTTP_HEADER)),
    ],
};
/// `k8s.io.api.core.v1.HTTPHeader`
static CORE_V1_HTTP_HEADER: Message = Message {
    name: "HTTPHeader",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "value", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.TCPSocketAction`
static CORE_V1_TCP_SOCKET_ACTION: Message = Message {
    name: "TCPSocketAction",
    fields: &[
        Field::val(1, "port", Kind::IntOrString),
        Field::val(2, "host", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.GRPCAction`
static CORE_V1_GRPC_ACTION: Message = Message {
    name: "GRPCAction",
    fields: &[
        Field::val(1, "port", Kind::Int32),
        Field::ptr(2, "service", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.Lifecycle`
static CORE_V1_LIFECYCLE: Message = Message {
    name: "Lifecycle",
    fields: &[
        Field::ptr(1, "postStart", Kind::Msg(&CORE_V1_LIFECYCLE_HANDLER)),
        Field::ptr(2, "preStop", Kind::Msg(&CORE_V1_LIFECYCLE_HANDLER)),
        Field::ptr(3, "stopSignal", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.LifecycleHandler`
static CORE_V1_LIFECYCLE_HANDLER: Message = Message {
    name: "LifecycleHandler",
    fields: &[
        Field::ptr(1, "exec", Kind::Msg(&CORE_V1_EXEC_ACTION)),
        Field::ptr(2, "httpGet", Kind::Msg(&CORE_V1_HTTP_GET_ACTION)),
        Field::ptr(3, "tcpSocket", Kind::Msg(&CORE_V1_TCP_SOCKET_ACTION)),
        Field::ptr(4, "sleep", Kind::Msg(&CORE_V1_SLEEP_ACTION)),
    ],
};
/// `k8s.io.api.core.v1.SleepAction`
static CORE_V1_SLEEP_ACTION: Message = Message {
    name: "SleepAction",
    fields: &[Field::val(1, "seconds", Kind::Int64)],
};
/// `k8s.io.api.core.v1.SecurityContext`
static CORE_V1_SECURITY_CONTEXT: Message = Message {
    name: "SecurityContext",
    fields: &[
        Field::ptr(1, "capabilities", Kind::Msg(&CORE_V1_CAPABILITIES)),
        Field::ptr(2, "privileged", Kind::Bool),
        Field::ptr(3, "seLinuxOptions", Kind::Msg(&CORE_V1_SE_LINUX_OPTIONS)),
        Field::ptr(4, "runAsUser", Kind::Int64),
        Field::ptr(5, "runAsNonRoot", Kind::Bool),
        Field::ptr(6, "readOnlyRootFilesystem", Kind::Bool),
        Field::ptr(7, "allowPrivilegeEscalation", Kind::Bool),
        Field::ptr(8, "runAsGroup", Kind::Int64),
        Field::ptr(9, "procMount", Kind::Str),
        Field::ptr(
            10,
            "windowsOptions",
            Kind::Msg(&CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS),
        ),
        Field::ptr(11, "seccompProfile", Kind::Msg(&CORE_V1_SECCOMP_PROFILE)),
        Field::ptr(12, "appArmorProfile", Kind::Msg(&CORE_V1_APP_ARMOR_PROFILE)),
    ],
};
/// `k8s.io.api.core.v1.Capabilities`
static CORE_V1_CAPABILITIES: Message = Message {
    name: "Capabilities",
    fields: &[
        Field::list(1, "add", Kind::Str),
        Field::list(2, "drop", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.SELinuxOptions`
static CORE_V1_SE_LINUX_OPTIONS: Message = Message {
    name: "SELinuxOptions",
    fields: &[
        Field::val(1, "user", Kind::Str),
        Field::val(2, "role", Kind::Str),
        Field::val(3, "type", Kind::Str),
        Field::val(4, "level", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.WindowsSecurityContextOptions`
static CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message {
    name: "WindowsSecurityContextOptions",
    fields: &[
        Field::ptr(1, "gmsaCredentialSpecName", Kind::Str),
        Field::ptr(2, "gmsaCredentialSpec", Kind::Str),
        Field::ptr(3, "runAsUserName", Kind::Str),
        Field::ptr(4, "hostProcess", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.SeccompProfile`
static CORE_V1_SECCOMP_PROFILE: Message = Message {
    name: "SeccompProfile",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::ptr(2, "localhostProfile", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.AppArmorProfile`
static CORE_V1_APP_ARMOR_PROFILE: Message = Message {
    name: "AppArmorProfile",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::ptr(2, "localhostProfile", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.EphemeralContainer`
static CORE_V1_EPHEMERAL_CONTAINER: Message = Message {
    name: "EphemeralContainer",
    fields: &[
        Field::inline(1, Kind::Msg(&CORE_V1_EPHEMERAL_CONTAINER_COMMON)),
        Field::val(2, "targetContainerName", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.EphemeralContainerCommon`
static CORE_V1_EPHEMERAL_CONTAINER_COMMON: Message = Message {
    name: "EphemeralContainerCommon",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "image", Kind::Str),
        Field::list(3, "command", Kind::Str),
        Field::list(4, "args", Kind::Str),
        Field::val(5, "workingDir", Kind::Str),
        Field::list(6, "ports", Kind::Msg(&CORE_V1_CONTAINER_PORT)),
        Field::list(7, "env", Kind::Msg(&CORE_V1_ENV_VAR)),
        Field::val(8, "resources", Kind::Msg(&CORE_V1_RESOURCE_REQUIREMENTS)),
        Field::list(9, "volumeMounts", Kind::Msg(&CORE_V1_VOLUME_MOUNT)),
        Field::ptr(10, "livenessProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::ptr(11, "readinessProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::ptr(12, "lifecycle", Kind::Msg(&CORE_V1_LIFECYCLE)),
        Field::val(13, "terminationMessagePath", Kind::Str),
        Field::val(14, "imagePullPolicy", Kind::Str),
        Field::ptr(15, "securityContext", Kind::Msg(&CORE_V1_SECURITY_CONTEXT)),
        Field::val(16, "stdin", Kind::Bool),
        Field::val(17, "stdinOnce", Kind::Bool),
        Field::val(18, "tty", Kind::Bool),
        Field::list(19, "envFrom", Kind::Msg(&CORE_V1_ENV_FROM_SOURCE)),
        Field::val(20, "terminationMessagePolicy", Kind::Str),
        Field::list(21, "volumeDevices", Kind::Msg(&CORE_V1_VOLUME_DEVICE)),
        Field::ptr(22, "startupProbe", Kind::Msg(&CORE_V1_PROBE)),
        Field::list(
            23,
            "resizePolicy",
            Kind::Msg(&CORE_V1_CONTAINER_RESIZE_POLICY),
        ),
        Field::ptr(24, "restartPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.PodSecurityContext`
static CORE_V1_POD_SECURITY_CONTEXT: Message = Message {
    name: "PodSecurityContext",
    fields: &[
        Field::ptr(1, "seLinuxOptions", Kind::Msg(&CORE_V1_SE_LINUX_OPTIONS)),
        Field::ptr(2, "runAsUser", Kind::Int64),
        Field::ptr(3, "runAsNonRoot", Kind::Bool),
        Field::list(4, "supplementalGroups", Kind::Int64),
        Field::ptr(5, "fsGroup", Kind::Int64),
        Field::ptr(6, "runAsGroup", Kind::Int64),
        Field::list(7, "sysctls", Kind::Msg(&CORE_V1_SYSCTL)),
        Field::ptr(
            8,
            "windowsOptions",
            Kind::Msg(&CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS),
        ),
        Field::ptr(9, "fsGroupChangePolicy", Kind::Str),
        Field::ptr(10, "seccompProfile", Kind::Msg(&CORE_V1_SECCOMP_PROFILE)),
        Field::ptr(11, "appArmorProfile", Kind::Msg(&CORE_V1_APP_ARMOR_PROFILE)),
        Field::ptr(12, "supplementalGroupsPolicy", Kind::Str),
        Field::ptr(13, "seLinuxChangePolicy", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.Sysctl`
static CORE_V1_SYSCTL: Message = Message {
    name: "Sysctl",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "value", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.Affinity`
static CORE_V1_AFFINITY: Message = Message {
    name: "Affinity",
    fields: &[
        Field::ptr(1, "nodeAffinity", Kind::Msg(&CORE_V1_NODE_AFFINITY)),
        Field::ptr(2, "podAffinity", Kind::Msg(&CORE_V1_POD_AFFINITY)),
        Field::ptr(3, "podAntiAffinity", Kind::Msg(&CORE_V1_POD_ANTI_AFFINITY)),
    ],
};
/// `k8s.io.api.core.v1.NodeAffinity`
static CORE_V1_NODE_AFFINITY: Message = Message {
    name: "NodeAffinity",
    fields: &[
        Field::ptr(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_NODE_SELECTOR),
        ),
        Field::list(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_PREFERRED_SCHEDULING_TERM),
        ),
    ],
};
/// `k8s.io.api.core.v1.NodeSelector`
static CORE_V1_NODE_SELECTOR: Message = Message {
    name: "NodeSelector",
    fields: &[Field::list(
        1,
        "nodeSelectorTerms",
        Kind::Msg(&CORE_V1_NODE_SELECTOR_TERM),
    )],
};
/// `k8s.io.api.core.v1.NodeSelectorTerm`
static CORE_V1_NODE_SELECTOR_TERM: Message = Message {
    name: "NodeSelectorTerm",
    fields: &[
        Field::list(
            1,
            "matchExpressions",
            Kind::Msg(&CORE_V1_NODE_SELECTOR_REQUIREMENT),
        ),
        Field::list(
            2,
            "matchFields",
            Kind::Msg(&CORE_V1_NODE_SELECTOR_REQUIREMENT),
        ),
    ],
};
/// `k8s.io.api.core.v1.NodeSelectorRequirement`
static CORE_V1_NODE_SELECTOR_REQUIREMENT: Message = Message {
    name: "NodeSelectorRequirement",
    fields: &[
        Field::val(1, "key", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::list(3, "values", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.PreferredSchedulingTerm`
static CORE_V1_PREFERRED_SCHEDULING_TERM: Message = Message {
    name: "PreferredSchedulingTerm",
    fields: &[
        Field::val(1, "weight", Kind::Int32),
        Field::val(2, "preference", Kind::Msg(&CORE_V1_NODE_SELECTOR_TERM)),
    ],
};
/// `k8s.io.api.core.v1.PodAffinity`
static CORE_V1_POD_AFFINITY: Message = Message {
    name: "PodAffinity",
    fields: &[
        Field::list(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_POD_AFFINITY_TERM),
        ),
        Field::list(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_WEIGHTED_POD_AFFINITY_TERM),
        ),
    ],
};
/// `k8s.io.api.core.v1.PodAffinityTerm`
static CORE_V1_POD_AFFINITY_TERM: Message = Message {
    name: "PodAffinityTerm",
    fields: &[
        Field::ptr(1, "labelSelector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::list(2, "namespaces", Kind::Str),
        Field::val(3, "topologyKey", Kind::Str),
        Field::ptr(4, "namespaceSelector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::list(5, "matchLabelKeys", Kind::Str),
        Field::list(6, "mismatchLabelKeys", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.WeightedPodAffinityTerm`
static CORE_V1_WEIGHTED_POD_AFFINITY_TERM: Message = Message {
    name: "WeightedPodAffinityTerm",
    fields: &[
        Field::val(1, "weight", Kind::Int32),
        Field::val(2, "podAffinityTerm", Kind::Msg(&CORE_V1_POD_AFFINITY_TERM)),
    ],
};
/// `k8s.io.api.core.v1.PodAntiAffinity`
static CORE_V1_POD_ANTI_AFFINITY: Message = Message {
    name: "PodAntiAffinity",
    fields: &[
        Field::list(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_POD_AFFINITY_TERM),
        ),
        Field::list(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Kind::Msg(&CORE_V1_WEIGHTED_POD_AFFINITY_TERM),
        ),
    ],
};
/// `k8s.io.api.core.v1.Toleration`
static CORE_V1_TOLERATION: Message = Message {
    name: "Toleration",
    fields: &[
        Field::val(1, "key", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::val(3, "value", Kind::Str),
        Field::val(4, "effect", Kind::Str),
        Field::ptr(5, "tolerationSeconds", Kind::Int64),
    ],
};
/// `k8s.io.api.core.v1.HostAlias`
static CORE_V1_HOST_ALIAS: Message = Message {
    name: "HostAlias",
    fields: &[
        Field::val(1, "ip", Kind::Str),
        Field::list(2, "hostnames", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.PodDNSConfig`
static CORE_V1_POD_DNS_CONFIG: Message = Message {
    name: "PodDNSConfig",
    fields: &[
        Field::list(1, "nameservers", Kind::Str),
        Field::list(2, "searches", Kind::Str),
        Field::list(3, "options", Kind::Msg(&CORE_V1_POD_DNS_CONFIG_OPTION)),
    ],
};
/// `k8s.io.api.core.v1.PodDNSConfigOption`
static CORE_V1_POD_DNS_CONFIG_OPTION: Message = Message {
    name: "PodDNSConfigOption",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::ptr(2, "value", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.PodReadinessGate`
static CORE_V1_POD_READINESS_GATE: Message = Message {
    name: "PodReadinessGate",
    fields: &[Field::val(1, "conditionType", Kind::Str)],
};
/// `k8s.io.api.core.v1.TopologySpreadConstraint`
static CORE_V1_TOPOLOGY_SPREAD_CONSTRAINT: Message = Message {
    name: "TopologySpreadConstraint",
    fields: &[
        Field::val(1, "maxSkew", Kind::Int32),
        Field::val(2, "topologyKey", Kind::Str),
        Field::val(3, "whenUnsatisfiable", Kind::Str),
        Field::ptr(4, "labelSelector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::ptr(5, "minDomains", Kind::Int32),
        Field::ptr(6, "nodeAffinityPolicy", Kind::Str),
        Field::ptr(7, "nodeTaintsPolicy", Kind::Str),
        Field::list(8, "matchLabelKeys", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.PodOS`
static CORE_V1_POD_OS: Message = Message {
    name: "PodOS",
    fields: &[Field::val(1, "name", Kind::Str)],
};
/// `k8s.io.api.core.v1.PodSchedulingGate`
static CORE_V1_POD_SCHEDULING_GATE: Message = Message {
    name: "PodSchedulingGate",
    fields: &[Field::val(1, "name", Kind::Str)],
};
/// `k8s.io.api.core.v1.PodResourceClaim`
static CORE_V1_POD_RESOURCE_CLAIM: Message = Message {
    name: "PodResourceClaim",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::ptr(3, "resourceClaimName", Kind::Str),
        Field::ptr(4, "resourceClaimTemplateName", Kind::Str),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions`
static META_V1_DELETE_OPTIONS: Message = Message {
    name: "DeleteOptions",
    fields: &[
        Field::ptr(1, "gracePeriodSeconds", Kind::Int64),
        Field::ptr(2, "preconditions", Kind::Msg(&META_V1_PRECONDITIONS)),
        Field::ptr(3, "orphanDependents", Kind::Bool),
        Field::ptr(4, "propagationPolicy", Kind::Str),
        Field::list(5, "dryRun", Kind::Str),
        Field::ptr(
            6,
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            Kind::Bool,
        ),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.Preconditions`
static META_V1_PRECONDITIONS: Message = Message {
    name: "Preconditions",
    fields: &[
        Field::ptr(1, "uid", Kind::Str),
        Field::ptr(2, "resourceVersion", Kind::Str),
    ],
};
/// `k8s.io.api.policy.v1.Eviction`
static POLICY_V1_EVICTION: Message = Message {
    name: "Eviction",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::ptr(2, "deleteOptions", Kind::Msg(&META_V1_DELETE_OPTIONS)),
    ],
};
/// `k8s.io.api.certificates.v1.CertificateSigningRequest`
static CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST: Message = Message {
    name: "CertificateSigningRequest",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(
            2,
            "spec",
            Kind::Msg(&CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_SPEC),
        ),
        Field::val(
            3,
            "status",
            Kind::Msg(&CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_STATUS),
        ),
    ],
};
/// `k8s.io.api.certificates.v1.CertificateSigningRequestSpec`
static CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_SPEC: Message = Message {
    name: "CertificateSigningRequestSpec",
    fields: &[
        Field::val(1, "request", Kind::Bytes),
        Field::val(2, "username", Kind::Str),
        Field::val(3, "uid", Kind::Str),
        Field::list(4, "groups", Kind::Str),
        Field::list(5, "usages", Kind::Str),
        Field::map(6, "extra", Kind::StringList),
        Field::val(7, "signerName", Kind::Str),
        Field::ptr(8, "expirationSeconds", Kind::Int32),
    ],
};
/// `k8s.io.api.certificates.v1.CertificateSigningRequestStatus`
static CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_STATUS: Message = Message {
    name: "CertificateSigningRequestStatus",
    fields: &[
        Field::list(
            1,
            "conditions",
            Kind::Msg(&CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_CONDITION),
        ),
        Field::val(2, "certificate", Kind::Bytes),
    ],
};
/// `k8s.io.api.certificates.v1.CertificateSigningRequestCondition`
static CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST_CONDITION: Message = Message {
    name: "CertificateSigningRequestCondition",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::val(2, "reason", Kind::Str),
        Field::val(3, "message", Kind::Str),
        Field::val(4, "lastUpdateTime", Kind::Time),
        Field::val(5, "lastTransitionTime", Kind::Time),
        Field::val(6, "status", Kind::Str),
    ],
};
/// `k8s.io.api.autoscaling.v1.HorizontalPodAutoscaler`
static AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER: Message = Message {
    name: "HorizontalPodAutoscaler",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(
            2,
            "spec",
            Kind::Msg(&AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER_SPEC),
        ),
    ],
};
/// `k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerSpec`
static AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER_SPEC: Message = Message {
    name: "HorizontalPodAutoscalerSpec",
    fields: &[
        Field::val(
            1,
            "scaleTargetRef",
            Kind::Msg(&AUTOSCALING_V1_CROSS_VERSION_OBJECT_REFERENCE),
        ),
        Field::ptr(2, "minReplicas", Kind::Int32),
        Field::val(3, "maxReplicas", Kind::Int32),
        Field::ptr(4, "targetCPUUtilizationPercentage", Kind::Int32),
    ],
};
/// `k8s.io.api.autoscaling.v1.CrossVersionObjectReference`
static AUTOSCALING_V1_CROSS_VERSION_OBJECT_REFERENCE: Message = Message {
    name: "CrossVersionObjectReference",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(2, "name", Kind::Str),
        Field::val(3, "apiVersion", Kind::Str),
    ],
};
/// `k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler`
static AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER: Message = Message {
    name: "HorizontalPodAutoscaler",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(
            2,
            "spec",
            Kind::Msg(&AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER_SPEC),
        ),
    ],
};
/// `k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerSpec`
static AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER_SPEC: Message = Message {
    name: "HorizontalPodAutoscalerSpec",
    fields: &[
        Field::val(
            1,
            "scaleTargetRef",
            Kind::Msg(&AUTOSCALING_V2_CROSS_VERSION_OBJECT_REFERENCE),
        ),
        Field::ptr(2, "minReplicas", Kind::Int32),
        Field::val(3, "maxReplicas", Kind::Int32),
        Field::list(4, "metrics", Kind::Msg(&AUTOSCALING_V2_METRIC_SPEC)),
        Field::ptr(
            5,
            "behavior",
            Kind::Msg(&AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER_BEHAVIOR),
        ),
    ],
};
/// `k8s.io.api.autoscaling.v2.CrossVersionObjectReference`
static AUTOSCALING_V2_CROSS_VERSION_OBJECT_REFERENCE: Message = Message {
    name: "CrossVersionObjectReference",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(2, "name", Kind::Str),
        Field::val(3, "apiVersion", Kind::Str),
    ],
};
/// `k8s.io.api.autoscaling.v2.MetricSpec`
static AUTOSCALING_V2_METRIC_SPEC: Message = Message {
    name: "MetricSpec",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::ptr(2, "object", Kind::Msg(&AUTOSCALING_V2_OBJECT_METRIC_SOURCE)),
        Field::ptr(3, "pods", Kind::Msg(&AUTOSCALING_V2_PODS_METRIC_SOURCE)),
        Field::ptr(
            4,
            "resource",
            Kind::Msg(&AUTOSCALING_V2_RESOURCE_METRIC_SOURCE),
        ),
        Field::ptr(
            5,
            "external",
            Kind::Msg(&AUTOSCALING_V2_EXTERNAL_METRIC_SOURCE),
        ),
        Field::ptr(
            7,
            "containerResource",
            Kind::Msg(&AUTOSCALING_V2_CONTAINER_RESOURCE_METRIC_SOURCE),
        ),
    ],
};
/// `k8s.io.api.autoscaling.v2.ObjectMetricSource`
static AUTOSCALING_V2_OBJECT_METRIC_SOURCE: Message = Message {
    name: "ObjectMetricSource",
    fields: &[
        Field::val(
            1,
            "describedObject",
            Kind::Msg(&AUTOSCALING_V2_CROSS_VERSION_OBJECT_REFERENCE),
        ),
        Field::val(2, "target", Kind::Msg(&AUTOSCALING_V2_METRIC_TARGET)),
        Field::val(3, "metric", Kind::Msg(&AUTOSCALING_V2_METRIC_IDENTIFIER)),
    ],
};
/// `k8s.io.api.autoscaling.v2.MetricTarget`
static AUTOSCALING_V2_METRIC_TARGET: Message = Message {
    name: "MetricTarget",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::ptr(2, "value", Kind::Quantity),
        Field::ptr(3, "averageValue", Kind::Quantity),
        Field::ptr(4, "averageUtilization", Kind::Int32),
    ],
};
/// `k8s.io.api.autoscaling.v2.MetricIdentifier`
static AUTOSCALING_V2_METRIC_IDENTIFIER: Message = Message {
    name: "MetricIdentifier",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::ptr(2, "selector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
    ],
};
/// `k8s.io.api.autoscaling.v2.PodsMetricSource`
static AUTOSCALING_V2_PODS_METRIC_SOURCE: Message = Message {
    name: "PodsMetricSource",
    fields: &[
        Field::val(1, "metric", Kind::Msg(&AUTOSCALING_V2_METRIC_IDENTIFIER)),
        Field::val(2, "target", Kind::Msg(&AUTOSCALING_V2_METRIC_TARGET)),
    ],
};
/// `k8s.io.api.autoscaling.v2.ResourceMetricSource`
static AUTOSCALING_V2_RESOURCE_METRIC_SOURCE: Message = Message {
    name: "ResourceMetricSource",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "target", Kind::Msg(&AUTOSCALING_V2_METRIC_TARGET)),
    ],
};
/// `k8s.io.api.autoscaling.v2.ContainerResourceMetricSource`
static AUTOSCALING_V2_CONTAINER_RESOURCE_METRIC_SOURCE: Message = Message {
    name: "ContainerResourceMetricSource",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "target", Kind::Msg(&AUTOSCALING_V2_METRIC_TARGET)),
        Field::val(3, "container", Kind::Str),
    ],
};
/// `k8s.io.api.autoscaling.v2.ExternalMetricSource`
static AUTOSCALING_V2_EXTERNAL_METRIC_SOURCE: Message = Message {
    name: "ExternalMetricSource",
    fields: &[
        Field::val(1, "metric", Kind::Msg(&AUTOSCALING_V2_METRIC_IDENTIFIER)),
        Field::val(2, "target", Kind::Msg(&AUTOSCALING_V2_METRIC_TARGET)),
    ],
};
/// `k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerBehavior`
static AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER_BEHAVIOR: Message = Message {
    name: "HorizontalPodAutoscalerBehavior",
    fields: &[
        Field::ptr(1, "scaleUp", Kind::Msg(&AUTOSCALING_V2_HPA_SCALING_RULES)),
        Field::ptr(2, "scaleDown", Kind::Msg(&AUTOSCALING_V2_HPA_SCALING_RULES)),
    ],
};
/// `k8s.io.api.autoscaling.v2.HPAScalingRules`
static AUTOSCALING_V2_HPA_SCALING_RULES: Message = Message {
    name: "HPAScalingRules",
    fields: &[
        Field::ptr(1, "selectPolicy", Kind::Str),
        Field::list(2, "policies", Kind::Msg(&AUTOSCALING_V2_HPA_SCALING_POLICY)),
        Field::ptr(3, "stabilizationWindowSeconds", Kind::Int32),
        Field::ptr(4, "tolerance", Kind::Quantity),
    ],
};
/// `k8s.io.api.autoscaling.v2.HPAScalingPolicy`
static AUTOSCALING_V2_HPA_SCALING_POLICY: Message = Message {
    name: "HPAScalingPolicy",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::val(2, "value", Kind::Int32),
        Field::val(3, "periodSeconds", Kind::Int32),
    ],
};
/// `k8s.io.api.authorization.v1.SelfSubjectAccessReview`
static AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(
            2,
            "spec",
            Kind::Msg(&AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW_SPEC),
        ),
    ],
};
/// `k8s.io.api.authorization.v1.SelfSubjectAccessReviewSpec`
static AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        Field::ptr(
            1,
            "resourceAttributes",
            Kind::Msg(&AUTHORIZATION_V1_RESOURCE_ATTRIBUTES),
        ),
        Field::ptr(
            2,
            "nonResourceAttributes",
            Kind::Msg(&AUTHORIZATION_V1_NON_RESOURCE_ATTRIBUTES),
        ),
    ],
};
/// `k8s.io.api.authorization.v1.ResourceAttributes`
static AUTHORIZATION_V1_RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        Field::val(1, "namespace", Kind::Str),
        Field::val(2, "verb", Kind::Str),
        Field::val(3, "group", Kind::Str),
        Field::val(4, "version", Kind::Str),
        Field::val(5, "resource", Kind::Str),
        Field::val(6, "subresource", Kind::Str),
        Field::val(7, "name", Kind::Str),
        Field::ptr(
            8,
            "fieldSelector",
            Kind::Msg(&AUTHORIZATION_V1_FIELD_SELECTOR_ATTRIBUTES),
        ),
        Field::ptr(
            9,
            "labelSelector",
            Kind::Msg(&AUTHORIZATION_V1_LABEL_SELECTOR_ATTRIBUTES),
        ),
    ],
};
/// `k8s.io.api.authorization.v1.FieldSelectorAttributes`
static AUTHORIZATION_V1_FIELD_SELECTOR_ATTRIBUTES: Message = Message {
    name: "FieldSelectorAttributes",
    fields: &[
        Field::val(1, "rawSelector", Kind::Str),
        Field::list(
            2,
            "requirements",
            Kind::Msg(&META_V1_FIELD_SELECTOR_REQUIREMENT),
        ),
    ],
};
/// `k8s.io.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement`
static META_V1_FIELD_SELECTOR_REQUIREMENT: Message = Message {
    name: "FieldSelectorRequirement",
    fields: &[
        Field::val(1, "key", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::list(3, "values", Kind::Str),
    ],
};
/// `k8s.io.api.authorization.v1.LabelSelectorAttributes`
static AUTHORIZATION_V1_LABEL_SELECTOR_ATTRIBUTES: Message = Message {
    name: "LabelSelectorAttributes",
    fields: &[
        Field::val(1, "rawSelector", Kind::Str),
        Field::list(
            2,
            "requirements",
            Kind::Msg(&META_V1_LABEL_SELECTOR_REQUIREMENT),
        ),
    ],
};
/// `k8s.io.api.authorization.v1.NonResourceAttributes`
static AUTHORIZATION_V1_NON_RESOURCE_ATTRIBUTES: Message = Message {
    name: "NonResourceAttributes",
    fields: &[
        Field::val(1, "path", Kind::Str),
        Field::val(2, "verb", Kind::Str),
    ],
};
/// `k8s.io.api.authorization.v1.SelfSubjectRulesReview`
static AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW: Message = Message {
    name: "SelfSubjectRulesReview",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(
            2,
            "spec",
            Kind::Msg(&AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW_SPEC),
        ),
    ],
};
/// `k8s.io.api.authorization.v1.SelfSubjectRulesReviewSpec`
static AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectRulesReviewSpec",
    fields: &[Field::val(1, "namespace", Kind::Str)],
};
/// `k8s.io.api.core.v1.ConfigMap`
static CORE_V1_CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::map(2, "data", Kind::Str),
        Field::map(3, "binaryData", Kind::Bytes),
        Field::ptr(4, "immutable", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.Secret`
static CORE_V1_SECRET: Message = Message {
    name: "Secret",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::map(2, "data", Kind::Bytes),
        Field::val(3, "type", Kind::Str),
        Field::map(4, "stringData", Kind::Str),
        Field::ptr(5, "immutable", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.ServiceAccount`
static CORE_V1_SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::list(2, "secrets", Kind::Msg(&CORE_V1_OBJECT_REFERENCE)),
        Field::list(
            3,
            "imagePullSecrets",
            Kind::Msg(&CORE_V1_LOCAL_OBJECT_REFERENCE),
        ),
        Field::ptr(4, "automountServiceAccountToken", Kind::Bool),
    ],
};
/// `k8s.io.api.core.v1.ObjectReference`
static CORE_V1_OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(2, "namespace", Kind::Str),
        Field::val(3, "name", Kind::Str),
        Field::val(4, "uid", Kind::Str),
        Field::val(5, "apiVersion", Kind::Str),
        Field::val(6, "resourceVersion", Kind::Str),
        Field::val(7, "fieldPath", Kind::Str),
    ],
};
/// `k8s.io.api.apps.v1.Deployment`
static APPS_V1_DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&APPS_V1_DEPLOYMENT_SPEC)),
    ],
};
/// `k8s.io.api.apps.v1.DeploymentSpec`
static APPS_V1_DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        Field::ptr(1, "replicas", Kind::Int32),
        Field::ptr(2, "selector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::val(3, "template", Kind::Msg(&CORE_V1_POD_TEMPLATE_SPEC)),
        Field::val(4, "strategy", Kind::Msg(&APPS_V1_DEPLOYMENT_STRATEGY)),
        Field::val(5, "minReadySeconds", Kind::Int32),
        Field::ptr(6, "revisionHistoryLimit", Kind::Int32),
        Field::val(7, "paused", Kind::Bool),
        Field::ptr(9, "progressDeadlineSeconds", Kind::Int32),
    ],
};
/// `k8s.io.api.core.v1.PodTemplateSpec`
static CORE_V1_POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_POD_SPEC)),
    ],
};
/// `k8s.io.api.apps.v1.DeploymentStrategy`
static APPS_V1_DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::ptr(
            2,
            "rollingUpdate",
            Kind::Msg(&APPS_V1_ROLLING_UPDATE_DEPLOYMENT),
        ),
    ],
};
/// `k8s.io.api.apps.v1.RollingUpdateDeployment`
static APPS_V1_ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "RollingUpdateDeployment",
    fields: &[
        Field::ptr(1, "maxUnavailable", Kind::IntOrString),
        Field::ptr(2, "maxSurge", Kind::IntOrString),
    ],
};
/// `k8s.io.api.batch.v1.Job`
static BATCH_V1_JOB: Message = Message {
    name: "Job",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&BATCH_V1_JOB_SPEC)),
    ],
};
/// `k8s.io.api.batch.v1.JobSpec`
static BATCH_V1_JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        Field::ptr(1, "parallelism", Kind::Int32),
        Field::ptr(2, "completions", Kind::Int32),
        Field::ptr(3, "activeDeadlineSeconds", Kind::Int64),
        Field::ptr(4, "selector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::ptr(5, "manualSelector", Kind::Bool),
        Field::val(6, "template", Kind::Msg(&CORE_V1_POD_TEMPLATE_SPEC)),
        Field::ptr(7, "backoffLimit", Kind::Int32),
        Field::ptr(8, "ttlSecondsAfterFinished", Kind::Int32),
        Field::ptr(9, "completionMode", Kind::Str),
        Field::ptr(10, "suspend", Kind::Bool),
        Field::ptr(
            11,
            "podFailurePolicy",
            Kind::Msg(&BATCH_V1_POD_FAILURE_POLICY),
        ),
        Field::ptr(12, "backoffLimitPerIndex", Kind::Int32),
        Field::ptr(13, "maxFailedIndexes", Kind::Int32),
        Field::ptr(14, "podReplacementPolicy", Kind::Str),
        Field::ptr(15, "managedBy", Kind::Str),
        Field::ptr(16, "successPolicy", Kind::Msg(&BATCH_V1_SUCCESS_POLICY)),
    ],
};
/// `k8s.io.api.batch.v1.PodFailurePolicy`
static BATCH_V1_POD_FAILURE_POLICY: Message = Message {
    name: "PodFailurePolicy",
    fields: &[Field::list(
        1,
        "rules",
        Kind::Msg(&BATCH_V1_POD_FAILURE_POLICY_RULE),
    )],
};
/// `k8s.io.api.batch.v1.PodFailurePolicyRule`
static BATCH_V1_POD_FAILURE_POLICY_RULE: Message = Message {
    name: "PodFailurePolicyRule",
    fields: &[
        Field::val(1, "action", Kind::Str),
        Field::ptr(
            2,
            "onExitCodes",
            Kind::Msg(&BATCH_V1_POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT),
        ),
        Field::list(
            3,
            "onPodConditions",
            Kind::Msg(&BATCH_V1_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN),
        ),
    ],
};
/// `k8s.io.api.batch.v1.PodFailurePolicyOnExitCodesRequirement`
static BATCH_V1_POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message {
    name: "PodFailurePolicyOnExitCodesRequirement",
    fields: &[
        Field::ptr(1, "containerName", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::list(3, "values", Kind::Int32),
    ],
};
/// `k8s.io.api.batch.v1.PodFailurePolicyOnPodConditionsPattern`
static BATCH_V1_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = Message {
    name: "PodFailurePolicyOnPodConditionsPattern",
    fields: &[
        Field::val(1, "type", Kind::Str),
        Field::val(2, "status", Kind::Str),
    ],
};
/// `k8s.io.api.batch.v1.SuccessPolicy`
static BATCH_V1_SUCCESS_POLICY: Message = Message {
    name: "SuccessPolicy",
    fields: &[Field::list(
        1,
        "rules",
        Kind::Msg(&BATCH_V1_SUCCESS_POLICY_RULE),
    )],
};
/// `k8s.io.api.batch.v1.SuccessPolicyRule`
static BATCH_V1_SUCCESS_POLICY_RULE: Message = Message {
    name: "SuccessPolicyRule",
    fields: &[
        Field::ptr(1, "succeededIndexes", Kind::Str),
        Field::ptr(2, "succeededCount", Kind::Int32),
    ],
};
/// `k8s.io.api.batch.v1.CronJob`
static BATCH_V1_CRON_JOB: Message = Message {
    name: "CronJob",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&BATCH_V1_CRON_JOB_SPEC)),
    ],
};
/// `k8s.io.api.batch.v1.CronJobSpec`
static BATCH_V1_CRON_JOB_SPEC: Message = Message {
    name: "CronJobSpec",
    fields: &[
        Field::val(1, "schedule", Kind::Str),
        Field::ptr(2, "startingDeadlineSeconds", Kind::Int64),
        Field::val(3, "concurrencyPolicy", Kind::Str),
        Field::ptr(4, "suspend", Kind::Bool),
        Field::val(5, "jobTemplate", Kind::Msg(&BATCH_V1_JOB_TEMPLATE_SPEC)),
        Field::ptr(6, "successfulJobsHistoryLimit", Kind::Int32),
        Field::ptr(7, "failedJobsHistoryLimit", Kind::Int32),
        Field::ptr(8, "timeZone", Kind::Str),
    ],
};
/// `k8s.io.api.batch.v1.JobTemplateSpec`
static BATCH_V1_JOB_TEMPLATE_SPEC: Message = Message {
    name: "JobTemplateSpec",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&BATCH_V1_JOB_SPEC)),
    ],
};
/// `k8s.io.api.core.v1.Service`
static CORE_V1_SERVICE: Message = Message {
    name: "Service",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_SERVICE_SPEC)),
    ],
};
/// `k8s.io.api.core.v1.ServiceSpec`
static CORE_V1_SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        Field::list(1, "ports", Kind::Msg(&CORE_V1_SERVICE_PORT)),
        Field::map(2, "selector", Kind::Str),
        Field::val(3, "clusterIP", Kind::Str),
        Field::val(4, "type", Kind::Str),
        Field::list(5, "externalIPs", Kind::Str),
        Field::val(7, "sessionAffinity", Kind::Str),
        Field::val(8, "loadBalancerIP", Kind::Str),
        Field::list(9, "loadBalancerSourceRanges", Kind::Str),
        Field::val(10, "externalName", Kind::Str),
        Field::val(11, "externalTrafficPolicy", Kind::Str),
        Field::val(12, "healthCheckNodePort", Kind::Int32),
        Field::val(13, "publishNotReadyAddresses", Kind::Bool),
        Field::ptr(
            14,
            "sessionAffinityConfig",
            Kind::Msg(&CORE_V1_SESSION_AFFINITY_CONFIG),
        ),
        Field::ptr(17, "ipFamilyPolicy", Kind::Str),
        Field::list(18, "clusterIPs", Kind::Str),
        Field::list(19, "ipFamilies", Kind::Str),
        Field::ptr(20, "allocateLoadBalancerNodePorts", Kind::Bool),
        Field::ptr(21, "loadBalancerClass", Kind::Str),
        Field::ptr(22, "internalTrafficPolicy", Kind::Str),
        Field::ptr(23, "trafficDistribution", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.ServicePort`
static CORE_V1_SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "protocol", Kind::Str),
        Field::val(3, "port", Kind::Int32),
        Field::val(4, "targetPort", Kind::IntOrString),
        Field::val(5, "nodePort", Kind::Int32),
        Field::ptr(6, "appProtocol", Kind::Str),
    ],
};
/// `k8s.io.api.core.v1.SessionAffinityConfig`
static CORE_V1_SESSION_AFFINITY_CONFIG: Message = Message {
    name: "SessionAffinityConfig",
    fields: &[Field::ptr(
        1,
        "clientIP",
        Kind::Msg(&CORE_V1_CLIENT_IP_CONFIG),
    )],
};
/// `k8s.io.api.core.v1.ClientIPConfig`
static CORE_V1_CLIENT_IP_CONFIG: Message = Message {
    name: "ClientIPConfig",
    fields: &[Field::ptr(1, "timeoutSeconds", Kind::Int32)],
};
/// `k8s.io.api.rbac.v1.Role`
static RBAC_V1_ROLE: Message = Message {
    name: "Role",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::list(2, "rules", Kind::Msg(&RBAC_V1_POLICY_RULE)),
    ],
};
/// `k8s.io.api.rbac.v1.PolicyRule`
static RBAC_V1_POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        Field::list(1, "verbs", Kind::Str),
        Field::list(2, "apiGroups", Kind::Str),
        Field::list(3, "resources", Kind::Str),
        Field::list(4, "resourceNames", Kind::Str),
        Field::list(5, "nonResourceURLs", Kind::Str),
    ],
};
/// `k8s.io.api.rbac.v1.RoleBinding`
static RBAC_V1_ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::list(2, "subjects", Kind::Msg(&RBAC_V1_SUBJECT)),
        Field::val(3, "roleRef", Kind::Msg(&RBAC_V1_ROLE_REF)),
    ],
};
/// `k8s.io.api.rbac.v1.Subject`
static RBAC_V1_SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(2, "apiGroup", Kind::Str),
        Field::val(3, "name", Kind::Str),
        Field::val(4, "namespace", Kind::Str),
    ],
};
/// `k8s.io.api.rbac.v1.RoleRef`
static RBAC_V1_ROLE_REF: Message = Message {
    name: "RoleRef",
    fields: &[
        Field::val(1, "apiGroup", Kind::Str),
        Field::val(2, "kind", Kind::Str),
        Field::val(3, "name", Kind::Str),
    ],
};
/// `k8s.io.api.rbac.v1.ClusterRole`
static RBAC_V1_CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::list(2, "rules", Kind::Msg(&RBAC_V1_POLICY_RULE)),
        Field::ptr(3, "aggregationRule", Kind::Msg(&RBAC_V1_AGGREGATION_RULE)),
    ],
};
/// `k8s.io.api.rbac.v1.AggregationRule`
static RBAC_V1_AGGREGATION_RULE: Message = Message {
    name: "AggregationRule",
    fields: &[Field::list(
        1,
        "clusterRoleSelectors",
        Kind::Msg(&META_V1_LABEL_SELECTOR),
    )],
};
/// `k8s.io.api.rbac.v1.ClusterRoleBinding`
static RBAC_V1_CLUSTER_ROLE_BINDING: Message = Message {
    name: "ClusterRoleBinding",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::list(2, "subjects", Kind::Msg(&RBAC_V1_SUBJECT)),
        Field::val(3, "roleRef", Kind::Msg(&RBAC_V1_ROLE_REF)),
    ],
};
/// `k8s.io.api.core.v1.ResourceQuota`
static CORE_V1_RESOURCE_QUOTA: Message = Message {
    name: "ResourceQuota",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&CORE_V1_RESOURCE_QUOTA_SPEC)),
    ],
};
/// `k8s.io.api.core.v1.ResourceQuotaSpec`
static CORE_V1_RESOURCE_QUOTA_SPEC: Message = Message {
    name: "ResourceQuotaSpec",
    fields: &[
        Field::map(1, "hard", Kind::Quantity),
        Field::list(2, "scopes", Kind::Str),
        Field::ptr(3, "scopeSelector", Kind::Msg(&CORE_V1_SCOPE_SELECTOR)),
    ],
};
/// `k8s.io.api.core.v1.ScopeSelector`
static CORE_V1_SCOPE_SELECTOR: Message = Message {
    name: "ScopeSelector",
    fields: &[Field::list(
        1,
        "matchExpressions",
        Kind::Msg(&CORE_V1_SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
    )],
};
/// `k8s.io.api.core.v1.ScopedResourceSelectorRequirement`
static CORE_V1_SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    name: "ScopedResourceSelectorRequirement",
    fields: &[
        Field::val(1, "scopeName", Kind::Str),
        Field::val(2, "operator", Kind::Str),
        Field::list(3, "values", Kind::Str),
    ],
};
/// `k8s.io.api.scheduling.v1.PriorityClass`
static SCHEDULING_V1_PRIORITY_CLASS: Message = Message {
    name: "PriorityClass",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "value", Kind::Int32),
        Field::val(3, "globalDefault", Kind::Bool),
        Field::val(4, "description", Kind::Str),
        Field::ptr(5, "preemptionPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.policy.v1.PodDisruptionBudget`
static POLICY_V1_POD_DISRUPTION_BUDGET: Message = Message {
    name: "PodDisruptionBudget",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&POLICY_V1_POD_DISRUPTION_BUDGET_SPEC)),
    ],
};
/// `k8s.io.api.policy.v1.PodDisruptionBudgetSpec`
static POLICY_V1_POD_DISRUPTION_BUDGET_SPEC: Message = Message {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        Field::ptr(1, "minAvailable", Kind::IntOrString),
        Field::ptr(2, "selector", Kind::Msg(&META_V1_LABEL_SELECTOR)),
        Field::ptr(3, "maxUnavailable", Kind::IntOrString),
        Field::ptr(4, "unhealthyPodEvictionPolicy", Kind::Str),
    ],
};
/// `k8s.io.api.networking.v1.Ingress`
static NETWORKING_V1_INGRESS: Message = Message {
    name: "Ingress",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&NETWORKING_V1_INGRESS_SPEC)),
    ],
};
/// `k8s.io.api.networking.v1.IngressSpec`
static NETWORKING_V1_INGRESS_SPEC: Message = Message {
    name: "IngressSpec",
    fields: &[
        Field::ptr(
            1,
            "defaultBackend",
            Kind::Msg(&NETWORKING_V1_INGRESS_BACKEND),
        ),
        Field::list(2, "tls", Kind::Msg(&NETWORKING_V1_INGRESS_TLS)),
        Field::list(3, "rules", Kind::Msg(&NETWORKING_V1_INGRESS_RULE)),
        Field::ptr(4, "ingressClassName", Kind::Str),
    ],
};
/// `k8s.io.api.networking.v1.IngressBackend`
static NETWORKING_V1_INGRESS_BACKEND: Message = Message {
    name: "IngressBackend",
    fields: &[
        Field::ptr(
            3,
            "resource",
            Kind::Msg(&CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE),
        ),
        Field::ptr(
            4,
            "service",
            Kind::Msg(&NETWORKING_V1_INGRESS_SERVICE_BACKEND),
        ),
    ],
};
/// `k8s.io.api.networking.v1.IngressServiceBackend`
static NETWORKING_V1_INGRESS_SERVICE_BACKEND: Message = Message {
    name: "IngressServiceBackend",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "port", Kind::Msg(&NETWORKING_V1_SERVICE_BACKEND_PORT)),
    ],
};
/// `k8s.io.api.networking.v1.ServiceBackendPort`
static NETWORKING_V1_SERVICE_BACKEND_PORT: Message = Message {
    name: "ServiceBackendPort",
    fields: &[
        Field::val(1, "name", Kind::Str),
        Field::val(2, "number", Kind::Int32),
    ],
};
/// `k8s.io.api.networking.v1.IngressTLS`
static NETWORKING_V1_INGRESS_TLS: Message = Message {
    name: "IngressTLS",
    fields: &[
        Field::list(1, "hosts", Kind::Str),
        Field::val(2, "secretName", Kind::Str),
    ],
};
/// `k8s.io.api.networking.v1.IngressRule`
static NETWORKING_V1_INGRESS_RULE: Message = Message {
    name: "IngressRule",
    fields: &[
        Field::val(1, "host", Kind::Str),
        Field::inline(2, Kind::Msg(&NETWORKING_V1_INGRESS_RULE_VALUE)),
    ],
};
/// `k8s.io.api.networking.v1.IngressRuleValue`
static NETWORKING_V1_INGRESS_RULE_VALUE: Message = Message {
    name: "IngressRuleValue",
    fields: &[Field::ptr(
        1,
        "http",
        Kind::Msg(&NETWORKING_V1_HTTP_INGRESS_RULE_VALUE),
    )],
};
/// `k8s.io.api.networking.v1.HTTPIngressRuleValue`
static NETWORKING_V1_HTTP_INGRESS_RULE_VALUE: Message = Message {
    name: "HTTPIngressRuleValue",
    fields: &[Field::list(
        1,
        "paths",
        Kind::Msg(&NETWORKING_V1_HTTP_INGRESS_PATH),
    )],
};
/// `k8s.io.api.networking.v1.HTTPIngressPath`
static NETWORKING_V1_HTTP_INGRESS_PATH: Message = Message {
    name: "HTTPIngressPath",
    fields: &[
        Field::val(1, "path", Kind::Str),
        Field::val(2, "backend", Kind::Msg(&NETWORKING_V1_INGRESS_BACKEND)),
        Field::ptr(3, "pathType", Kind::Str),
    ],
};
/// `k8s.io.api.authentication.v1.TokenRequest`
static AUTHENTICATION_V1_TOKEN_REQUEST: Message = Message {
    name: "TokenRequest",
    fields: &[
        Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META)),
        Field::val(2, "spec", Kind::Msg(&AUTHENTICATION_V1_TOKEN_REQUEST_SPEC)),
    ],
};
/// `k8s.io.api.authentication.v1.TokenRequestSpec`
static AUTHENTICATION_V1_TOKEN_REQUEST_SPEC: Message = Message {
    name: "TokenRequestSpec",
    fields: &[
        Field::list(1, "audiences", Kind::Str),
        Field::ptr(
            3,
            "boundObjectRef",
            Kind::Msg(&AUTHENTICATION_V1_BOUND_OBJECT_REFERENCE),
        ),
        Field::ptr(4, "expirationSeconds", Kind::Int64),
    ],
};
/// `k8s.io.api.authentication.v1.BoundObjectReference`
static AUTHENTICATION_V1_BOUND_OBJECT_REFERENCE: Message = Message {
    name: "BoundObjectReference",
    fields: &[
        Field::val(1, "kind", Kind::Str),
        Field::val(2, "apiVersion", Kind::Str),
        Field::val(3, "name", Kind::Str),
        Field::val(4, "uid", Kind::Str),
    ],
};
/// `k8s.io.api.authentication.v1.SelfSubjectReview`
static AUTHENTICATION_V1_SELF_SUBJECT_REVIEW: Message = Message {
    name: "SelfSubjectReview",
    fields: &[Field::val(1, "metadata", Kind::Msg(&META_V1_OBJECT_META))],
};

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures and bodies are built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    /// A body kubectl really sent, captured from a fake API server.
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/protobuf/{name}.pb",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn key(field: u64, wire: u8) -> Vec<u8> {
        varint(field << 3 | u64::from(wire))
    }

    fn len_field(field: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = key(field, WIRE_LEN);
        out.extend(varint(bytes.len() as u64));
        out.extend_from_slice(bytes);
        out
    }

    fn varint_field(field: u64, v: u64) -> Vec<u8> {
        let mut out = key(field, WIRE_VARINT);
        out.extend(varint(v));
        out
    }

    fn body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [
            len_field(1, api_version.as_bytes()),
            len_field(2, kind.as_bytes()),
        ]
        .concat();
        let unknown = [len_field(1, &type_meta), len_field(2, raw)].concat();
        [MAGIC.as_slice(), &unknown].concat()
    }

    fn meta_named(name: &str) -> Vec<u8> {
        len_field(1, &len_field(1, name.as_bytes()))
    }

    #[test]
    fn kubectl_create_namespace_1_32_and_1_33() {
        let want = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        assert_eq!(decode(&fixture("kubectl-1.32-ns")).unwrap(), want);
        assert_eq!(decode(&fixture("kubectl-1.33-ns")).unwrap(), want);
    }

    #[test]
    fn kubectl_auth_can_i_resource_subresource_and_non_resource() {
        assert_eq!(
            decode(&fixture("kubectl-1.33-cani")).unwrap(),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}})
        );
        let sub = decode(&fixture("kubectl-1.33-canisub")).unwrap();
        assert_eq!(sub["spec"]["resourceAttributes"]["subresource"], "log");
        assert_eq!(
            sub["spec"]["resourceAttributes"]["namespace"],
            "kube-system"
        );
        let non_resource = decode(&fixture("kubectl-1.33-caninr")).unwrap();
        assert_eq!(
            non_resource["spec"],
            json!({"nonResourceAttributes": {"path": "/logs", "verb": "get"}})
        );
    }

    #[test]
    fn kubectl_auth_can_i_list_sends_rules_review() {
        assert_eq!(
            decode(&fixture("kubectl-1.33-canilist")).unwrap(),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": "default"}})
        );
    }

    #[test]
    fn configmap_and_secret_bytes_are_base64_like_kubernetes_json() {
        let cm = decode(&fixture("kubectl-1.33-cm")).unwrap();
        assert_eq!(cm["data"], json!({"k": "v"}));
        // --from-file with non-UTF-8 content lands in binaryData.
        let bin = decode(&fixture("kubectl-1.33-cmfile")).unwrap();
        assert_eq!(bin["binaryData"], json!({"bin": "YWJjAP8="}));
        let secret = decode(&fixture("kubectl-1.33-secret")).unwrap();
        assert_eq!(secret["data"], json!({"k": "dg=="}));
        let docker = decode(&fixture("kubectl-1.33-secrettls")).unwrap();
        assert_eq!(docker["type"], "kubernetes.io/dockerconfigjson");
    }

    #[test]
    fn kubectl_create_deployment_keeps_pointer_replicas() {
        let want = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "busybox", "image": "busybox"}]}}}});
        assert_eq!(decode(&fixture("kubectl-1.33-deploy")).unwrap(), want);
        assert_eq!(decode(&fixture("kubectl-1.32-deploy")).unwrap(), want);
    }

    #[test]
    fn int_or_string_and_quantity_from_real_bodies() {
        let svc = decode(&fixture("kubectl-1.33-svc")).unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
        );
        let pdb = decode(&fixture("kubectl-1.33-pdb")).unwrap();
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        let quota = decode(&fixture("kubectl-1.33-quota")).unwrap();
        assert_eq!(quota["spec"]["hard"], json!({"cpu": "1", "pods": "10"}));
    }

    #[test]
    fn ingress_rule_value_is_inlined_as_in_kubernetes_json() {
        let ing = decode(&fixture("kubectl-1.33-ing")).unwrap();
        assert_eq!(
            ing["spec"]["rules"][0],
            json!({"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}})
        );
    }

    #[test]
    fn every_captured_kubectl_body_decodes() {
        let names = [
            "cr", "crb", "cronjob", "job", "pc", "rb", "role", "sa", "svcnp", "token", "whoami",
        ];
        for name in names {
            let value = decode(&fixture(&format!("kubectl-1.33-{name}"))).unwrap();
            assert!(value["kind"].is_string(), "{name}");
        }
        let job = decode(&fixture("kubectl-1.33-job")).unwrap();
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            json!(["echo", "hi"])
        );
    }

    #[test]
    fn every_truncation_of_a_real_body_is_an_error_not_a_panic() {
        let full = fixture("kubectl-1.33-deploy");
        // Cut before the raw field or after it (where only the empty
        // contentEncoding and contentType follow, 4 bytes), the envelope is
        // still well-formed; any cut inside raw must be refused.
        let raw_start = body("apps/v1", "Deployment", &[]).len() - 2;
        let raw_end = full.len() - 4;
        for end in 0..full.len() {
            let result = decode(&full[..end]);
            if end > raw_start && end < raw_end {
                assert!(result.is_err(), "prefix of {end} bytes");
            }
        }
        assert!(decode(&full).is_ok());
    }

    #[test]
    fn truncation_names_the_message() {
        // Keep the outer length honest so the cut is inside ObjectMeta.
        let mut meta = key(1, WIRE_LEN);
        meta.extend(varint(5));
        meta.extend([0x0a, 0x05, b'a', b'b']);
        meta.push(0);
        let err = decode(&body("v1", "Namespace", &meta)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protobuf body: unexpected end of message decoding ObjectMeta"
        );
    }

    #[test]
    fn bad_magic_is_rejected() {
        assert_eq!(
            decode(b"{\"kind\":\"Namespace\"}"),
            Err(ProtobufError::BadMagic)
        );
        assert_eq!(decode(b"k8s"), Err(ProtobufError::BadMagic));
    }

    #[test]
    fn unsupported_kind_asks_for_json() {
        let err = decode(&body("v1", "Foo", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protobuf body: kind \"Foo\" in \"v1\" is not supported; send JSON"
        );
        // The same kind under another group version is not guessed at.
        assert!(decode(&body("apps/v1beta1", "Deployment", &[])).is_err());
    }

    #[test]
    fn compressed_raw_is_refused() {
        let mut b = body("v1", "Namespace", &meta_named("x"));
        b.extend(len_field(3, b"gzip"));
        assert_eq!(
            decode(&b),
            Err(ProtobufError::UnsupportedEncoding("gzip".into()))
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        // A newer kubectl may send fields this table does not know yet.
        let mut meta = len_field(1, b"x");
        meta.extend(varint_field(99, 300));
        meta.extend(key(98, WIRE_FIXED64));
        meta.extend([0; 8]);
        meta.extend(key(97, WIRE_FIXED32));
        meta.extend([0; 4]);
        meta.extend(len_field(96, b"whatever"));
        let mut raw = len_field(1, &meta);
        raw.extend(len_field(50, &[0x0a, 0x00]));
        let v = decode(&body("v1", "Namespace", &raw)).unwrap();
        assert_eq!(v["metadata"], json!({"name": "x"}));
    }

    #[test]
    fn deep_nesting_inside_unknown_fields_is_skipped_without_recursion() {
        let mut nested = Vec::new();
        for _ in 0..10_000 {
            nested = len_field(1, &nested);
        }
        let raw = [meta_named("x"), len_field(77, &nested)].concat();
        assert!(decode(&body("v1", "Namespace", &raw)).is_ok());
    }

    /// A self-recursive table, which no served kind has, to reach the limit.
    static NESTED: Message = Message {
        name: "Nested",
        fields: &[Field::val(1, "child", Kind::Msg(&NESTED))],
    };

    #[test]
    fn nesting_beyond_the_limit_is_rejected() {
        let mut nested = Vec::new();
        for _ in 0..MAX_DEPTH + 2 {
            nested = len_field(1, &nested);
        }
        assert_eq!(
            decode_message(&nested, &NESTED, 0),
            Err(ProtobufError::TooDeep)
        );
        let mut shallow = Vec::new();
        for _ in 0..MAX_DEPTH {
            shallow = len_field(1, &shallow);
        }
        assert!(decode_message(&shallow, &NESTED, 0).is_ok());
    }

    #[test]
    fn malformed_keys_and_varints_are_errors() {
        // Wire type 3 (start group) is never used by Kubernetes.
        let group = [meta_named("x"), key(5, 3)].concat();
        assert!(matches!(
            decode(&body("v1", "Namespace", &group)),
            Err(ProtobufError::BadKey { wire: 3, .. })
        ));
        let field_zero = [meta_named("x"), vec![0x00, 0x00]].concat();
        assert!(matches!(
            decode(&body("v1", "Namespace", &field_zero)),
            Err(ProtobufError::BadKey { field: 0, .. })
        ));
        let overlong = [key(99, WIRE_VARINT), vec![0xff; 10], vec![0x01]].concat();
        assert!(matches!(
            decode(&body("v1", "Namespace", &overlong)),
            Err(ProtobufError::VarintOverflow(_))
        ));
    }

    #[test]
    fn known_field_with_wrong_wire_type_is_an_error() {
        // metadata sent as a varint.
        let raw = varint_field(1, 5);
        assert_eq!(
            decode(&body("v1", "Namespace", &raw)),
            Err(ProtobufError::WrongWireType {
                message: "Namespace",
                field: "metadata",
                wire: WIRE_VARINT
            })
        );
    }

    #[test]
    fn invalid_utf8_in_a_string_is_an_error() {
        let raw = len_field(1, &len_field(1, &[0xff, 0xfe]));
        assert_eq!(
            decode(&body("v1", "Namespace", &raw)),
            Err(ProtobufError::InvalidUtf8 {
                message: "ObjectMeta",
                field: "name"
            })
        );
    }

    #[test]
    fn object_meta_fields_follow_kubernetes_json() {
        let owner = [
            len_field(1, b"ReplicaSet"),
            len_field(3, b"rs"),
            len_field(4, b"u1"),
            len_field(5, b"apps/v1"),
            varint_field(6, 1),
        ]
        .concat();
        let managed = [
            len_field(1, b"kubectl"),
            len_field(2, b"Apply"),
            len_field(3, b"v1"),
            len_field(4, &varint_field(1, 1_700_000_000)),
            len_field(6, b"FieldsV1"),
            len_field(7, &len_field(1, br#"{"f:data":{}}"#)),
        ]
        .concat();
        let meta = [
            len_field(1, b"x"),
            len_field(3, b"ns"),
            varint_field(7, 0),
            len_field(
                8,
                &[varint_field(1, 1_700_000_000), varint_field(2, 5)].concat(),
            ),
            // Pointer fields keep a zero value.
            varint_field(10, 0),
            len_field(11, &[len_field(1, b"a"), len_field(2, b"b")].concat()),
            len_field(12, &len_field(1, b"empty-value")),
            len_field(13, &owner),
            len_field(14, b"f1"),
            len_field(14, b"f2"),
            len_field(17, &managed),
        ]
        .concat();
        let v = decode(&body("v1", "ConfigMap", &len_field(1, &meta))).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "x", "namespace": "ns",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "deletionGracePeriodSeconds": 0,
                "labels": {"a": "b"}, "annotations": {"empty-value": ""},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "u1", "controller": true}],
                "finalizers": ["f1", "f2"],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                    "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {}}}]})
        );
    }

    #[test]
    fn immutable_false_and_negative_int32_survive() {
        // ConfigMap.immutable is *bool: false was set on purpose.
        let raw = [meta_named("c"), varint_field(4, 0)].concat();
        let cm = decode(&body("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(cm["immutable"], false);
        // PriorityClass.value is int32; negatives travel as ten-byte varints.
        let raw = [meta_named("p"), varint_field(2, (-5i64) as u64)].concat();
        let pc = decode(&body("scheduling.k8s.io/v1", "PriorityClass", &raw)).unwrap();
        assert_eq!(pc["value"], -5);
    }

    static CODES: Message = Message {
        name: "Codes",
        fields: &[Field::list(1, "codes", Kind::Int32)],
    };

    #[test]
    fn int_or_string_string_form_and_packed_repeated_ints() {
        let max_unavailable = [varint_field(1, 1), len_field(3, b"25%")].concat();
        let raw = [
            meta_named("p"),
            len_field(2, &len_field(3, &max_unavailable)),
        ]
        .concat();
        let pdb = decode(&body("policy/v1", "PodDisruptionBudget", &raw)).unwrap();
        assert_eq!(pdb["spec"]["maxUnavailable"], "25%");
        // A packed repeated int32 (exit codes) decodes like unpacked ones.
        let packed = [varint(1), varint(2), varint(3)].concat();
        let v = decode_message(
            &[len_field(1, &packed), varint_field(1, 4)].concat(),
            &CODES,
            0,
        );
        assert_eq!(Value::Object(v.unwrap()), json!({"codes": [1, 2, 3, 4]}));
    }

    #[test]
    fn base64_matches_go_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn protobuf_content_types() {
        assert!(is_protobuf_content_type(
            "application/vnd.kubernetes.protobuf"
        ));
        assert!(is_protobuf_content_type(
            "application/vnd.kubernetes.protobuf; charset=utf-8"
        ));
        assert!(is_protobuf_content_type(
            "Application/VND.Kubernetes.Protobuf"
        ));
        assert!(!is_protobuf_content_type("application/json"));
        assert!(!is_protobuf_content_type(
            "application/vnd.kubernetes.protobuf-x"
        ));
    }

    #[test]
    fn kubectl_certificate_approve_keeps_the_csr_status() {
        // The approval subresource reads status.conditions, so unlike other
        // kinds the CertificateSigningRequest table describes its status.
        let csr = decode(&fixture("kubectl-1.33-certapprove")).unwrap();
        let condition = &csr["status"]["conditions"][0];
        assert_eq!(condition["type"], "Approved");
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["reason"], "KubectlApprove");
        assert_eq!(csr["spec"]["request"], "YQ==");
        assert_eq!(csr["metadata"]["resourceVersion"], "1");
    }

    #[test]
    fn kubectl_debug_node_pod_inlines_the_volume_source() {
        let pod = decode(&fixture("kubectl-1.33-debugnode")).unwrap();
        let spec = &pod["spec"];
        assert_eq!(
            spec["volumes"],
            json!([{"name": "host-root", "hostPath": {"path": "/"}}])
        );
        assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(
            (&spec["hostPID"], &spec["hostNetwork"], &spec["nodeName"]),
            (&json!(true), &json!(true), &json!("n1"))
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{"name": "host-root", "mountPath": "/host"}])
        );
    }

    #[test]
    fn kubectl_drain_delete_options_and_hand_built_ones() {
        assert_eq!(
            decode(&fixture("kubectl-1.33-drain-deleteoptions")).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions"})
        );
        // gracePeriodSeconds is *int64: 0 means "delete now", not "unset".
        let raw = [
            varint_field(1, 0),
            len_field(2, &len_field(1, b"uid-1")),
            len_field(4, b"Foreground"),
            len_field(5, b"All"),
        ]
        .concat();
        assert_eq!(
            decode(&body("meta.k8s.io/v1", "DeleteOptions", &raw)).unwrap(),
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                "gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"},
                "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }

    #[test]
    fn kubectl_autoscale_sends_autoscaling_v2() {
        assert_eq!(
            decode(&fixture("kubectl-1.33-autoscale")).unwrap(),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "d"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                    "maxReplicas": 3}})
        );
    }

    #[test]
    fn csr_extra_values_are_plain_string_arrays() {
        // Go's ExtraValue is []string; protobuf wraps it as {items}.
        let extra = [
            len_field(1, b"scopes"),
            len_field(2, &[len_field(1, b"a"), len_field(1, b"b")].concat()),
        ]
        .concat();
        let raw = [meta_named("c"), len_field(2, &len_field(6, &extra))].concat();
        let csr = decode(&body(
            "certificates.k8s.io/v1",
            "CertificateSigningRequest",
            &raw,
        ))
        .unwrap();
        assert_eq!(csr["spec"]["extra"], json!({"scopes": ["a", "b"]}));
    }

    #[test]
    fn pod_affinity_and_ephemeral_containers_survive_a_debug_copy() {
        // `kubectl debug --copy-to` (1.32) sends a copy of an existing pod,
        // so less common PodSpec fields must come through too.
        let requirement = [
            len_field(1, b"zone"),
            len_field(2, b"In"),
            len_field(3, b"a"),
        ]
        .concat();
        let term = len_field(1, &requirement);
        let node_selector = len_field(1, &term);
        let affinity = len_field(1, &len_field(1, &node_selector));
        let common = [len_field(1, b"dbg"), len_field(2, b"busybox")].concat();
        let ephemeral = [len_field(1, &common), len_field(2, b"app")].concat();
        let spec = [len_field(18, &affinity), len_field(34, &ephemeral)].concat();
        let raw = [meta_named("p"), len_field(2, &spec)].concat();
        let pod = decode(&body("v1", "Pod", &raw)).unwrap();
        assert_eq!(
            pod["spec"],
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": [{"matchExpressions":
                        [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "ephemeralContainers": [{"name": "dbg", "image": "busybox", "targetContainerName": "app"}]})
        );
    }
}

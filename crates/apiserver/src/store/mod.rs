//! The store: where objects live, with one global revision.
//!
//! Every write gets the next revision of a single, monotonic counter; that
//! revision is the object's `metadata.resourceVersion`, and lists carry the
//! revision they were read at, so clients can compare and resume anything on
//! one scale. Writes carry preconditions (the revision the writer read) and
//! fail with [`StoreError::Conflict`] when someone else wrote in between:
//! optimistic concurrency, as Kubernetes does it.
//!
//! Watches are served from an in-memory history of recent events
//! ([`WatchHub`]); a watch can resume from any revision still in it and gets
//! [`StoreError::Expired`] (HTTP 410) after that.
//!
//! [`Store`] is a trait so that a backend for clusters that outgrow one
//! machine can sit beside the embedded one ([`redb::RedbStore`]).

pub mod encryption;
pub mod redb;
mod watch;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

pub use watch::{Event, EventType, WatchHub, Watcher};

/// An object as stored: its JSON and the revision it was last written at.
#[derive(Debug, Clone)]
pub struct Stored {
    pub rev: u64,
    pub value: Arc<Value>,
}

/// One write. Keys are built by the registry (`/<group>/<plural>/[<ns>/]<name>`).
#[derive(Debug)]
pub enum WriteOp {
    /// Fails with [`StoreError::AlreadyExists`] when the key is taken.
    Create { key: String, value: Value },
    /// Fails with [`StoreError::NotFound`] when the key is absent and with
    /// [`StoreError::Conflict`] when `expected` is set and is not the
    /// object's current revision.
    Update {
        key: String,
        value: Value,
        expected: Option<u64>,
    },
    /// Removes the key; the returned object is its last state, stamped with
    /// the deletion's revision (as Kubernetes' DELETED events are).
    Delete { key: String, expected: Option<u64> },
}

impl WriteOp {
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("store is shutting down")]
    Closed,
    #[error("storage error: {0}")]
    Backend(String),
}

/// A consistent read of every object under a prefix.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Stored>,
    /// The store's revision at the moment of the read.
    pub rev: u64,
    /// Set when `limit` cut the listing short: the key to continue after.
    pub continue_after: Option<String>,
}

/// The storage backend behind the API server.
pub trait Store: Send + Sync + 'static {
    /// The newest committed revision.
    fn revision(&self) -> u64;
    fn get(&self, key: &str) -> Result<Option<Stored>, StoreError>;
    /// Objects whose key starts with `prefix`, in key order, starting after
    /// `after` when given, at most `limit` when given.
    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Listing, StoreError>;
    /// Apply one write durably. Returns only once the write is on disk.
    fn write(&self, op: WriteOp) -> BoxFuture<'static, Result<Stored, StoreError>>;
    /// Events for keys under `prefix` with a revision greater than `from`.
    fn watch(&self, prefix: &str, from: u64) -> Result<Watcher, StoreError>;
    /// The newest revision whose events have all been handed to watchers.
    fn published_revision(&self) -> u64;
    /// Counters since the store was opened.
    fn stats(&self) -> StoreStats;
}

/// How much work the store has done: with group commit, `commits` is far
/// below `writes` under concurrent load, and every commit is one fsync.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    pub writes: u64,
    pub commits: u64,
}

/// Set `metadata.resourceVersion` in an object.
pub(crate) fn stamp_revision(value: &mut Value, rev: u64) {
    if let Some(obj) = value.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
    }
}

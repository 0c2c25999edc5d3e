//! The embedded store: one redb file, written by one thread that commits
//! writes in groups.
//!
//! Durability costs an fsync per commit. Committing each write alone would
//! cap throughput at the disk's fsync rate, so the writer thread takes
//! every write waiting in its queue, applies them in one transaction,
//! commits once and only then answers each caller: every 2xx is on disk,
//! and under load one fsync covers many writes.
//!
//! Layout: table `objects` maps a key to `[8-byte big-endian revision][JSON]`;
//! table `meta` holds the current revision under `revision`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use super::encryption::{self, Transformer};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    stamp_revision, Event, EventType, Listing, Store, StoreError, StoreStats, Stored, WatchHub,
    Watcher, WriteOp,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// Most writes one commit takes by default, so that one slow batch cannot
/// delay the first caller in it without bound.
pub const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

/// redb-backed [`Store`].
pub struct RedbStore {
    db: Arc<Database>,
    /// `None` only while dropping, to stop the writer.
    tx: Option<mpsc::Sender<(WriteOp, Reply)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    hub: Arc<WatchHub>,
    revision: Arc<AtomicU64>,
    stats: Arc<Counters>,
    /// Encryption at rest for the resources it names.
    seal: Option<Arc<Transformer>>,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl Drop for RedbStore {
    /// Stop the writer after it finished what is queued, so that the file
    /// is closed (and can be opened again) once the store is gone.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A record: the revision (8 bytes, big-endian, never encrypted: writes
/// compare it) and the object's JSON, sealed when `seal` covers `key`.
fn encode(
    seal: Option<&Transformer>,
    key: &str,
    rev: u64,
    value: &Value,
) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(value).map_err(backend)?;
    let body = match seal {
        Some(t) => t.seal(key, json).map_err(backend)?,
        None => json,
    };
    let mut buf = Vec::with_capacity(8 + body.len());
    buf.extend_from_slice(&rev.to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

fn decode(seal: Option<&Transformer>, key: &str, bytes: &[u8]) -> Result<Stored, StoreError> {
    if bytes.len() < 8 {
        return Err(StoreError::Backend(
            "corrupt record: shorter than its revision".into(),
        ));
    }
    let (rev, body) = bytes.split_at(8);
    let rev = u64::from_be_bytes(rev.try_into().map_err(backend)?);
    let json = encryption::open_with(seal, key, body).map_err(backend)?;
    let value = serde_json::from_slice(&json).map_err(backend)?;
    Ok(Stored {
        rev,
        value: Arc::new(value),
    })
}

fn stored_rev(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl RedbStore {
    /// Open (or create) the store file at `path` and start its writer.
    pub fn open(path: &Path, history: usize) -> Result<Self, StoreError> {
        Self::open_with_batch(path, history, MAX_BATCH)
    }

    /// As [`RedbStore::open`], committing at most `max_batch` writes at
    /// once (1 turns group commit off; benchmarks compare the two).
    pub fn open_with_batch(
        path: &Path,
        history: usize,
        max_batch: usize,
    ) -> Result<Self, StoreError> {
        Self::open_sealed(path, history, max_batch, None)
    }

    /// As [`RedbStore::open_with_batch`], encrypting at rest what `seal`
    /// covers (see [`encryption`]).
    pub fn open_sealed(
        path: &Path,
        history: usize,
        max_batch: usize,
        seal: Option<Arc<Transformer>>,
    ) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let rev = {
            let txn = db.begin_write().map_err(backend)?;
            let rev = {
                txn.open_table(OBJECTS).map_err(backend)?;
                let meta = txn.open_table(META).map_err(backend)?;
                let rev = meta
                    .get(REVISION)
                    .map_err(backend)?
                    .map(|g| g.value())
                    .unwrap_or(0);
                rev
            };
            txn.commit().map_err(backend)?;
            rev
        };
        let db = Arc::new(db);
        let hub = Arc::new(WatchHub::new(rev, history, 4096));
        let revision = Arc::new(AtomicU64::new(rev));
        let stats = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            hub: hub.clone(),
            revision: revision.clone(),
            max_batch: max_batch.max(1),
            stats: stats.clone(),
            seal: seal.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        Ok(RedbStore {
            db,
            tx: Some(tx),
            writer: Some(writer),
            hub,
            revision,
            stats,
            seal,
        })
    }
}

impl Store for RedbStore {
    fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        match table.get(key).map_err(backend)? {
            Some(v) => decode(self.seal.as_deref(), key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Listing, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let rev = txn
            .open_table(META)
            .map_err(backend)?
            .get(REVISION)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0);
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        let start = after.unwrap_or(prefix);
        let mut items = Vec::new();
        let mut continue_after = None;
        for entry in table.range(start..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if after == Some(key) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                continue_after = items.last().map(|(k, _): &(String, Stored)| k.clone());
                break;
            }
            items.push((
                key.to_string(),
                decode(self.seal.as_deref(), key, v.value())?,
            ));
        }
        Ok(Listing {
            items: items.into_iter().map(|(_, s)| s).collect(),
            rev,
            continue_after,
        })
    }

    fn write(&self, op: WriteOp) -> BoxFuture<'static, Result<Stored, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = match &self.tx {
            Some(tx) => tx.send((op, reply)).map_err(|_| ()),
            None => Err(()),
        };
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    fn watch(&self, prefix: &str, from: u64) -> Result<Watcher, StoreError> {
        self.hub.subscribe(prefix, from)
    }

    fn published_revision(&self) -> u64 {
        self.hub.published()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            writes: self.stats.writes.load(Ordering::Relaxed),
            commits: self.stats.commits.load(Ordering::Relaxed),
        }
    }
}

struct Writer {
    seal: Option<Arc<Transformer>>,
    max_batch: usize,
    stats: Arc<Counters>,
    db: Arc<Database>,
    hub: Arc<WatchHub>,
    revision: Arc<AtomicU64>,
}

/// What one write did, kept until its batch commits.
struct Pending {
    reply: Reply,
    result: Result<(Stored, Arc<Event>), StoreError>,
}

impl Writer {
    fn run(self, rx: mpsc::Receiver<(WriteOp, Reply)>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        self.hub.close_all();
    }

    fn commit_batch(&self, batch: Vec<(WriteOp, Reply)>) {
        let start_rev = self.revision.load(Ordering::Acquire);
        match self.apply_batch(batch, start_rev) {
            Ok((pending, rev)) => {
                self.revision.store(rev, Ordering::Release);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .writes
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                let events = pending
                    .iter()
                    .filter_map(|p| p.result.as_ref().ok().map(|(_, e)| e.clone()))
                    .collect();
                self.hub.publish(events);
                for p in pending {
                    let _ = p.reply.send(p.result.map(|(s, _)| s));
                }
            }
            Err((replies, err)) => {
                tracing::error!(error = %err, "store commit failed");
                for r in replies {
                    let _ = r.send(Err(StoreError::Backend(err.to_string())));
                }
            }
        }
    }

    /// Apply every write of the batch in one transaction and commit it.
    /// A write whose precondition fails gets its error and does not stop
    /// the others; a failed commit fails them all.
    #[allow(clippy::type_complexity)]
    fn apply_batch(
        &self,
        batch: Vec<(WriteOp, Reply)>,
        mut rev: u64,
    ) -> Result<(Vec<Pending>, u64), (Vec<Reply>, StoreError)> {
        let mut txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => return Err((batch.into_iter().map(|(_, r)| r).collect(), backend(e))),
        };
        let _ = txn.set_durability(Durability::Immediate);
        let mut pending = Vec::with_capacity(batch.len());
        let outcome = (|| -> Result<u64, StoreError> {
            let mut table = txn.open_table(OBJECTS).map_err(backend)?;
            for (op, reply) in batch {
                let result = apply_one(&mut table, self.seal.as_deref(), op, rev + 1);
                if result.is_ok() {
                    rev += 1;
                }
                pending.push(Pending { reply, result });
            }
            drop(table);
            txn.open_table(META)
                .map_err(backend)?
                .insert(REVISION, rev)
                .map_err(backend)?;
            Ok(rev)
        })();
        let committed = outcome.and_then(|rev| txn.commit().map_err(backend).map(|_| rev));
        match committed {
            Ok(rev) => Ok((pending, rev)),
            Err(e) => Err((pending.into_iter().map(|p| p.reply).collect(), e)),
        }
    }
}

fn apply_one(
    table: &mut redb::Table<&str, &[u8]>,
    seal: Option<&Transformer>,
    op: WriteOp,
    rev: u64,
) -> Result<(Stored, Arc<Event>), StoreError> {
    let current = table
        .get(op.key())
        .map_err(backend)?
        .map(|g| g.value().to_vec());
    let (key, kind, value, prev) = match op {
        WriteOp::Create { key, mut value } => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            stamp_revision(&mut value, rev);
            table
                .insert(key.as_str(), encode(seal, &key, rev, &value)?.as_slice())
                .map_err(backend)?;
            (key, EventType::Added, value, None)
        }
        WriteOp::Update {
            key,
            mut value,
            expected,
        } => {
            let cur = current.ok_or(StoreError::NotFound)?;
            if expected.is_some_and(|e| e != stored_rev(&cur)) {
                return Err(StoreError::Conflict);
            }
            stamp_revision(&mut value, rev);
            table
                .insert(key.as_str(), encode(seal, &key, rev, &value)?.as_slice())
                .map_err(backend)?;
            let prev = decode(seal, &key, &cur)?.value;
            (key, EventType::Modified, value, Some(prev))
        }
        WriteOp::Delete { key, expected } => {
            let cur = current.ok_or(StoreError::NotFound)?;
            if expected.is_some_and(|e| e != stored_rev(&cur)) {
                return Err(StoreError::Conflict);
            }
            table.remove(key.as_str()).map_err(backend)?;
            let prev = decode(seal, &key, &cur)?.value;
            let mut value = (*prev).clone();
            stamp_revision(&mut value, rev);
            (key, EventType::Deleted, value, Some(prev))
        }
    };
    let raw = Bytes::from(serde_json::to_vec(&value).map_err(backend)?);
    let object = Arc::new(value);
    let event = Arc::new(Event {
        rev,
        kind,
        key,
        object: object.clone(),
        raw,
        prev,
    });
    Ok((Stored { rev, value: object }, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(dir: &Path) -> RedbStore {
        RedbStore::open(&dir.join("store.redb"), 1000).expect("open store")
    }

    #[tokio::test]
    async fn sealed_resources_never_reach_the_file_in_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("enc.yaml");
        Transformer::generate(&conf).expect("key");
        let seal = Arc::new(Transformer::load(&conf).expect("load"));
        let path = dir.path().join("store.redb");
        {
            let s =
                RedbStore::open_sealed(&path, 100, MAX_BATCH, Some(seal.clone())).expect("open");
            for (key, v) in [
                ("/core/secrets/default/db", "c2VjcmV0LXNhdWNl"),
                ("/core/configmaps/default/cm", "plain-as-day"),
            ] {
                s.write(WriteOp::Create {
                    key: key.into(),
                    value: json!({"metadata": {"name": "x"}, "data": {"v": v}}),
                })
                .await
                .expect("create");
            }
            s.write(WriteOp::Update {
                key: "/core/secrets/default/db".into(),
                value: json!({"metadata": {"name": "x"}, "data": {"v": "c2VjcmV0LXNhdWNl", "w": "bW9yZQ=="}}),
                expected: None,
            })
            .await
            .expect("update");
            let got = s
                .get("/core/secrets/default/db")
                .expect("get")
                .expect("present");
            assert_eq!(got.value["data"]["w"], "bW9yZQ==");
            let listed = s.list("/core/secrets/", None, None).expect("list");
            assert_eq!(listed.items[0].value["data"]["v"], "c2VjcmV0LXNhdWNl");
        }
        let bytes = std::fs::read(&path).expect("read store file");
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"plain-as-day"), "the check can see plaintext");
        assert!(
            !has(b"c2VjcmV0LXNhdWNl") && !has(b"bW9yZQ=="),
            "secret data in the file"
        );
        assert!(has(b"k8s:enc:aesgcm:v1:key1:"));
        // Without the key the Secret cannot be read, and says why.
        let s = RedbStore::open(&path, 100).expect("reopen");
        let err = s
            .get("/core/secrets/default/db")
            .expect_err("sealed")
            .to_string();
        assert!(err.contains("key1"), "{err}");
        assert!(s.get("/core/configmaps/default/cm").expect("get").is_some());
    }

    #[tokio::test]
    async fn revisions_are_global_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = open(dir.path());
            let a = s
                .write(WriteOp::Create {
                    key: "/core/cm/a/x".into(),
                    value: json!({"metadata":{"name":"x"}}),
                })
                .await
                .expect("create");
            let b = s
                .write(WriteOp::Create {
                    key: "/core/cm/a/y".into(),
                    value: json!({"metadata":{"name":"y"}}),
                })
                .await
                .expect("create");
            assert_eq!((a.rev, b.rev), (1, 2));
            assert_eq!(b.value["metadata"]["resourceVersion"], "2");
        }
        let s = open(dir.path());
        assert_eq!(s.revision(), 2);
        let got = s.get("/core/cm/a/x").expect("get").expect("present");
        assert_eq!(got.rev, 1);
        let c = s
            .write(WriteOp::Create {
                key: "/core/cm/a/z".into(),
                value: json!({}),
            })
            .await
            .expect("create");
        assert_eq!(c.rev, 3);
    }

    #[tokio::test]
    async fn stale_precondition_conflicts_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        let a = s
            .write(WriteOp::Create {
                key: "/k".into(),
                value: json!({"v":1}),
            })
            .await
            .expect("create");
        s.write(WriteOp::Update {
            key: "/k".into(),
            value: json!({"v":2}),
            expected: Some(a.rev),
        })
        .await
        .expect("update");
        let stale = s
            .write(WriteOp::Update {
                key: "/k".into(),
                value: json!({"v":3}),
                expected: Some(a.rev),
            })
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict)));
        assert_eq!(s.get("/k").expect("get").expect("present").value["v"], 2);
        assert!(matches!(
            s.write(WriteOp::Create {
                key: "/k".into(),
                value: json!({})
            })
            .await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(s.revision(), 2, "failed writes take no revision");
    }

    #[tokio::test]
    async fn concurrent_writes_are_grouped_and_all_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Arc::new(open(dir.path()));
        let futs: Vec<_> = (0..200)
            .map(|i| {
                s.write(WriteOp::Create {
                    key: format!("/core/cm/n/{i:03}"),
                    value: json!({"i": i}),
                })
            })
            .collect();
        let revs: Vec<u64> = futures::future::join_all(futs)
            .await
            .into_iter()
            .map(|r| r.expect("write").rev)
            .collect();
        let mut sorted = revs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
        let listing = s.list("/core/cm/n/", None, Some(150)).expect("list");
        assert_eq!(listing.items.len(), 150);
        assert_eq!(listing.rev, 200);
        let rest = s
            .list("/core/cm/n/", listing.continue_after.as_deref(), None)
            .expect("list rest");
        assert_eq!(rest.items.len(), 50);
        assert_eq!(rest.items[0].value["i"], 150);
    }

    #[tokio::test]
    async fn watch_sees_delete_with_new_revision_and_prev() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        s.write(WriteOp::Create {
            key: "/p/a".into(),
            value: json!({"metadata":{"name":"a"}}),
        })
        .await
        .expect("create");
        let mut w = s.watch("/p/", 1).expect("watch");
        s.write(WriteOp::Delete {
            key: "/p/a".into(),
            expected: None,
        })
        .await
        .expect("delete");
        let ev = w.events.recv().await.expect("event");
        assert_eq!(ev.kind, EventType::Deleted);
        assert_eq!(ev.object["metadata"]["resourceVersion"], "2");
        assert_eq!(
            ev.prev.as_ref().expect("prev")["metadata"]["resourceVersion"],
            "1"
        );
    }
}

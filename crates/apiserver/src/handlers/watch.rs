//! watch: a chunked stream of newline-delimited JSON events.
//!
//! A watch without a resourceVersion (or with `0`, or with
//! `sendInitialEvents=true`) first sends the current objects as ADDED events
//! in ascending revision order, then everything after the revision it read
//! them at. A watch from a revision no longer in history gets one ERROR
//! event carrying a 410 Expired Status, which tells clients to list again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::body::Body;
use super::read::{render_object, Selectors};
use super::{ApiServer, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::registry;
use crate::request::Accept;
use crate::store::{Event, EventType, StoreError, Watcher};

/// How often a quiet watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

type Frames = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

struct Stream {
    ctx: Ctx,
    sel: Selectors,
    name: Option<String>,
    tx: Frames,
}

impl Stream {
    fn matches(&self, v: &Value) -> bool {
        self.name
            .as_deref()
            .is_none_or(|n| registry::name_of(v) == n)
            && self.sel.matches(v)
    }

    /// Encode one event line. Plain JSON reuses the bytes serialized at
    /// commit time; Table and metadata renderings are built per watcher.
    fn line(&self, kind: &str, obj: &Value, raw: Option<&Bytes>) -> Bytes {
        let mut out = Vec::with_capacity(raw.map_or(256, |r| r.len() + 32));
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match (self.ctx.accept, raw) {
            (Accept::Json | Accept::Yaml, Some(raw)) => out.extend_from_slice(raw),
            _ => {
                let _ = serde_json::to_writer(&mut out, &render_object(&self.ctx, obj));
            }
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    async fn send(&self, line: Bytes) -> bool {
        self.tx.send(Ok(Frame::data(line))).await.is_ok()
    }

    /// Translate a store event for this watcher, honouring selector
    /// transitions: leaving the selection is a DELETED, entering it an ADDED.
    fn translate(&self, ev: &Event) -> Option<&'static str> {
        let now = self.matches(&ev.object);
        let before = ev.prev.as_deref().is_some_and(|p| self.matches(p));
        match ev.kind {
            EventType::Added if now => Some("ADDED"),
            EventType::Deleted if before || now => Some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
            _ => None,
        }
    }

    fn bookmark(&self, rev: u64, initial_end: bool) -> Bytes {
        let r = self.ctx.info.resource;
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta});
        let mut out = b"{\"type\":\"BOOKMARK\",\"object\":".to_vec();
        let _ = serde_json::to_writer(&mut out, &obj);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }
}

/// An ERROR event: its object is a Status, never rendered as the kind.
fn error_line(status: &Value) -> Bytes {
    let mut out = b"{\"type\":\"ERROR\",\"object\":".to_vec();
    let _ = serde_json::to_writer(&mut out, status);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

impl ApiServer {
    pub(super) fn watch(self: Arc<Self>, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let sel = Selectors::from_query(ctx)?;
        let rv =
            match ctx.query.get("resourceVersion") {
                None | Some("0") => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
            };
        let send_initial = match ctx.query.get("sendInitialEvents") {
            Some("true") => true,
            Some(_) => false,
            None => rv.is_none(),
        };
        let bookmarks = ctx.query.flag("allowWatchBookmarks");
        let timeout = ctx
            .query
            .u64("timeoutSeconds")?
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let prefix = registry::prefix(ctx.info.resource, ctx.info.namespace.as_deref());

        let (initial, from) = if send_initial {
            let listing = self
                .store
                .list(&prefix, None, None)
                .map_err(|e| ApiError::from_store(e, &ctx.info.qualified(), ""))?;
            let mut items = listing.items;
            items.sort_by_key(|s| s.rev);
            (items, listing.rev)
        } else {
            (Vec::new(), rv.unwrap_or_else(|| self.store.revision()))
        };
        let watcher = self.store.watch(&prefix, from);

        let (tx, rx) = mpsc::channel(64);
        let stream = Stream {
            ctx: Ctx {
                user: ctx.user.clone(),
                info: ctx.info.clone(),
                query: ctx.query.clone(),
                accept: ctx.accept,
                headers: ctx.headers.clone(),
                warnings: Default::default(),
            },
            sel,
            name: ctx.info.name.clone(),
            tx,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            let watcher = match watcher {
                Ok(w) => w,
                Err(e @ StoreError::Expired { .. }) => {
                    let status = ApiError::gone(e.to_string()).status();
                    stream.send(error_line(&status)).await;
                    return;
                }
                Err(e) => {
                    let status = ApiError::from_store(e, "", "").status();
                    stream.send(error_line(&status)).await;
                    return;
                }
            };
            for s in initial.iter().filter(|s| stream.matches(&s.value)) {
                let raw = Bytes::from(serde_json::to_vec(&*s.value).unwrap_or_default());
                if !stream
                    .send(stream.line("ADDED", &s.value, Some(&raw)))
                    .await
                {
                    return;
                }
            }
            if send_initial && bookmarks && !stream.send(stream.bookmark(from, true)).await {
                return;
            }
            run(stream, watcher, store, from, bookmarks, timeout).await;
        });
        let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }));
        let mut resp = Response::new(body.boxed());
        *resp.status_mut() = StatusCode::OK;
        let ct = match ctx.accept {
            Accept::Table { .. } => "application/json;as=Table;v=v1;g=meta.k8s.io",
            _ => "application/json",
        };
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ct),
        );
        Ok(resp)
    }
}

async fn run(
    stream: Stream,
    mut watcher: Watcher,
    store: Arc<dyn crate::store::Store>,
    from: u64,
    bookmarks: bool,
    timeout: Duration,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(BOOKMARK_EVERY);
    tick.tick().await;
    let mut last = from;
    loop {
        tokio::select! {
            ev = watcher.events.recv() => {
                // A closed channel means this watcher fell behind and was
                // dropped: end the stream, the client resumes from `last`.
                let Some(ev) = ev else { return };
                last = ev.rev;
                if let Some(kind) = stream.translate(&ev) {
                    if !stream.send(stream.line(kind, &ev.object, Some(&ev.raw))).await {
                        return;
                    }
                }
            }
            _ = tick.tick(), if bookmarks => {
                // Every event up to `published` has been handed to our
                // channel; if the channel is empty, we have sent them all.
                let published = store.published_revision();
                if watcher.events.is_empty() && published > last {
                    last = published;
                    if !stream.send(stream.bookmark(published, false)).await {
                        return;
                    }
                }
            }
            _ = stream.tx.closed() => return,
            _ = &mut deadline => return,
        }
    }
}

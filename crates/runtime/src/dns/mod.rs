//! Cluster DNS, served by every node agent.
//!
//! Pods find Services by name: each node runs a DNS server for the cluster
//! zone (`cluster.local` unless `--cluster-domain` says otherwise) on the
//! pod bridge's gateway address, port 53 — the nameserver a pod's
//! `resolv.conf` names (see [`resolv`]). It follows the Kubernetes DNS
//! specification; the records are described in [`index`].
//!
//! The server is an ordinary API client: reflectors of Services and
//! EndpointSlices feed an [`Index`], rebuilt when any of them changes (a
//! burst of changes is one rebuild), so a query never waits on the API
//! server and answers keep coming while it is away. Questions outside the
//! zone are relayed to upstream servers ([`forward`]), the host's
//! nameservers by default; an ExternalName's CNAME is followed there too,
//! so that a pod gets the address along with the alias.
//!
//! The wire protocol — parsing, encoding, truncation, the UDP and TCP
//! listeners — is hickory's (`hickory-server`, `hickory-proto`,
//! `hickory-net`); this module decides only what to answer.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> std::io::Result<()> {
//! use runtime::dns::{Dns, Forwarder, Sockets};
//! let upstream = Forwarder::new(vec!["192.0.2.53:53".parse().unwrap()], Default::default());
//! let dns = Dns::new("cluster.local", upstream).expect("a valid domain");
//! let sockets = Sockets::bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("serving on {}", sockets.local_addr());
//! tokio::spawn(dns.clone().watch(client));
//! dns.serve(vec![sockets]).await;
//! # Ok(()) }
//! ```

pub mod forward;
pub mod index;
pub mod resolv;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_net::runtime::Time;
use hickory_net::xfer::Protocol;
use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;

use crate::service::reflect;

pub use forward::Forwarder;
pub use index::{Answer, Index, World};

/// The default cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// How long a TCP client may stay silent before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Why the DNS server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{domain:?} is not a valid cluster domain: {reason}")]
    Domain { domain: String, reason: String },
}

/// The cluster DNS server of one node.
pub struct Dns {
    zone: Name,
    index: RwLock<Arc<Index>>,
    forwarder: Forwarder,
    /// Signalled after every rebuild (tests wait on it).
    pub rebuilt: Notify,
}

impl Dns {
    /// A server for `domain` with an empty zone (its SOA and `dns-version`
    /// only); [`Dns::watch`] fills it.
    pub fn new(domain: &str, forwarder: Forwarder) -> Result<Arc<Dns>, DnsError> {
        let zone = zone_name(domain)?;
        Ok(Arc::new(Dns {
            index: RwLock::new(Arc::new(Index::empty(&zone))),
            zone,
            forwarder,
            rebuilt: Notify::new(),
        }))
    }

    /// The zone served, fully qualified.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The current index.
    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the index (the watch does this; tests too).
    pub fn set_index(&self, index: Index) {
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        self.rebuilt.notify_waiters();
    }

    /// Keep the index in step with the cluster's Services and
    /// EndpointSlices until the watches end.
    pub async fn watch(self: Arc<Self>, client: kube::Client) {
        let changed = Arc::new(Notify::new());
        let services = reflect::<Service>(Api::all(client.clone()), changed.clone(), "dns");
        let slices = reflect::<EndpointSlice>(Api::all(client), changed.clone(), "dns");
        loop {
            changed.notified().await;
            // Let a burst of events land, then rebuild once.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (s, e) = (services.state(), slices.state());
            let index = Index::build(
                &World {
                    services: &s,
                    slices: &e,
                },
                &self.zone,
            );
            self.set_index(index);
        }
    }

    /// Answer on `sockets` until the process ends.
    pub async fn serve(self: Arc<Self>, sockets: Vec<Sockets>) {
        let mut server = Server::new(Handler(self));
        for s in sockets {
            server.register_socket(s.udp);
            server.register_listener(s.tcp, TCP_IDLE, 16);
        }
        if let Err(e) = server.block_until_done().await {
            tracing::warn!(error = %e, "dns server stopped");
        }
    }

    /// The whole answer to one question: from the index for the cluster
    /// zone (an ExternalName's CNAME followed upstream), else upstream's.
    /// None means no upstream answered (SERVFAIL).
    pub async fn resolve(&self, query: &Query, rd: bool, tcp: bool) -> Option<Reply> {
        let (name, qtype) = (query.name(), query.query_type());
        let index = self.index();
        let Some(mut answer) = index.lookup(name, qtype) else {
            // As asked (class included): the upstream's answer is relayed.
            let m = self.forwarder.forward(query, rd, tcp).await?;
            return Some(Reply {
                authoritative: false,
                truncated: m.metadata.truncation,
                answer: Answer {
                    code: m.metadata.response_code,
                    answers: m.answers,
                    authorities: m.authorities,
                    additionals: m.additionals,
                },
            });
        };
        if let Some(target) = external_target(&answer, qtype, &index) {
            let query = Query::query(target, qtype);
            // The alias stands even when its target cannot be resolved:
            // the pod's resolver may try elsewhere.
            if let Some(m) = self.forwarder.forward(&query, true, tcp).await {
                if m.metadata.response_code == ResponseCode::NoError {
                    answer.answers.extend(m.answers);
                }
            }
        }
        Some(Reply {
            authoritative: index.in_zone(name),
            truncated: false,
            answer,
        })
    }
}

/// What is sent back for one question.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Set for answers from the cluster zone.
    pub authoritative: bool,
    /// An upstream's truncated UDP answer: the pod retries over TCP.
    pub truncated: bool,
    pub answer: Answer,
}

/// The target of an answer that is only a CNAME out of the zone (an
/// ExternalName), when the question was for another type.
fn external_target(answer: &Answer, qtype: RecordType, index: &Index) -> Option<Name> {
    if matches!(qtype, RecordType::CNAME | RecordType::ANY) || answer.answers.len() != 1 {
        return None;
    }
    match &answer.answers[0].data {
        RData::CNAME(c) if !index.in_zone(&c.0) => Some(c.0.clone()),
        _ => None,
    }
}

/// `domain` as a fully qualified, lower-case zone name.
pub fn zone_name(domain: &str) -> Result<Name, DnsError> {
    let err = |reason: String| DnsError::Domain {
        domain: domain.to_string(),
        reason,
    };
    let trimmed = domain.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(err("it is empty".into()));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| err(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// A UDP socket and a TCP listener on one address and port.
pub struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// Bind UDP and TCP on `addr`; port 0 picks a port free for both.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Sockets> {
        let mut tries = 0;
        loop {
            let udp = UdpSocket::bind(addr).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => return Ok(Sockets { udp, tcp }),
                // The picked UDP port's TCP twin is taken: pick again.
                Err(e) if addr.port() == 0 && tries < 10 => {
                    tries += 1;
                    tracing::debug!(error = %e, port, "dns: TCP port taken; picking another");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.udp
            .local_addr()
            .or_else(|_| self.tcp.local_addr())
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// The hickory request handler: one question per message, answered by
/// [`Dns::resolve`].
struct Handler(Arc<Dns>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        let result = if request.metadata.op_code != OpCode::Query {
            meta.response_code = ResponseCode::NotImp;
            response_handle
                .send_response(builder.build_no_records(meta))
                .await
        } else if edns.is_some() && request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            meta.response_code = ResponseCode::BADVERS;
            response_handle
                .send_response(builder.build_no_records(meta))
                .await
        } else {
            match request.request_info() {
                Err(_) => {
                    meta.response_code = ResponseCode::FormErr;
                    response_handle
                        .send_response(builder.build_no_records(meta))
                        .await
                }
                Ok(info) => {
                    let tcp = request.protocol() != Protocol::Udp;
                    let reply = self
                        .0
                        .resolve(
                            info.query.original(),
                            request.metadata.recursion_desired,
                            tcp,
                        )
                        .await;
                    meta.recursion_available = true;
                    match reply {
                        None => {
                            meta.response_code = ResponseCode::ServFail;
                            response_handle
                                .send_response(builder.build_no_records(meta))
                                .await
                        }
                        Some(r) => {
                            meta.response_code = r.answer.code;
                            meta.authoritative = r.authoritative;
                            meta.truncation = r.truncated;
                            let a = &r.answer;
                            let none: [&Record; 0] = [];
                            let resp = builder.build(
                                meta,
                                a.answers.iter(),
                                a.authorities.iter(),
                                none,
                                a.additionals
                                    .iter()
                                    .filter(|r| r.record_type() != RecordType::OPT),
                            );
                            response_handle.send_response(resp).await
                        }
                    }
                }
            }
        };
        match result {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "dns: sending a response");
                let mut h = hickory_proto::op::Header {
                    metadata: Metadata::response_from_request(&request.metadata),
                    counts: Default::default(),
                };
                h.metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(h)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

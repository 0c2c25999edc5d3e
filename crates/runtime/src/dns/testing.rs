//! Test doubles: a tiny upstream DNS server on loopback, so forwarding is
//! tested without the internet, and a client that asks like a pod would.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::{Time, TokioRuntimeProvider};
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, Metadata, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;

/// An upstream that knows a few A records and says NXDOMAIN to the rest.
pub(crate) struct Upstream {
    pub addr: SocketAddr,
    /// Questions it was asked.
    pub asked: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Fixed {
    records: BTreeMap<String, Ipv4Addr>,
    asked: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl RequestHandler for Fixed {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let q = request.queries.queries().first();
        let name = q.map(|q| q.name().to_string().to_ascii_lowercase());
        let hit = name.as_ref().and_then(|n| self.records.get(n));
        let answer: Vec<Record> = match (hit, q) {
            (Some(ip), Some(q)) if q.query_type() == RecordType::A => vec![Record::from_rdata(
                Name::from(q.name().clone()),
                60,
                RData::A(A(*ip)),
            )],
            _ => Vec::new(),
        };
        if hit.is_none() {
            meta.response_code = ResponseCode::NXDomain;
        }
        let none: [&Record; 0] = [];
        let resp = builder.build(meta, answer.iter(), none, none, none);
        response_handle
            .send_response(resp)
            .await
            .unwrap_or_else(|_| {
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata: meta,
                    counts: Default::default(),
                })
            })
    }
}

/// Start an upstream on a free loopback port; `records` are
/// `("name.example.", ip)`.
pub(crate) async fn upstream(records: &[(&str, Ipv4Addr)]) -> Upstream {
    let sockets = super::Sockets::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind upstream");
    let addr = sockets.local_addr();
    let asked = Arc::new(AtomicUsize::new(0));
    let handler = Fixed {
        records: records.iter().map(|(n, ip)| (n.to_string(), *ip)).collect(),
        asked: asked.clone(),
    };
    let task = tokio::spawn(async move {
        let mut server = Server::new(handler);
        server.register_socket(sockets.udp);
        server.register_listener(sockets.tcp, Duration::from_secs(5), 4);
        let _ = server.block_until_done().await;
    });
    Upstream { addr, asked, task }
}

/// Ask `server` one question the way a stub resolver does (RD set), over
/// UDP or TCP, with hickory's client.
pub(crate) async fn ask(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let provider = TokioRuntimeProvider::new();
    let timeout = Duration::from_secs(5);
    let (client, bg) = if tcp {
        let (connect, handle) = TcpClientStream::new(server, None, Some(timeout), provider);
        let stream = connect.await.expect("connect over TCP");
        let (c, bg) = Client::<TokioRuntimeProvider>::new(stream, handle);
        (c, tokio::spawn(bg))
    } else {
        let stream = UdpClientStream::builder(server, provider)
            .with_timeout(Some(timeout))
            .build();
        let (c, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
        (c, tokio::spawn(bg))
    };
    let query = Query::query(Name::from_ascii(name).expect("name"), qtype);
    let resp = client
        .send(DnsRequest::from_query(query, DnsRequestOptions::default()))
        .next()
        .await
        .expect("a response")
        .expect("no transport error");
    bg.abort();
    resp.into_message()
}

/// The addresses among a message's answers, as text, sorted.
pub(crate) fn addresses(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// `dig @server -p PORT name TYPE EXTRA…` (Debian's dnsutils): its
/// stdout, or None when dig cannot be run.
pub(crate) fn dig(server: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> Option<String> {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            name,
            qtype,
            "+time=3",
            "+tries=1",
        ])
        .args(extra)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `dig` can be run: tests that need it fail, saying what to
/// install, when it cannot (they must not pass without their checks).
pub(crate) fn have_dig() -> bool {
    let ok = std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "dig is not installed (apt-get install dnsutils)");
    ok
}

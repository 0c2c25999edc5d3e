//! Questions outside the cluster zone go to upstream servers.
//!
//! The upstreams are the host's nameservers (`/etc/resolv.conf`) unless the
//! node names others. Each question is asked of them in order, over UDP —
//! or over TCP when the pod asked over TCP (typically after a truncated UDP
//! answer) — and the first real answer is relayed whatever its code, so an
//! upstream NXDOMAIN stays NXDOMAIN. SERVFAIL and REFUSED move on to the
//! next upstream; when none answers, the pod gets SERVFAIL.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, Query, ResponseCode};

/// The largest UDP answer asked of upstreams (the DNS flag day's value);
/// larger ones come back truncated and the pod retries over TCP.
const EDNS_PAYLOAD: u16 = 1232;

/// The default upstream port.
pub const DNS_PORT: u16 = 53;

/// Where out-of-zone questions go.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    /// How long one upstream gets to answer.
    timeout: Duration,
}

impl Forwarder {
    /// Forward to `upstreams`, in order, giving each `timeout`.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder { upstreams, timeout }
    }

    /// The upstreams, in the order they are asked.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The upstreams' answer to `query`; None when none answered.
    pub async fn forward(
        &self,
        query: &Query,
        recursion_desired: bool,
        tcp: bool,
    ) -> Option<Message> {
        let mut fallback = None;
        for &addr in &self.upstreams {
            match tokio::time::timeout(
                self.timeout,
                ask(addr, query, recursion_desired, tcp, self.timeout),
            )
            .await
            {
                Ok(Ok(m)) => match m.metadata.response_code {
                    ResponseCode::ServFail | ResponseCode::Refused => fallback = Some(m),
                    _ => return Some(m),
                },
                Ok(Err(e)) => tracing::debug!(upstream = %addr, error = %e, "dns: forwarding"),
                Err(_) => tracing::debug!(upstream = %addr, "dns: upstream timed out"),
            }
        }
        fallback
    }
}

/// Ask one upstream.
async fn ask(
    addr: SocketAddr,
    query: &Query,
    recursion_desired: bool,
    tcp: bool,
    timeout: Duration,
) -> Result<Message, String> {
    let mut opts = DnsRequestOptions::default();
    opts.recursion_desired = recursion_desired;
    opts.use_edns = true;
    opts.edns_payload_len = EDNS_PAYLOAD;
    let request = DnsRequest::from_query(query.clone(), opts);
    let provider = TokioRuntimeProvider::new();
    let (client, background) = if tcp {
        let (connect, handle) = TcpClientStream::new(addr, None, Some(timeout), provider);
        let stream = connect.await.map_err(|e| e.to_string())?;
        let (c, bg) = Client::<TokioRuntimeProvider>::with_timeout(stream, handle, timeout);
        (c, tokio::spawn(bg))
    } else {
        let stream = UdpClientStream::builder(addr, provider)
            .with_timeout(Some(timeout))
            .build();
        let (c, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
        (c, tokio::spawn(bg))
    };
    let answer = client.send(request).next().await;
    background.abort();
    match answer {
        Some(Ok(r)) => Ok(r.into_message()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no answer".into()),
    }
}

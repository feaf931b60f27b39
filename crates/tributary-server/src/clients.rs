//! What one client may hold of a node, so that no client can exhaust it: connections (on the gRPC
//! port and the Kinesis endpoint together) and live SubscribeToShard subscriptions. A client is a
//! remote IP address, as Kafka's `max.connections.per.ip`: it needs no credentials, so it also
//! bounds what an unauthenticated client can take (a TLS handshake starts only once its
//! connection is admitted).
//!
//! The other bounds on a client, documented with these in docs/SECURITY.md: request sizes (16 MiB
//! gRPC messages, 7 MiB Kinesis bodies), [`MAX_CONCURRENT_STREAMS`] calls in flight per
//! connection, the 10 s TLS handshake timeout, and the per-shard throughput limits. Shard
//! iterators are self-contained tokens that hold nothing on the node, so they need no limit of
//! their own.
//!
//! Nodes are clients of each other too (a few connections each); forwarded subscriptions are
//! counted on the node the client is connected to, not again where they are served.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tributary_types::{Error, ErrorCode};

use crate::telemetry;
use crate::tls::Port;

/// Connections a node accepts in all (`--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Connections one client (remote IP) may hold (`--max-connections-per-client`).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 1_000;
/// Live SubscribeToShard subscriptions one client may hold on the node it is connected to
/// (`--max-subscriptions-per-client`): two streams of 500 shards read by one worker.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 1_000;
/// HTTP/2 streams (calls in flight, subscriptions included) per gRPC connection: above the
/// subscription limit, so a worker whose subscriptions share one connection can still call.
pub const MAX_CONCURRENT_STREAMS: u32 = 2_048;

/// The limits a node enforces (flags, the config file, or the defaults above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimitsConfig {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_subscriptions_per_client: usize,
}

impl Default for ClientLimitsConfig {
    fn default() -> Self {
        ClientLimitsConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_subscriptions_per_client: DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT,
        }
    }
}

/// How many of a resource each client holds, and all of them together.
#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

#[derive(Default)]
struct Tally(Mutex<Counts>);

impl Tally {
    /// Counts one more for `client` when that stays within both limits.
    fn take(
        self: &Arc<Self>,
        client: IpAddr,
        max_total: usize,
        max_per_client: usize,
    ) -> Result<Slot, Refusal> {
        let mut counts = self.0.lock().expect("client tally poisoned");
        if counts.total >= max_total {
            return Err(Refusal::Total);
        }
        let held = counts.per_client.entry(client).or_default();
        if *held >= max_per_client {
            return Err(Refusal::PerClient);
        }
        *held += 1;
        counts.total += 1;
        Ok(Slot {
            tally: self.clone(),
            client,
        })
    }

    fn held_by(&self, client: IpAddr) -> usize {
        let counts = self.0.lock().expect("client tally poisoned");
        counts.per_client.get(&client).copied().unwrap_or(0)
    }
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerClient,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerClient => "per_client",
        }
    }
}

/// One connection or subscription a client holds; released when dropped.
pub struct Slot {
    tally: Arc<Tally>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.tally.0.lock().expect("client tally poisoned");
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

/// A node's per-client limits and what its clients hold now.
pub struct ClientLimits {
    config: ClientLimitsConfig,
    connections: Arc<Tally>,
    subscriptions: Arc<Tally>,
}

impl ClientLimits {
    pub fn new(config: ClientLimitsConfig) -> ClientLimits {
        ClientLimits {
            config,
            connections: Arc::default(),
            subscriptions: Arc::default(),
        }
    }

    /// A slot for a connection from `client`, or which limit refuses it.
    pub fn admit_connection(&self, client: IpAddr) -> Result<Slot, Refusal> {
        self.connections.take(
            client,
            self.config.max_connections,
            self.config.max_connections_per_client,
        )
    }

    /// A slot for a subscription of `client`, or LIMIT_EXCEEDED.
    pub fn admit_subscription(&self, client: IpAddr) -> Result<Slot, Error> {
        self.subscriptions
            .take(
                client,
                usize::MAX,
                self.config.max_subscriptions_per_client,
            )
            .map_err(|_| {
                telemetry::record_client_limit("subscriptions", Refusal::PerClient);
                Error::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "Client {client} already holds {} subscriptions on this node, the most allowed (--max-subscriptions-per-client); end one first",
                        self.subscriptions.held_by(client)
                    ),
                )
            })
    }
}

/// An accepted connection that holds its client's slot until it closes.
pub struct Counted<T> {
    inner: T,
    _slot: Slot,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T> Counted<T> {
    pub fn new(inner: T, slot: Slot) -> Counted<T> {
        Counted { inner, _slot: slot }
    }
}

/// Accepts the next connection its client may open: sets TCP_NODELAY (accepted sockets do not
/// inherit it, and without it every small answer waits for a delayed ACK) and closes at once,
/// counted, the ones over a limit.
pub async fn accept(
    listener: &TcpListener,
    limits: &ClientLimits,
    port: Port,
) -> (Counted<TcpStream>, SocketAddr) {
    let port = port.label();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(%error, port, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match limits.admit_connection(peer.ip()) {
            Ok(slot) => {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                return (Counted::new(tcp, slot), peer);
            }
            Err(refusal) => {
                telemetry::record_client_limit("connections", refusal);
                tracing::debug!(%peer, port, limit = refusal.as_str(), "refused a connection over the client limits");
                drop(tcp);
            }
        }
    }
}

/// A plain-TCP listener for axum that applies the client limits (see [`accept`]).
pub struct LimitedListener {
    listener: TcpListener,
    node: Arc<crate::Node>,
    port: Port,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, node: Arc<crate::Node>, port: Port) -> Self {
        LimitedListener {
            listener,
            node,
            port,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Counted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        accept(&self.listener, &self.node.client_limits, self.port).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn slots_count_per_client_and_in_all_and_free_on_drop() {
        let limits = ClientLimits::new(ClientLimitsConfig {
            max_connections: 3,
            max_connections_per_client: 2,
            max_subscriptions_per_client: 1,
        });
        let a1 = limits.admit_connection(ip(1)).unwrap();
        let _a2 = limits.admit_connection(ip(1)).unwrap();
        assert_eq!(
            limits.admit_connection(ip(1)).err(),
            Some(Refusal::PerClient)
        );
        let _b1 = limits.admit_connection(ip(2)).unwrap();
        assert_eq!(limits.admit_connection(ip(3)).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = limits.admit_connection(ip(1)).unwrap();

        let s1 = limits.admit_subscription(ip(1)).unwrap();
        let refused = limits.admit_subscription(ip(1)).err().unwrap();
        assert_eq!(refused.code, ErrorCode::LimitExceeded);
        assert!(refused.message.contains("127.0.0.1"), "{}", refused.message);
        let _other = limits.admit_subscription(ip(2)).unwrap();
        drop(s1);
        let _s2 = limits.admit_subscription(ip(1)).unwrap();
        assert_eq!(limits.subscriptions.held_by(ip(1)), 1);
    }
}

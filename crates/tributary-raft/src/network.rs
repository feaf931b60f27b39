//! The Raft transport: every group's RPCs to a peer node share one lazily connected gRPC channel.
//! A message names its group; the receiving node routes it to that group's Raft instance.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend, RaftTypeConfig};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tributary_proto::internal::internal_client::InternalClient;
use tributary_proto::internal::{RaftKind, RaftMessage};
use tributary_types::{GroupId, NodeId};

use crate::codec;

/// How long to wait for a TCP connection to a peer before calling it unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// HTTP/2 pings on every peer connection: a peer behind a partition drops packets rather than
/// refusing them, and without pings its calls would hang until their own timeouts. A connection
/// whose ping is unanswered for this long is closed and its calls fail at once.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Internal messages (snapshots, forwarded 5 MiB batches) may be large.
pub const MAX_INTERNAL_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// Log entry bytes one AppendEntries carries (but always at least one entry). openraft gives
/// each AppendEntries the heartbeat interval to complete and batches up to
/// `max_payload_entries` entries of up to 5 MiB each: a follower far behind (back from a crash
/// under load) was sent hundreds of megabytes per call, timed out every time and never caught
/// up. Sending a prefix and answering `PartialSuccess` keeps every call small.
pub const MAX_APPEND_ENTRIES_BYTES: usize = 4 * 1024 * 1024;

/// The name every node certificate carries and nodes check each other's certificates against,
/// whatever address a node is dialled at.
pub const NODE_SERVER_NAME: &str = "tributary-node";

/// An endpoint for node-to-node calls to `address`: `https` with this node's certificate when
/// `tls_opt` is given, with the timeouts and keepalives every peer connection uses. A connection
/// into a partition (or to an address the peer no longer has) is noticed by its pings and
/// replaced instead of failing every call forever.
pub fn peer_endpoint(address: &str, tls_opt: Option<&ClientTlsConfig>) -> Result<Endpoint, String> {
    let scheme = if tls_opt.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| format!("bad address {address}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = tls_opt {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS set-up for {address}: {e}"))?;
    }
    Ok(endpoint)
}

/// Snapshots are small serialized blobs sent in one message.
pub type SnapshotData = Cursor<Vec<u8>>;

/// The node's connection pool, shared by every group.
#[derive(Clone, Default)]
pub struct PeerRouter {
    peers: Arc<Mutex<HashMap<NodeId, Peer>>>,
    /// Fault injection (chaos tests): peers this node sends nothing to. Every node-to-node call
    /// is a request this side starts, so cutting both sides of a link silences it both ways.
    cut: Arc<RwLock<BTreeSet<NodeId>>>,
    /// This node's TLS identity for calls to peers; `None` on a plain-text cluster.
    tls: Arc<RwLock<Option<ClientTlsConfig>>>,
}

struct Peer {
    address: String,
    client: InternalClient<Channel>,
}

impl PeerRouter {
    /// Replaces the set of peers cut off from this node (fault injection).
    pub fn set_cut(&self, cut: BTreeSet<NodeId>) {
        *self.cut.write().expect("cut set lock poisoned") = cut;
    }

    /// The peers cut off from this node (fault injection).
    pub fn cut(&self) -> BTreeSet<NodeId> {
        self.cut.read().expect("cut set lock poisoned").clone()
    }

    /// Whether `node` is cut off from this node (fault injection).
    pub fn is_cut(&self, node: NodeId) -> bool {
        self.cut
            .read()
            .expect("cut set lock poisoned")
            .contains(&node)
    }

    fn check_not_cut(&self, node: NodeId) -> Result<(), String> {
        if self.is_cut(node) {
            return Err(format!(
                "node {node} is cut off from this node (fault injection)"
            ));
        }
        Ok(())
    }

    /// Sets the TLS identity for calls to peers. Open connections are dropped, so the next call
    /// to each peer connects with it (certificate rotation).
    pub fn set_tls(&self, tls_opt: Option<ClientTlsConfig>) {
        *self.tls.write().expect("TLS lock poisoned") = tls_opt;
        self.peers.lock().expect("peer map lock poisoned").clear();
    }

    /// The TLS identity for calls to peers.
    pub fn tls(&self) -> Option<ClientTlsConfig> {
        self.tls.read().expect("TLS lock poisoned").clone()
    }

    /// The internal client for `node` at `address`, reconnecting if the address changed.
    pub fn client(&self, node: NodeId, address: &str) -> Result<InternalClient<Channel>, String> {
        self.check_not_cut(node)?;
        let mut peers = self.peers.lock().expect("peer map lock poisoned");
        if let Some(peer) = peers.get(&node)
            && peer.address == address
        {
            return Ok(peer.client.clone());
        }
        let endpoint = peer_endpoint(address, self.tls().as_ref())?;
        let client = InternalClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_INTERNAL_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_INTERNAL_MESSAGE_BYTES);
        peers.insert(
            node,
            Peer {
                address: address.to_string(),
                client: client.clone(),
            },
        );
        Ok(client)
    }

    fn known_client(&self, node: NodeId) -> Result<InternalClient<Channel>, String> {
        self.check_not_cut(node)?;
        let peers = self.peers.lock().expect("peer map lock poisoned");
        peers
            .get(&node)
            .map(|peer| peer.client.clone())
            .ok_or_else(|| format!("no address known for node {node}"))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RaftKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, String> {
        let mut client = self.known_client(target)?;
        let message = RaftMessage {
            group_id: group.0,
            kind: kind as i32,
            payload: codec::encode(request)?.into(),
        };
        let reply = tokio::time::timeout(timeout, client.raft(message))
            .await
            .map_err(|_| format!("{kind:?} to node {target} timed out after {timeout:?}"))?
            .map_err(|status| format!("{kind:?} to node {target}: {}", status.message()))?
            .into_inner();
        let remote: Result<Resp, String> = codec::decode(&reply.payload)?;
        remote.map_err(|e| format!("node {target} group {group}: {e}"))
    }
}

/// How many of `entries`, from the first, fit in `budget` encoded bytes (at least one).
fn entries_within<E: Serialize>(entries: &[E], budget: usize) -> usize {
    let mut total = 0usize;
    for (index, entry) in entries.iter().enumerate() {
        // Counting is cheap: byte strings add their length without being copied.
        total += postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
        if total > budget {
            return index.max(1);
        }
    }
    entries.len()
}

fn unreachable<C: RaftTypeConfig>(message: String) -> Unreachable<C> {
    Unreachable::from_string(message)
}

impl PeerRouter {
    /// One Raft RPC; any failure makes openraft back off as for an unreachable peer.
    async fn rpc<C: RaftTypeConfig, Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RaftKind,
        request: &Req,
        option: RPCOption,
    ) -> Result<Resp, RPCError<C>> {
        self.call(target, group, kind, request, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }
}

impl<C> GroupRouter<C, GroupId> for PeerRouter
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        target: NodeId,
        group_id: GroupId,
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let fitting = entries_within(&rpc.entries, MAX_APPEND_ENTRIES_BYTES);
        let partial_opt = (fitting < rpc.entries.len()).then(|| {
            rpc.entries.truncate(fitting);
            rpc.entries.last().map(|entry| entry.log_id())
        });
        let response: AppendEntriesResponse<C> = self
            .rpc(target, group_id, RaftKind::AppendEntries, &rpc, option)
            .await?;
        Ok(match (response, partial_opt) {
            (AppendEntriesResponse::Success, Some(last_sent)) => {
                AppendEntriesResponse::PartialSuccess(last_sent)
            }
            (response, _) => response,
        })
    }

    async fn vote(
        &self,
        target: NodeId,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftKind::Vote, &rpc, option)
            .await
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftKind::PreVote, &rpc, option)
            .await
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group_id: GroupId,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let request = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        self.call(
            target,
            group_id,
            RaftKind::FullSnapshot,
            &request,
            option.hard_ttl(),
        )
        .await
        .map_err(|e| StreamingError::Unreachable(unreachable(e)))
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group_id: GroupId,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftKind::TransferLeader, &req, option)
            .await
    }
}

/// Creates one network client per (peer, group); all of them share the node's [`PeerRouter`].
#[derive(Clone)]
pub struct NetworkFactory {
    pub router: PeerRouter,
    pub group: GroupId,
}

impl<C> RaftNetworkFactory<C> for NetworkFactory
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    type Network = GroupNetworkAdapter<C, GroupId, PeerRouter>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        if let Err(error) = self.router.client(target, &node.addr) {
            tracing::warn!(target, %error, "cannot create a client for peer");
        }
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}

#[cfg(test)]
mod tests {
    use super::entries_within;

    #[test]
    fn append_entries_carry_a_prefix_within_the_byte_budget_but_never_nothing() {
        // postcard writes each entry as a 2-byte length and its 1000 bytes.
        let entries = vec![vec![7u8; 1000]; 10];
        assert_eq!(entries_within(&entries, 10 * 1002), 10);
        assert_eq!(entries_within(&entries, 10 * 1002 - 1), 9);
        assert_eq!(entries_within(&entries, 3 * 1002), 3);
        assert_eq!(
            entries_within(&entries, 100),
            1,
            "one entry even over budget"
        );
        assert_eq!(entries_within::<Vec<u8>>(&[], 100), 0);
    }
}

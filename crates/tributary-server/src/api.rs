//! The domain API a node serves, in domain types. The gRPC service (and later the Kinesis HTTP
//! endpoint) only convert to and from these and call [`crate::Node`]'s methods.

pub use tributary_raft::meta::StreamEncryption;
use tributary_types::{
    ConsumerName, EncryptionType, Error, HashKeyRange, NodeId, SequenceNumber, ShardId,
    StoredRecord, StreamMode, StreamName,
};

use crate::meta::{ShardStatus, StreamStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub az: String,
    pub address: String,
    pub alive: bool,
    pub removing: bool,
    pub metadata_voter: bool,
    pub replica_count: u32,
    /// Shard groups it leads (0 when it does not answer).
    pub shard_leaders: u32,
    /// The most log entries any leader has not yet replicated to it.
    pub lag_entries: u64,
}

/// What a node says about its shard leaderships when pinged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadershipReport {
    pub shard_leaders: u32,
    /// Per follower of the groups this node leads, the most entries it is behind.
    pub follower_lag: std::collections::BTreeMap<NodeId, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveStatus {
    pub stream: StreamName,
    pub shard_id: ShardId,
    pub from: NodeId,
    pub to: NodeId,
    pub started_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub metadata_leader_opt: Option<NodeId>,
    pub answered_by: NodeId,
    pub moves: Vec<MoveStatus>,
    pub removed_nodes: Vec<NodeId>,
    /// The answering node's `--auth` mode and whether it serves TLS.
    pub auth: &'static str,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDescription {
    pub node_id: NodeId,
    pub az: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescription {
    pub shard_id: ShardId,
    pub hash_range: HashKeyRange,
    pub status: ShardStatus,
    pub parent_opt: Option<ShardId>,
    pub adjacent_parent_opt: Option<ShardId>,
    pub replicas: Vec<ReplicaDescription>,
    pub leader_opt: Option<NodeId>,
    pub starting_sequence_number: SequenceNumber,
    pub ending_sequence_number_opt: Option<SequenceNumber>,
    /// The newest number the answering node has applied for this shard, when it holds a replica.
    pub latest_sequence_number_opt: Option<SequenceNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    pub name: StreamName,
    pub status: StreamStatus,
    pub retention_hours: u32,
    pub created_at_ms: u64,
    pub shards: Vec<ShardDescription>,
    pub mode: StreamMode,
    pub has_more_shards: bool,
    /// Enhanced monitoring's shard-level metrics, as last set.
    pub shard_level_metrics: Vec<String>,
    /// Set while new records are encrypted (EncryptionType KMS, and the KeyId given).
    pub encryption_opt: Option<StreamEncryption>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    pub name: StreamName,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub created_at_ms: u64,
    pub open_shard_count: u32,
    pub consumer_count: u32,
    pub shard_level_metrics: Vec<String>,
    pub encryption_opt: Option<StreamEncryption>,
}

/// What DescribeLimits reports. Tributary has no account-wide quotas: each stream may have up to
/// `MAX_SHARDS_PER_STREAM` shards, and any number of streams may be ON_DEMAND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub open_shard_count: u32,
    pub on_demand_stream_count: u32,
}

/// Enhanced monitoring's shard-level metrics before and after an Enable/Disable call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLevelMetricsChange {
    pub stream: StreamName,
    pub current: Vec<String>,
    pub desired: Vec<String>,
}

/// One page of a listing and the token for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token_opt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDescription {
    pub stream: StreamName,
    pub name: ConsumerName,
    pub created_at_ms: u64,
}

/// A child of a closed shard, listed at the shard's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: ShardId,
    pub parents: Vec<ShardId>,
    pub hash_range: HashKeyRange,
}

/// One entry of a PutRecords answer, in request order.
pub type PutRecordResult = Result<(ShardId, SequenceNumber), Error>;

/// A put's answer: each record's result, and how its records were stored (KMS when the stream was
/// encrypted as this node's catalogue saw it when the put arrived).
#[derive(Debug)]
pub struct PutOutcome<T> {
    pub results: T,
    pub encryption_type: EncryptionType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsOutput {
    pub records: Vec<StoredRecord>,
    pub next_shard_iterator_opt: Option<String>,
    pub millis_behind_latest: u64,
    /// Set exactly when `next_shard_iterator_opt` is not: the end of a closed shard.
    pub child_shards: Vec<ChildShard>,
}

/// One SubscribeToShard event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEvent {
    pub records: Vec<StoredRecord>,
    /// Where to resume (AT_SEQUENCE_NUMBER); `None` exactly at the end of a closed shard.
    pub continuation_opt: Option<SequenceNumber>,
    pub millis_behind_latest: u64,
    pub child_shards: Vec<ChildShard>,
}

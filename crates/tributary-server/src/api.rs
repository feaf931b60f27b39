//! The domain API a node serves, in domain types. The gRPC service (and later the Kinesis HTTP
//! endpoint) only convert to and from these and call [`crate::Node`]'s methods.

use tributary_types::{
    Error, HashKeyRange, NodeId, SequenceNumber, ShardId, StoredRecord, StreamName,
};

use crate::meta::{ShardStatus, StreamStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub az: String,
    pub address: String,
    pub alive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub metadata_leader_opt: Option<NodeId>,
    pub answered_by: NodeId,
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
}

/// One entry of a PutRecords answer, in request order.
pub type PutRecordResult = Result<(ShardId, SequenceNumber), Error>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsOutput {
    pub records: Vec<StoredRecord>,
    pub next_shard_iterator_opt: Option<String>,
    pub millis_behind_latest: u64,
}

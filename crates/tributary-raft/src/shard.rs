//! The shard groups' type config and commands. One entry carries one batch of records; the state
//! machine assigns sequence numbers at apply from the entry's log index.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tributary_types::SequenceNumber;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutBatch {
    /// Stamped by the node that received the put, so every replica stores the same arrival time.
    pub arrival_ms: u64,
    pub records: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardCommand {
    Put(PutBatch),
    /// Retention: removes, from the oldest on, every record that arrived before `before_ms`
    /// (stopping at the first that did not), on every replica. Proposed by the shard's leader.
    Trim {
        before_ms: u64,
    },
    /// Resharding closed this shard: later puts are refused (their records route to the
    /// children). The answer carries the ending sequence number.
    Seal,
}

impl fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardCommand::Put(batch) => write!(f, "put({} records)", batch.records.len()),
            ShardCommand::Trim { before_ms } => write!(f, "trim(before {before_ms} ms)"),
            ShardCommand::Seal => write!(f, "seal"),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardResponse {
    /// The numbers assigned to the batch's records, in order.
    pub sequence_numbers: Vec<SequenceNumber>,
    /// A put reached a sealed shard and stored nothing: route its records again.
    pub sealed: bool,
    /// For a seal: the shard's ending sequence number.
    pub ending_opt: Option<SequenceNumber>,
}

openraft::declare_raft_types!(
    /// A shard group: one per shard, three replicas in three AZs.
    pub ShardTypeConfig:
        D = ShardCommand,
        R = ShardResponse,
);

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
}

impl fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardCommand::Put(batch) => write!(f, "put({} records)", batch.records.len()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardResponse {
    /// The numbers assigned to the batch's records, in order.
    pub sequence_numbers: Vec<SequenceNumber>,
}

openraft::declare_raft_types!(
    /// A shard group: one per shard, three replicas in three AZs.
    pub ShardTypeConfig:
        D = ShardCommand,
        R = ShardResponse,
);

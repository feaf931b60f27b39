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
    /// Set for idempotent puts: the state machine stores only records numbered above the last
    /// it stored for the producer, and answers the others with their original numbers.
    pub producer_opt: Option<ProducerStamp>,
}

/// Who sent an idempotent batch, and each record's number in that producer's sequence
/// (strictly increasing, one per record of the batch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProducerStamp {
    pub producer_id: u64,
    pub sequences: Vec<u64>,
}

impl PutBatch {
    /// Keeps the first `len` records (and their producer numbers).
    pub fn truncate(&mut self, len: usize) {
        self.records.truncate(len);
        if let Some(stamp) = &mut self.producer_opt {
            stamp.sequences.truncate(len);
        }
    }
}

/// The key a sealed batch's records were sealed under: a key of the nodes' key ring, its
/// version, and the random salt the batch's record key was derived with (HKDF-SHA256). Record
/// `k` of the batch is sealed with AES-256-GCM under that derived key and nonce `k`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchKey {
    pub key: String,
    pub version: u32,
    pub salt: [u8; 16],
}

/// Bytes a sealed record's data has beyond its partition key and data: the 16-byte GCM tag and
/// the 2-byte partition key length inside the ciphertext. Throughput limits charge what the
/// producer sent, so they subtract this.
pub const SEALED_RECORD_OVERHEAD: usize = 18;

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
    /// A put to an encrypted stream: each record's partition key is empty and its data is the
    /// sealed partition key and data (see [`BatchKey`]). The node that received the put seals
    /// it, so the batch is never in clear in any log, store or forwarded call. (Appended last:
    /// entries written before it keep their encoding.)
    PutSealed {
        key: BatchKey,
        batch: PutBatch,
    },
}

impl ShardCommand {
    /// The records of a put, sealed or not.
    pub fn put_batch(&self) -> Option<&PutBatch> {
        match self {
            ShardCommand::Put(batch) | ShardCommand::PutSealed { batch, .. } => Some(batch),
            _ => None,
        }
    }

    pub fn put_batch_mut(&mut self) -> Option<&mut PutBatch> {
        match self {
            ShardCommand::Put(batch) | ShardCommand::PutSealed { batch, .. } => Some(batch),
            _ => None,
        }
    }

    /// What each record of a put weighs as its producer sent it (partition key plus data),
    /// for throughput limits and metrics.
    pub fn record_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        let overhead = match self {
            ShardCommand::PutSealed { .. } => SEALED_RECORD_OVERHEAD,
            _ => 0,
        };
        self.put_batch()
            .into_iter()
            .flat_map(|batch| batch.records.iter())
            .map(move |(key, data)| (key.len() + data.len()).saturating_sub(overhead))
    }
}

impl fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardCommand::Put(batch) => write!(f, "put({} records)", batch.records.len()),
            ShardCommand::Trim { before_ms } => write!(f, "trim(before {before_ms} ms)"),
            ShardCommand::Seal => write!(f, "seal"),
            ShardCommand::PutSealed { key, batch } => write!(
                f,
                "put({} records sealed with {} v{})",
                batch.records.len(),
                key.key,
                key.version
            ),
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
    /// Positions of records an earlier attempt of an idempotent put stored whose numbers the
    /// shard no longer remembers (their `sequence_numbers` slots are meaningless).
    pub forgotten: Vec<u32>,
}

openraft::declare_raft_types!(
    /// A shard group: one per shard, three replicas in three AZs.
    pub ShardTypeConfig:
        D = ShardCommand,
        R = ShardResponse,
);

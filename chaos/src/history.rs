//! What happened during a run: every put attempt with its outcome, every record each reader saw,
//! the final reads and the faults. The checkers read only this; the report writes it out.

use std::time::Instant;

use serde::Serialize;

/// Milliseconds since the run started.
pub type Millis = u64;

/// The run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            started: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }
}

/// How one put attempt ended, as the client saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: the record is stored at `sequence` of `shard`.
    Ok { shard: String, sequence: String },
    /// Acknowledged as already stored by an earlier attempt whose number the shard forgot
    /// (DUPLICATE_RECORD; idempotent producers only).
    OkForgotten,
    /// Definitely not stored (refused before anything was proposed).
    Failed { code: String, message: String },
    /// May or may not have been stored (timeouts, lost connections, quorum loss mid-write).
    Unknown { code: String, message: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. } | Outcome::OkForgotten)
    }
}

/// One put attempt of one record. A producer retries a record after an unknown outcome, so a
/// record may have several attempts.
#[derive(Debug, Clone, Serialize)]
pub struct PutOp {
    pub producer: u64,
    pub counter: u64,
    pub attempt: u32,
    pub partition_key: String,
    /// Whether the producer sent idempotent puts (producer id and number): then no record may
    /// be stored twice.
    pub idempotent: bool,
    pub invoked_ms: Millis,
    pub completed_ms: Millis,
    pub outcome: Outcome,
}

/// A record as a reader got it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadRecord {
    pub sequence: String,
    pub partition_key: String,
    pub data: String,
}

/// Everything one reader read from one shard, in order, from TRIM_HORIZON on.
#[derive(Debug, Clone, Serialize)]
pub struct ReadLog {
    /// Who read: `live` (during the run) or `final via node N`.
    pub reader: String,
    pub shard: String,
    pub records: Vec<ReadRecord>,
    /// How often the reader had to get a new iterator (after an error).
    pub restarts: u32,
}

/// One injected fault, from injection to heal.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    /// The nemesis: kill, pause, partition, az, majority, or a choreography's name.
    pub nemesis: String,
    /// What exactly was done, e.g. "killed node 2 (leader of 3 shards)".
    pub description: String,
    pub nodes: Vec<u64>,
    /// Whether a majority of some shard's replicas was affected (writes may stop until heal).
    pub majority: bool,
    pub start_ms: Millis,
    pub end_ms: Millis,
}

/// A consumer worker's checkpoint attempt (after each processed batch).
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointOp {
    pub worker: String,
    pub shard: String,
    pub sequence: String,
    pub invoked_ms: Millis,
    pub completed_ms: Millis,
    pub ok: bool,
    pub error: Option<String>,
}

/// One lease as a scan of the lease table saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseObservation {
    pub at_ms: Millis,
    pub shard: String,
    pub owner_opt: Option<String>,
    pub counter: u64,
    pub checkpoint_opt: Option<String>,
}

/// A whole run's history.
#[derive(Debug, Clone, Serialize, Default)]
pub struct History {
    pub puts: Vec<PutOp>,
    pub live_reads: Vec<ReadLog>,
    pub final_reads: Vec<ReadLog>,
    pub faults: Vec<FaultEvent>,
    pub checkpoints: Vec<CheckpointOp>,
    pub leases: Vec<LeaseObservation>,
}

/// The record a producer writes: self-describing, so a reader knows who wrote it and which of
/// that producer's records it is.
pub fn record_data(producer: u64, counter: u64) -> String {
    format!("chaos p={producer} n={counter}")
}

/// The inverse of [`record_data`].
pub fn parse_record_data(data: &str) -> Option<(u64, u64)> {
    let rest = data.strip_prefix("chaos p=")?;
    let (producer, counter) = rest.split_once(" n=")?;
    Some((producer.parse().ok()?, counter.parse().ok()?))
}

/// Sequence numbers are decimal strings of up to 128 bits; they compare as numbers.
pub fn sequence_value(sequence: &str) -> Option<u128> {
    sequence.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_data_round_trips_and_rejects_strangers() {
        assert_eq!(parse_record_data(&record_data(3, 17)), Some((3, 17)));
        assert_eq!(parse_record_data("chaos p=3"), None);
        assert_eq!(parse_record_data("hello"), None);
        assert_eq!(parse_record_data("chaos p=x n=1"), None);
    }
}

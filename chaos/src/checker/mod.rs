//! The checker: one module per property, each reading only the [`History`]. A property lists
//! its violations with a few examples; the run passes only when every list is empty.

mod checkpoints;
mod duplicates;
mod key_order;
mod leases;
mod lost;
mod order;
mod phantom;
mod unique;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{History, PutOp, ReadRecord, parse_record_data};

/// Examples kept per property (the count is always complete).
const EXAMPLES: usize = 10;

/// One property's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct PropertyResult {
    pub name: &'static str,
    pub description: &'static str,
    pub violations: usize,
    pub examples: Vec<String>,
}

impl PropertyResult {
    fn new(name: &'static str, description: &'static str) -> PropertyResult {
        PropertyResult {
            name,
            description,
            violations: 0,
            examples: Vec::new(),
        }
    }

    fn violation(&mut self, example: String) {
        self.violations += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    pub fn holds(&self) -> bool {
        self.violations == 0
    }
}

/// Every property's verdict and the figures the summary reports.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub properties: Vec<PropertyResult>,
    /// Acknowledged records missing from the final reads.
    pub lost: usize,
    /// Extra copies of records in the final reads (any producer).
    pub duplicates: usize,
    /// Reads out of order, skipped or backwards.
    pub order_violations: usize,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.properties.iter().all(PropertyResult::holds)
    }
}

/// What the properties share: the attempts per record and the authoritative final read of each
/// shard (the longest one; every other read must agree with it).
pub(crate) struct Facts<'a> {
    pub history: &'a History,
    /// (producer, counter) → its attempts, in order.
    pub attempts: BTreeMap<(u64, u64), Vec<&'a PutOp>>,
    /// Shard → its longest final read.
    pub final_reads: BTreeMap<String, &'a [ReadRecord]>,
}

impl<'a> Facts<'a> {
    fn new(history: &'a History) -> Facts<'a> {
        let mut attempts: BTreeMap<(u64, u64), Vec<&PutOp>> = BTreeMap::new();
        for op in &history.puts {
            attempts
                .entry((op.producer, op.counter))
                .or_default()
                .push(op);
        }
        let mut final_reads: BTreeMap<String, &[ReadRecord]> = BTreeMap::new();
        for log in &history.final_reads {
            let entry = final_reads.entry(log.shard.clone()).or_default();
            if log.records.len() >= entry.len() {
                *entry = &log.records;
            }
        }
        Facts {
            history,
            attempts,
            final_reads,
        }
    }

    /// Every read: the live readers' and the final ones.
    pub fn all_reads(&self) -> impl Iterator<Item = &'a crate::history::ReadLog> {
        self.history
            .live_reads
            .iter()
            .chain(&self.history.final_reads)
    }

    /// Every final-read record with its shard, decoded as (producer, counter) where it parses.
    pub fn final_records(&self) -> impl Iterator<Item = (&str, &ReadRecord, Option<(u64, u64)>)> {
        self.final_reads.iter().flat_map(|(shard, records)| {
            records
                .iter()
                .map(move |record| (shard.as_str(), record, parse_record_data(&record.data)))
        })
    }
}

/// Checks every property of `history`.
pub fn check(history: &History) -> Verdict {
    let facts = Facts::new(history);
    let (lost_result, lost) = lost::check(&facts);
    let (duplicates_result, duplicates) = duplicates::check(&facts);
    let order_result = order::check(&facts);
    let order_violations = order_result.violations;
    Verdict {
        properties: vec![
            lost_result,
            unique::check(&facts),
            order_result,
            phantom::check(&facts),
            duplicates_result,
            key_order::check(&facts),
            checkpoints::check(&facts),
            leases::check(&facts),
        ],
        lost,
        duplicates,
        order_violations,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::{Outcome, ReadLog, record_data};

    pub fn put(producer: u64, counter: u64, outcome: Outcome) -> PutOp {
        PutOp {
            producer,
            counter,
            attempt: 1,
            partition_key: format!("p{producer}-k0"),
            idempotent: producer.is_multiple_of(2),
            invoked_ms: counter * 10,
            completed_ms: counter * 10 + 5,
            outcome,
        }
    }

    pub fn ok(shard: &str, sequence: u64) -> Outcome {
        Outcome::Ok {
            shard: shard.to_string(),
            sequence: sequence.to_string(),
        }
    }

    pub fn record(sequence: u64, producer: u64, counter: u64) -> ReadRecord {
        ReadRecord {
            sequence: sequence.to_string(),
            partition_key: format!("p{producer}-k0"),
            data: record_data(producer, counter),
        }
    }

    pub fn read(reader: &str, shard: &str, records: Vec<ReadRecord>) -> ReadLog {
        ReadLog {
            reader: reader.to_string(),
            shard: shard.to_string(),
            records,
            restarts: 0,
        }
    }

    /// Two producers (1 plain, 2 idempotent), three records each, all acknowledged and read.
    pub fn clean_history() -> History {
        let mut history = History::default();
        let mut records = Vec::new();
        let mut sequence = 100;
        for counter in 1..=3 {
            for producer in [1, 2] {
                history
                    .puts
                    .push(put(producer, counter, ok("s0", sequence)));
                records.push(record(sequence, producer, counter));
                sequence += 1;
            }
        }
        history
            .live_reads
            .push(read("live", "s0", records[..4].to_vec()));
        history
            .final_reads
            .push(read("final via node 1", "s0", records));
        history
    }

    #[test]
    fn a_clean_history_holds_every_property() {
        let verdict = check(&clean_history());
        assert!(verdict.holds(), "{verdict:#?}");
        assert_eq!(
            (verdict.lost, verdict.duplicates, verdict.order_violations),
            (0, 0, 0)
        );
    }
}

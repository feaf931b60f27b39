//! Per-shard order: every read of a shard returns strictly increasing sequence numbers, and every
//! read agrees, position by position, with the authoritative final read: nothing skipped, nothing
//! read backwards, no replica diverging.

use super::{Facts, PropertyResult};
use crate::history::sequence_value;

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "shard_order",
        "each shard reads in strictly increasing sequence order, every reader sees the same \
         records in the same order (no skipped or backwards reads)",
    );
    for log in facts.all_reads() {
        let mut previous_opt: Option<u128> = None;
        for record in &log.records {
            let Some(value) = sequence_value(&record.sequence) else {
                result.violation(format!(
                    "{} read {}/{:?}: not a sequence number",
                    log.reader, log.shard, record.sequence
                ));
                continue;
            };
            if let Some(previous) = previous_opt
                && value <= previous
            {
                result.violation(format!(
                    "{} read {}/{} after {previous}: backwards",
                    log.reader, log.shard, record.sequence
                ));
            }
            previous_opt = Some(value);
        }
        let authoritative = facts
            .final_reads
            .get(&log.shard)
            .copied()
            .unwrap_or_default();
        let diverging = log
            .records
            .iter()
            .zip(authoritative)
            .position(|(read, truth)| read != truth);
        if let Some(index) = diverging {
            result.violation(format!(
                "{} read {}/{} ({:?}) as record #{index}, where the final read has {}/{} ({:?}): skipped or reordered",
                log.reader,
                log.shard,
                log.records[index].sequence,
                log.records[index].data,
                log.shard,
                authoritative[index].sequence,
                authoritative[index].data
            ));
        } else if log.records.len() > authoritative.len() {
            result.violation(format!(
                "{} read {} records of {}, more than the final read's {}",
                log.reader,
                log.records.len(),
                log.shard,
                authoritative.len()
            ));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::{clean_history, read, record};
    use super::check;

    #[test]
    fn a_skipped_record_is_caught() {
        let mut history = clean_history();
        let mut records = history.final_reads[0].records.clone();
        records.remove(1);
        history.live_reads.push(read("live 2", "s0", records));
        assert_eq!(check(&Facts::new(&history)).violations, 1);
    }

    #[test]
    fn a_backwards_read_is_caught() {
        let mut history = clean_history();
        history.live_reads.push(read(
            "live 2",
            "s0",
            vec![record(100, 1, 1), record(100, 1, 1)],
        ));
        // Backwards, and diverging from the final read at #1.
        assert_eq!(check(&Facts::new(&history)).violations, 2);
    }
}

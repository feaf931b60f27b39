//! Per-partition-key order for single-writer keys: each producer writes its own keys, one record
//! at a time, so the first copy of each of a key's records must appear in the order written.

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "single_writer_key_order",
        "records of a partition key with one writer are stored in the order that writer put them",
    );
    // (shard, key) → the highest counter seen so far; first copies only.
    let mut last: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (shard, record, decoded) in facts.final_records() {
        let Some(id) = decoded else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let key = (shard, record.partition_key.as_str());
        if let Some(&previous) = last.get(&key)
            && id.1 < previous
        {
            result.violation(format!(
                "key {} in {shard}: producer {} record {} stored at {} after record {previous}",
                record.partition_key, id.0, id.1, record.sequence
            ));
        }
        let entry = last.entry(key).or_insert(id.1);
        *entry = (*entry).max(id.1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::{clean_history, read, record};
    use super::check;

    #[test]
    fn a_key_stored_out_of_order_is_caught() {
        let mut history = clean_history();
        assert_eq!(check(&Facts::new(&history)).violations, 0);
        history.final_reads = vec![read(
            "final via node 1",
            "s0",
            vec![record(100, 1, 2), record(101, 1, 1)],
        )];
        assert_eq!(check(&Facts::new(&history)).violations, 1);
    }
}

//! No two different records at one sequence number, in any read (live or final, any node).

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "one_record_per_sequence_number",
        "no two reads return different records at one sequence number of a shard",
    );
    let mut seen: BTreeMap<(&str, &str), (&str, &str)> = BTreeMap::new();
    for log in facts.all_reads() {
        for record in &log.records {
            let key = (log.shard.as_str(), record.sequence.as_str());
            match seen.get(&key) {
                None => {
                    seen.insert(key, (record.data.as_str(), log.reader.as_str()));
                }
                Some((data, reader)) if *data != record.data => result.violation(format!(
                    "{}/{}: {reader} read {data:?}, {} read {:?}",
                    log.shard, record.sequence, log.reader, record.data
                )),
                Some(_) => {}
            }
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
    fn two_records_at_one_number_are_caught() {
        let mut history = clean_history();
        history
            .live_reads
            .push(read("live 2", "s0", vec![record(100, 9, 9)]));
        assert_eq!(check(&Facts::new(&history)).violations, 1);
    }
}

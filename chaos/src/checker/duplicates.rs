//! Duplicates: a record stored more than once. Plain puts may duplicate when a put whose outcome
//! was unknown is retried (by the producer, the client's failover or a node forwarding to a new
//! leader): they are counted. Idempotent puts (producer id and number) must never duplicate.

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};

/// The property's verdict and the number of extra copies of any record.
pub(crate) fn check(facts: &Facts) -> (PropertyResult, usize) {
    let mut result = PropertyResult::new(
        "idempotent_puts_never_duplicate",
        "a record put with a producer id and number is stored once, however often it was retried \
         (plain puts' duplicates are counted, not violations)",
    );
    let mut copies: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (shard, record, decoded) in facts.final_records() {
        if let Some(id) = decoded {
            copies
                .entry(id)
                .or_default()
                .push(format!("{shard}/{}", record.sequence));
        }
    }
    let mut duplicates = 0;
    for (&(producer, counter), places) in &copies {
        if places.len() < 2 {
            continue;
        }
        duplicates += places.len() - 1;
        let idempotent = facts
            .attempts
            .get(&(producer, counter))
            .is_some_and(|attempts| attempts.iter().any(|op| op.idempotent));
        if idempotent {
            result.violation(format!(
                "idempotent producer {producer}'s record {counter} is stored {} times: {places:?}",
                places.len()
            ));
        }
    }
    (result, duplicates)
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::{clean_history, record};
    use super::check;

    #[test]
    fn duplicates_are_counted_and_only_idempotent_ones_violate() {
        let mut history = clean_history();
        // Producer 1 puts plainly, producer 2 idempotently.
        history.final_reads[0].records.push(record(200, 1, 3));
        let (result, duplicates) = check(&Facts::new(&history));
        assert_eq!((result.violations, duplicates), (0, 1));
        history.final_reads[0].records.push(record(201, 2, 3));
        let (result, duplicates) = check(&Facts::new(&history));
        assert_eq!((result.violations, duplicates), (1, 2));
    }
}

//! No acknowledged record is lost: every record a put acknowledged is in the final reads, at the
//! sequence number the acknowledgement gave.

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};
use crate::history::Outcome;

/// The property's verdict and how many acknowledged records are missing altogether.
pub(crate) fn check(facts: &Facts) -> (PropertyResult, usize) {
    let mut result = PropertyResult::new(
        "no_acknowledged_record_lost",
        "every acknowledged record is read back after the faults heal, at its acknowledged sequence number",
    );
    // (producer, counter) → where the final reads hold it; (shard, sequence) → its data.
    let mut found: BTreeMap<(u64, u64), Vec<(&str, &str)>> = BTreeMap::new();
    let mut at: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (shard, record, decoded) in facts.final_records() {
        at.insert((shard, record.sequence.as_str()), record.data.as_str());
        if let Some(id) = decoded {
            found
                .entry(id)
                .or_default()
                .push((shard, record.sequence.as_str()));
        }
    }
    let mut lost = 0;
    for (&(producer, counter), attempts) in &facts.attempts {
        let Some(acked) = attempts.iter().find(|op| op.outcome.is_ok()) else {
            continue;
        };
        let Some(places) = found.get(&(producer, counter)) else {
            lost += 1;
            result.violation(format!(
                "producer {producer} record {counter}, acknowledged at {} ms ({:?}), is in no final read",
                acked.completed_ms, acked.outcome
            ));
            continue;
        };
        for op in attempts {
            if let Outcome::Ok { shard, sequence } = &op.outcome
                && !places.contains(&(shard.as_str(), sequence.as_str()))
            {
                result.violation(format!(
                    "producer {producer} record {counter} was acknowledged at {shard}/{sequence} but \
                     that number holds {:?}; the record is at {places:?}",
                    at.get(&(shard.as_str(), sequence.as_str()))
                ));
            }
        }
    }
    (result, lost)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{clean_history, ok, put};
    use super::super::{Facts, check as check_all};
    use super::check;

    #[test]
    fn an_acknowledged_record_missing_from_the_final_read_is_lost() {
        let mut history = clean_history();
        history.puts.push(put(1, 4, ok("s0", 200)));
        let (result, lost) = check(&Facts::new(&history));
        assert_eq!((result.violations, lost), (1, 1), "{result:?}");
        assert!(!check_all(&history).holds());
    }

    #[test]
    fn an_acknowledgement_naming_another_records_number_is_caught() {
        let mut history = clean_history();
        // Record 1 of producer 1 is stored at 100; a second acknowledgement claims 101.
        history.puts.push(put(1, 1, ok("s0", 101)));
        let (result, lost) = check(&Facts::new(&history));
        assert_eq!((result.violations, lost), (1, 0), "{result:?}");
    }
}

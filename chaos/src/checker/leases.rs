//! One owner per lease counter: every lease write (take, renew, checkpoint) is conditional on the
//! owner and counter it read and bumps the counter, so two workers can never both hold, or both
//! commit a checkpoint under, one counter of one shard's lease.

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "one_owner_per_lease_counter",
        "no two workers hold one shard's lease, or commit a checkpoint, under the same lease counter",
    );
    let mut owners: BTreeMap<(&str, u64), (&str, u64)> = BTreeMap::new();
    for observation in &facts.history.leases {
        let Some(owner) = observation.owner_opt.as_deref() else {
            continue;
        };
        let key = (observation.shard.as_str(), observation.counter);
        match owners.get(&key) {
            None => {
                owners.insert(key, (owner, observation.at_ms));
            }
            Some(&(first, at)) if first != owner => result.violation(format!(
                "{} lease counter {}: owned by {first} (seen at {at} ms) and by {owner} (at {} ms)",
                observation.shard, observation.counter, observation.at_ms
            )),
            Some(_) => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::clean_history;
    use super::check;
    use crate::history::LeaseObservation;

    #[test]
    fn two_owners_at_one_counter_are_caught() {
        let observed = |at_ms, owner: &str, counter| LeaseObservation {
            at_ms,
            shard: "s0".into(),
            owner_opt: Some(owner.into()),
            counter,
            checkpoint_opt: None,
        };
        let mut history = clean_history();
        history.leases = vec![
            observed(1, "w1", 7),
            observed(2, "w1", 7),
            observed(3, "w2", 8),
        ];
        assert_eq!(check(&Facts::new(&history)).violations, 0);
        history.leases.push(observed(4, "w2", 7));
        assert_eq!(check(&Facts::new(&history)).violations, 1);
    }
}

//! Checkpoints never regress: a shard's checkpoint, as the lease table shows it over time, never
//! moves backwards, and a checkpoint committed after another one completed is never behind it,
//! whichever worker committed either.

use std::collections::BTreeMap;

use super::{Facts, PropertyResult};
use tributary_client::consumer::SHARD_END;

use crate::history::sequence_value;

/// SHARD_END ranks above every sequence number, an initial position (TRIM_HORIZON, LATEST)
/// below them.
fn rank(checkpoint: &str) -> Option<u128> {
    if checkpoint == SHARD_END {
        return Some(u128::MAX);
    }
    Some(sequence_value(checkpoint).unwrap_or(0))
}

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "checkpoints_never_regress",
        "a shard's checkpoint never moves backwards, in the lease table or between committed checkpoints",
    );
    // The lease table over time.
    let mut seen: BTreeMap<&str, (u128, &str, u64)> = BTreeMap::new();
    let mut observations: Vec<_> = facts.history.leases.iter().collect();
    observations.sort_by_key(|o| o.at_ms);
    for observation in observations {
        let Some(checkpoint) = observation.checkpoint_opt.as_deref() else {
            continue;
        };
        let Some(value) = rank(checkpoint) else {
            continue;
        };
        if let Some(&(previous, previous_text, at)) = seen.get(observation.shard.as_str())
            && value < previous
        {
            result.violation(format!(
                "{}'s checkpoint went from {previous_text} (seen at {at} ms) back to {checkpoint} (at {} ms)",
                observation.shard, observation.at_ms
            ));
        }
        let entry =
            seen.entry(&observation.shard)
                .or_insert((value, checkpoint, observation.at_ms));
        if value >= entry.0 {
            *entry = (value, checkpoint, observation.at_ms);
        }
    }
    // Committed checkpoints in real-time order.
    let mut committed: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for op in facts.history.checkpoints.iter().filter(|op| op.ok) {
        committed.entry(op.shard.as_str()).or_default().push(op);
    }
    for (shard, ops) in committed {
        for later in &ops {
            let Some(value) = rank(&later.sequence) else {
                continue;
            };
            let behind = ops.iter().find(|earlier| {
                earlier.completed_ms < later.invoked_ms
                    && rank(&earlier.sequence).is_some_and(|e| e > value)
            });
            if let Some(earlier) = behind {
                result.violation(format!(
                    "{shard}: {} committed {} at {} ms, behind {} committed by {} at {} ms",
                    later.worker,
                    later.sequence,
                    later.completed_ms,
                    earlier.sequence,
                    earlier.worker,
                    earlier.completed_ms
                ));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::clean_history;
    use super::check;
    use crate::history::{CheckpointOp, LeaseObservation};

    fn observed(at_ms: u64, owner: &str, counter: u64, checkpoint: &str) -> LeaseObservation {
        LeaseObservation {
            at_ms,
            shard: "s0".into(),
            owner_opt: Some(owner.into()),
            counter,
            checkpoint_opt: Some(checkpoint.into()),
        }
    }

    fn committed(worker: &str, sequence: &str, invoked_ms: u64) -> CheckpointOp {
        CheckpointOp {
            worker: worker.into(),
            shard: "s0".into(),
            sequence: sequence.into(),
            invoked_ms,
            completed_ms: invoked_ms + 5,
            ok: true,
            error: None,
        }
    }

    #[test]
    fn a_checkpoint_moving_back_is_caught_in_the_table_and_in_commits() {
        let mut history = clean_history();
        history.leases = vec![
            observed(1, "w1", 1, "100"),
            observed(2, "w1", 2, "105"),
            observed(3, "w2", 3, "SHARD_END"),
        ];
        history.checkpoints = vec![committed("w1", "100", 0), committed("w2", "105", 10)];
        assert_eq!(check(&Facts::new(&history)).violations, 0);
        history.leases.push(observed(4, "w2", 4, "103"));
        history.checkpoints.push(committed("w1", "101", 20));
        assert_eq!(check(&Facts::new(&history)).violations, 2);
    }
}

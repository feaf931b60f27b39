//! Unavailability after each fault: the longest time some shard acknowledged no put, while the
//! fault lasted and from its heal until the shard acknowledged a put attempted after the heal.
//! Producers write every shard tens of times a second, so a healthy shard's gaps are tens of
//! milliseconds.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{History, Millis, Outcome, PutOp};

/// One fault's unavailability windows, in seconds (`None`: some shard never wrote again).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub nemesis: String,
    pub description: String,
    pub majority: bool,
    pub start_s: f64,
    pub held_s: f64,
    /// The longest time any shard acknowledged nothing while the fault lasted.
    pub during_fault_s: f64,
    /// From heal until every shard acknowledged a put attempted after it.
    pub after_heal_s: Option<f64>,
}

impl Window {
    /// The window this fault counts with: for a majority fault only the time after heal (writes
    /// are meant to stop while it lasts), otherwise the longer of the two.
    pub fn unavailability_s(&self) -> Option<f64> {
        let after_heal = self.after_heal_s?;
        Some(if self.majority {
            after_heal
        } else {
            after_heal.max(self.during_fault_s)
        })
    }
}

/// Each shard's acknowledgements: (invoked, completed), by completion.
fn acks_by_shard(puts: &[PutOp]) -> BTreeMap<&str, Vec<(Millis, Millis)>> {
    let mut acks: BTreeMap<&str, Vec<(Millis, Millis)>> = BTreeMap::new();
    for op in puts {
        if let Outcome::Ok { shard, .. } = &op.outcome {
            acks.entry(shard)
                .or_default()
                .push((op.invoked_ms, op.completed_ms));
        }
    }
    for list in acks.values_mut() {
        list.sort_by_key(|&(_, completed)| completed);
    }
    acks
}

/// The longest stretch of `[from, to]` in which `acks` has no completion.
fn longest_silence(acks: &[(Millis, Millis)], from: Millis, to: Millis) -> Millis {
    let mut last = from;
    let mut longest = 0;
    for &(_, completed) in acks.iter().filter(|(_, c)| *c > from && *c <= to) {
        longest = longest.max(completed - last);
        last = completed;
    }
    longest.max(to.saturating_sub(last))
}

/// From `from` until a put attempted at or after it is acknowledged; `None` if none was.
fn until_write(acks: &[(Millis, Millis)], from: Millis) -> Option<Millis> {
    acks.iter()
        .filter(|(invoked, _)| *invoked >= from)
        .map(|(_, completed)| completed - from)
        .min()
}

pub fn windows(history: &History) -> Vec<Window> {
    let acks = acks_by_shard(&history.puts);
    history
        .faults
        .iter()
        .map(|fault| {
            let during = acks
                .values()
                .map(|list| longest_silence(list, fault.start_ms, fault.end_ms))
                .max()
                .unwrap_or(0);
            let after_heal = acks
                .values()
                .map(|list| until_write(list, fault.end_ms))
                .try_fold(0, |worst: Millis, each| Some(worst.max(each?)));
            Window {
                nemesis: fault.nemesis.clone(),
                description: fault.description.clone(),
                majority: fault.majority,
                start_s: fault.start_ms as f64 / 1000.0,
                held_s: (fault.end_ms - fault.start_ms) as f64 / 1000.0,
                during_fault_s: during as f64 / 1000.0,
                after_heal_s: after_heal.map(|ms| ms as f64 / 1000.0),
            }
        })
        .collect()
}

/// The p50 and maximum of the windows that count (see [`Window::unavailability_s`]); a fault
/// after which some shard never wrote again counts as infinite.
pub fn p50_and_max(windows: &[Window]) -> (f64, f64) {
    let mut values: Vec<f64> = windows
        .iter()
        .map(|w| w.unavailability_s().unwrap_or(f64::INFINITY))
        .collect();
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    (values[(values.len() - 1) / 2], values[values.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests::{ok, put};
    use crate::history::FaultEvent;

    #[test]
    fn the_window_is_the_longest_silence_of_any_shard() {
        let mut history = History::default();
        // put(.., counter) is invoked at counter * 10 ms and completes 5 ms later.
        for counter in [1, 12, 30, 60, 120] {
            history.puts.push(put(1, counter, ok("a", counter)));
        }
        for counter in [2, 250] {
            history.puts.push(put(1, counter, ok("b", counter)));
        }
        history.faults.push(FaultEvent {
            nemesis: "kill".into(),
            description: String::new(),
            nodes: vec![1],
            majority: false,
            start_ms: 100,
            end_ms: 1000,
        });
        let windows = windows(&history);
        // Shard b acknowledges nothing from 100 to 1000 ms; then first at 2505 ms.
        assert_eq!(windows[0].during_fault_s, 0.9);
        assert_eq!(windows[0].after_heal_s, Some(1.505));
        assert_eq!(p50_and_max(&windows), (1.505, 1.505));
    }
}

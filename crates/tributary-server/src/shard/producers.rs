//! Idempotent puts. A producer numbers the records of one ordered sequence (a producer id) with
//! strictly increasing numbers and sends them in order, retrying from its oldest unanswered
//! record; so a record numbered at or below the last one a shard stored for that producer id was
//! stored by an earlier attempt. The shard answers it with its original sequence number, found in
//! the runs of recent records it remembers, instead of storing it twice.
//!
//! The state lives in the shard state machine (one key per producer id, written with the records
//! it describes) and is dropped by retention once the producer has been idle longer than the
//! stream keeps records.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How many runs of stored records a shard remembers per producer id. A run is what one attempt
/// stored, so retries find their originals unless more than this many attempts of the same
/// records were stored without the producer hearing back.
pub const REMEMBERED_RUNS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    /// The highest producer number stored.
    pub last_sequence: u64,
    /// When the last stored batch arrived; retention forgets idle producers.
    pub last_arrival_ms: u64,
    /// Recently stored records, oldest first.
    runs: VecDeque<Run>,
}

/// Consecutive producer numbers stored at consecutive offsets of one log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Run {
    first_sequence: u64,
    count: u32,
    log_index: u64,
    first_offset: u16,
}

/// What becomes of a record of an idempotent put.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Store,
    /// Stored before, at `(log index, offset)` when still remembered.
    Duplicate(Option<(u64, u16)>),
}

/// Whether the record numbered `sequence` is new for a producer with `state_opt`.
pub fn admit(state_opt: Option<&ProducerState>, sequence: u64) -> Admission {
    match state_opt {
        Some(state) if sequence <= state.last_sequence => {
            Admission::Duplicate(state.find(sequence))
        }
        _ => Admission::Store,
    }
}

impl ProducerState {
    fn find(&self, sequence: u64) -> Option<(u64, u16)> {
        self.runs.iter().rev().find_map(|run| {
            let delta = sequence.checked_sub(run.first_sequence)?;
            (delta < u64::from(run.count)).then(|| (run.log_index, run.first_offset + delta as u16))
        })
    }

    /// Notes that the record numbered `sequence` was stored at `(log_index, offset)`.
    pub fn stored(&mut self, sequence: u64, log_index: u64, offset: u16, arrival_ms: u64) {
        self.last_sequence = sequence;
        self.last_arrival_ms = arrival_ms;
        if let Some(run) = self.runs.back_mut()
            && run.log_index == log_index
            && run.first_sequence + u64::from(run.count) == sequence
            && u32::from(run.first_offset) + run.count == u32::from(offset)
        {
            run.count += 1;
            return;
        }
        self.runs.push_back(Run {
            first_sequence: sequence,
            count: 1,
            log_index,
            first_offset: offset,
        });
        while self.runs.len() > REMEMBERED_RUNS {
            self.runs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_batch(
        state: &mut ProducerState,
        log_index: u64,
        sequences: impl Iterator<Item = u64>,
    ) {
        for (offset, sequence) in sequences.enumerate() {
            state.stored(sequence, log_index, offset as u16, 1_000);
        }
    }

    #[test]
    fn a_new_producer_stores_everything() {
        assert_eq!(admit(None, 0), Admission::Store);
        assert_eq!(admit(None, u64::MAX), Admission::Store);
    }

    #[test]
    fn a_retry_finds_the_original_numbers() {
        let mut state = ProducerState::default();
        stored_batch(&mut state, 10, 1..=5);
        // The retry carried the same records and more; the older ones are duplicates.
        stored_batch(&mut state, 11, 6..=8);
        assert_eq!(admit(Some(&state), 3), Admission::Duplicate(Some((10, 2))));
        assert_eq!(admit(Some(&state), 7), Admission::Duplicate(Some((11, 1))));
        assert_eq!(admit(Some(&state), 9), Admission::Store);
        assert_eq!(state.runs.len(), 2);
    }

    #[test]
    fn gaps_start_new_runs_and_old_runs_are_forgotten() {
        let mut state = ProducerState::default();
        // Producer numbers with gaps: a shard sees only the records that hash to it.
        stored_batch(&mut state, 1, [2, 4, 6].into_iter());
        assert_eq!(admit(Some(&state), 4), Admission::Duplicate(Some((1, 1))));
        assert_eq!(admit(Some(&state), 3), Admission::Duplicate(None));
        for index in 0..REMEMBERED_RUNS as u64 {
            stored_batch(&mut state, 100 + index, [1_000 + index].into_iter());
        }
        assert_eq!(state.runs.len(), REMEMBERED_RUNS);
        assert_eq!(admit(Some(&state), 6), Admission::Duplicate(None));
        assert_eq!(
            admit(Some(&state), 1_000),
            Admission::Duplicate(Some((100, 0)))
        );
    }
}

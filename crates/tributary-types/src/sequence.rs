//! Sequence numbers: 128-bit, compared as integers, shown as decimal strings.
//!
//! Layout (most significant first): a 4-bit version (`2`), 28 zero bits, the 32-bit shard index,
//! the 48-bit Raft log index of the batch that carried the record, and a 16-bit offset within that
//! batch. Consequences the rest of the system relies on:
//! - numbers strictly increase within a shard (log indexes increase, offsets increase in a batch);
//! - a child shard (higher index) numbers above every parent;
//! - a number tells its shard, so a number from another shard is rejected;
//! - the number is a pure function of the committed log, so every replica assigns the same one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::ShardId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SequenceNumber(pub u128);

const VERSION: u128 = 2;
const VERSION_SHIFT: u32 = 124;
const SHARD_SHIFT: u32 = 64;
const LOG_INDEX_SHIFT: u32 = 16;
const LOG_INDEX_MASK: u128 = (1 << 48) - 1;

impl SequenceNumber {
    pub const MAX_LOG_INDEX: u64 = (1 << 48) - 1;
    pub const MAX_BATCH_OFFSET: u16 = u16::MAX;

    pub fn new(shard: ShardId, log_index: u64, offset: u16) -> SequenceNumber {
        debug_assert!(
            log_index <= Self::MAX_LOG_INDEX,
            "log index {log_index} overflows 48 bits"
        );
        SequenceNumber(
            (VERSION << VERSION_SHIFT)
                | (u128::from(shard.0) << SHARD_SHIFT)
                | ((u128::from(log_index) & LOG_INDEX_MASK) << LOG_INDEX_SHIFT)
                | u128::from(offset),
        )
    }

    /// The smallest number a shard can hold (its `StartingSequenceNumber`).
    pub fn shard_start(shard: ShardId) -> SequenceNumber {
        SequenceNumber::new(shard, 0, 0)
    }

    pub fn shard(self) -> ShardId {
        ShardId((self.0 >> SHARD_SHIFT) as u32)
    }

    pub fn log_index(self) -> u64 {
        ((self.0 >> LOG_INDEX_SHIFT) & LOG_INDEX_MASK) as u64
    }

    /// Parses a decimal sequence number and checks that it belongs to `shard`.
    pub fn parse_for_shard(text: &str, shard: ShardId) -> Result<SequenceNumber, Error> {
        let sequence_number: SequenceNumber = text.parse()?;
        if sequence_number.shard() != shard {
            return Err(Error::invalid_argument(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {shard}",
                sequence_number.shard()
            )));
        }
        Ok(sequence_number)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SequenceNumber {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::invalid_argument(format!(
                "Invalid SequenceNumber '{text}': expected a decimal Tributary sequence number"
            ))
        };
        let well_formed = !text.is_empty()
            && text.len() <= 39
            && text.bytes().all(|b| b.is_ascii_digit())
            && !(text.len() > 1 && text.starts_with('0'));
        if !well_formed {
            return Err(invalid());
        }
        let value = text.parse::<u128>().map_err(|_| invalid())?;
        let reserved_bits = (value >> 96) & ((1 << 28) - 1);
        if value >> VERSION_SHIFT != VERSION || reserved_bits != 0 {
            return Err(invalid());
        }
        Ok(SequenceNumber(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_order_by_log_index_then_offset_then_shard() {
        let a = SequenceNumber::new(ShardId(0), 5, 499);
        let b = SequenceNumber::new(ShardId(0), 6, 0);
        let child = SequenceNumber::new(ShardId(1), 1, 0);
        assert!(a < b && b < child);
        assert_eq!(b.log_index(), 6);
        assert_eq!(child.shard(), ShardId(1));
    }

    #[test]
    fn decimal_round_trip_and_shard_check() {
        let n = SequenceNumber::new(ShardId(3), 42, 7);
        let text = n.to_string();
        assert_eq!(text.parse::<SequenceNumber>().unwrap(), n);
        assert_eq!(
            SequenceNumber::parse_for_shard(&text, ShardId(3)).unwrap(),
            n
        );
        assert!(SequenceNumber::parse_for_shard(&text, ShardId(4)).is_err());
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        for bad in [
            "",
            "abc",
            "-1",
            "0123",
            "12",
            &u128::MAX.to_string(),
            "1".repeat(40).as_str(),
        ] {
            assert!(bad.parse::<SequenceNumber>().is_err(), "{bad}");
        }
    }
}

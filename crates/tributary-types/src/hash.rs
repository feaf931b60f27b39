//! Hash keys: partition key → MD5 → unsigned 128-bit big-endian integer, and the inclusive hash
//! ranges shards own.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A point of the 128-bit hash key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HashKey(pub u128);

impl HashKey {
    /// Parses an `ExplicitHashKey`: a decimal string matching `0|([1-9]\d{0,38})` within
    /// [0, 2^128 − 1].
    pub fn parse_explicit(text: &str) -> Result<HashKey, Error> {
        let well_formed = !text.is_empty()
            && text.len() <= 39
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        let parsed = if well_formed {
            text.parse::<u128>().ok()
        } else {
            None
        };
        parsed.map(HashKey).ok_or_else(|| {
            Error::invalid_argument(format!(
                "Invalid ExplicitHashKey '{text}'. ExplicitHashKey must be a decimal integer in the range \
                 [0, 340282366920938463463374607431768211455]."
            ))
        })
    }
}

/// The hash key Kinesis routes a partition key to.
pub fn hash_partition_key(partition_key: &str) -> HashKey {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    HashKey(u128::from_be_bytes(digest))
}

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKeyRange {
    pub start_inclusive: u128,
    pub end_inclusive: u128,
}

impl HashKeyRange {
    pub fn contains(&self, key: HashKey) -> bool {
        self.start_inclusive <= key.0 && key.0 <= self.end_inclusive
    }

    /// Splits the whole key space into `count` ranges as CreateStream does: step = floor(2^128/N),
    /// shard i covers [i·step, (i+1)·step − 1], and the last shard ends at 2^128 − 1.
    pub fn split_evenly(count: u32) -> Vec<HashKeyRange> {
        assert!(count > 0, "a stream has at least one shard");
        // floor(2^128 / N) == floor((2^128 - 1) / N) unless N divides 2^128, i.e. N is a power of two.
        let step = if count.is_power_of_two() {
            if count == 1 {
                0
            } else {
                1u128 << (128 - count.trailing_zeros())
            }
        } else {
            u128::MAX / u128::from(count)
        };
        (0..count)
            .map(|i| {
                let start_inclusive = step * u128::from(i);
                let end_inclusive = if i + 1 == count {
                    u128::MAX
                } else {
                    step * u128::from(i + 1) - 1
                };
                HashKeyRange {
                    start_inclusive,
                    end_inclusive,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shards_split_like_aws() {
        let ranges = HashKeyRange::split_evenly(3);
        let ends: Vec<String> = ranges.iter().map(|r| r.end_inclusive.to_string()).collect();
        assert_eq!(
            ends,
            [
                "113427455640312821154458202477256070484",
                "226854911280625642308916404954512140969",
                "340282366920938463463374607431768211455"
            ]
        );
        assert_eq!(
            ranges[1].start_inclusive.to_string(),
            "113427455640312821154458202477256070485"
        );
    }

    #[test]
    fn two_shards_split_like_aws() {
        let ranges = HashKeyRange::split_evenly(2);
        assert_eq!(
            ranges[0].end_inclusive.to_string(),
            "170141183460469231731687303715884105727"
        );
        assert_eq!(ranges[1].start_inclusive, 1u128 << 127);
        assert_eq!(
            HashKeyRange::split_evenly(1)[0],
            HashKeyRange {
                start_inclusive: 0,
                end_inclusive: u128::MAX
            }
        );
    }

    #[test]
    fn ranges_tile_the_key_space() {
        for n in [1, 2, 3, 4, 5, 7, 8, 16, 100] {
            let ranges = HashKeyRange::split_evenly(n);
            assert_eq!(ranges[0].start_inclusive, 0);
            assert_eq!(ranges.last().unwrap().end_inclusive, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end_inclusive + 1, pair[1].start_inclusive, "n={n}");
            }
        }
    }

    #[test]
    fn partition_keys_hash_with_md5_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            hash_partition_key(""),
            HashKey(0xd41d8cd98f00b204e9800998ecf8427e)
        );
    }

    #[test]
    fn explicit_hash_keys_are_validated() {
        assert_eq!(HashKey::parse_explicit("0").unwrap(), HashKey(0));
        assert_eq!(
            HashKey::parse_explicit(&u128::MAX.to_string()).unwrap(),
            HashKey(u128::MAX)
        );
        for bad in [
            "",
            "01",
            "-1",
            "abc",
            "340282366920938463463374607431768211456",
            "1".repeat(40).as_str(),
        ] {
            assert!(HashKey::parse_explicit(bad).is_err(), "{bad}");
        }
    }
}

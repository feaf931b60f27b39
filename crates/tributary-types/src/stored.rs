//! The stored form of a record: the value a shard keeps under its sequence number, and what
//! every replica reads back from disk (and a follower from a snapshot).
//!
//! Postcard of `(arrival ms, partition key, data)`. A record of an encrypted stream has an empty
//! partition key (a real one never is) and, as its data, postcard of `(key, version, salt,
//! position, ciphertext)`: the key it was sealed under and the sealed partition key and data.
//! Only the arrival time stays in clear, first, so retention and AT_TIMESTAMP read it alone.
//! Decoding takes any bytes without panicking (`fuzz/fuzz_targets/stored_record.rs`).

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A stored record value, borrowing from the bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue<'a> {
    Plain {
        arrival_ms: u64,
        partition_key: &'a str,
        data: &'a [u8],
    },
    /// Record `position` of a batch sealed under version `version` of key `key`, with the
    /// batch's `salt`.
    Sealed {
        arrival_ms: u64,
        key: &'a str,
        version: u32,
        salt: [u8; 16],
        position: u32,
        ciphertext: &'a [u8],
    },
}

#[derive(Serialize, Deserialize)]
struct RecordValue<'a> {
    arrival_ms: u64,
    partition_key: &'a str,
    /// Serialized as bytes, not as a sequence of u8 (same postcard encoding, one copy instead of
    /// a call per byte — it showed in the write path's profile).
    #[serde(serialize_with = "as_bytes")]
    data: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct SealedValue<'a> {
    key: &'a str,
    version: u32,
    salt: [u8; 16],
    position: u32,
    #[serde(serialize_with = "as_bytes")]
    ciphertext: &'a [u8],
}

fn as_bytes<S: serde::Serializer>(data: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(data)
}

fn corrupt(what: &str, error: postcard::Error) -> Error {
    Error::internal(format!("a stored record's {what} does not decode: {error}"))
}

impl<'a> StoredValue<'a> {
    pub fn arrival_ms(&self) -> u64 {
        match self {
            StoredValue::Plain { arrival_ms, .. } | StoredValue::Sealed { arrival_ms, .. } => {
                *arrival_ms
            }
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let encoded = match self {
            StoredValue::Plain {
                arrival_ms,
                partition_key,
                data,
            } => {
                if partition_key.is_empty() {
                    return Err(Error::invalid_argument(
                        "a stored record needs a partition key",
                    ));
                }
                postcard::to_stdvec(&RecordValue {
                    arrival_ms: *arrival_ms,
                    partition_key,
                    data,
                })
            }
            StoredValue::Sealed {
                arrival_ms,
                key,
                version,
                salt,
                position,
                ciphertext,
            } => {
                let sealed = postcard::to_stdvec(&SealedValue {
                    key,
                    version: *version,
                    salt: *salt,
                    position: *position,
                    ciphertext,
                })
                .map_err(|e| corrupt("sealed part", e))?;
                postcard::to_stdvec(&RecordValue {
                    arrival_ms: *arrival_ms,
                    partition_key: "",
                    data: &sealed,
                })
            }
        };
        encoded.map_err(|e| corrupt("value", e))
    }

    pub fn decode(bytes: &'a [u8]) -> Result<StoredValue<'a>, Error> {
        let value: RecordValue<'a> =
            postcard::from_bytes(bytes).map_err(|e| corrupt("value", e))?;
        if !value.partition_key.is_empty() {
            return Ok(StoredValue::Plain {
                arrival_ms: value.arrival_ms,
                partition_key: value.partition_key,
                data: value.data,
            });
        }
        let sealed: SealedValue<'a> =
            postcard::from_bytes(value.data).map_err(|e| corrupt("sealed part", e))?;
        Ok(StoredValue::Sealed {
            arrival_ms: value.arrival_ms,
            key: sealed.key,
            version: sealed.version,
            salt: sealed.salt,
            position: sealed.position,
            ciphertext: sealed.ciphertext,
        })
    }
}

/// The arrival time of a stored value, decoding nothing else.
pub fn arrival_ms_of(bytes: &[u8]) -> Result<u64, Error> {
    postcard::take_from_bytes::<u64>(bytes)
        .map(|(arrival_ms, _)| arrival_ms)
        .map_err(|e| corrupt("arrival time", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_values_keep_their_encoding() {
        // What earlier versions wrote: the data as a sequence of u8.
        #[derive(Serialize)]
        struct AsSequence<'a> {
            arrival_ms: u64,
            partition_key: &'a str,
            data: &'a [u8],
        }
        let data: Vec<u8> = (0..=255).collect();
        let old = postcard::to_stdvec(&AsSequence {
            arrival_ms: 7,
            partition_key: "k",
            data: &data,
        })
        .unwrap();
        let value = StoredValue::Plain {
            arrival_ms: 7,
            partition_key: "k",
            data: &data,
        };
        assert_eq!(old, value.encode().unwrap());
        assert_eq!(StoredValue::decode(&old).unwrap(), value);
    }

    #[test]
    fn sealed_values_round_trip_and_keep_the_arrival_time_first() {
        let value = StoredValue::Sealed {
            arrival_ms: 1_700_000_000_000,
            key: "default",
            version: 3,
            salt: [9; 16],
            position: 41,
            ciphertext: b"\x00\x01sealed",
        };
        let bytes = value.encode().unwrap();
        assert_eq!(StoredValue::decode(&bytes).unwrap(), value);
        assert_eq!(arrival_ms_of(&bytes).unwrap(), 1_700_000_000_000);
        assert!(
            StoredValue::Plain {
                arrival_ms: 1,
                partition_key: "",
                data: b""
            }
            .encode()
            .is_err()
        );
        for bad in [&b""[..], &b"\xff\xff\xff"[..], &bytes[..bytes.len() - 3]] {
            assert!(StoredValue::decode(bad).is_err());
        }
    }
}

//! KPL record aggregation and KCL de-aggregation (`../shared/KINESIS.md` §6), byte-compatible
//! with both: magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, then the 16-byte MD5 of the
//! protobuf bytes. The server never parses aggregates; producers pack many small user records
//! bound for one shard into one stored record, consumers unpack them and number the user records
//! with sub-sequence numbers.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::Message;
use prost::encoding::encoded_len_varint;
use tributary_types::{HashKey, HashKeyRange, hash_partition_key};

use crate::v1;

/// The first four bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;
/// The KPL's `AggregationMaxSize`: an aggregated record's encoded size at most.
pub const MAX_AGGREGATED_BYTES: usize = 51_200;
/// The partition key of every aggregated record (the KPL's): routing uses its explicit hash key.
pub const AGGREGATED_PARTITION_KEY: &str = "a";

/// The KPL's `messages.proto` (proto2), as prost messages.
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AggregatedRecord {
        #[prost(string, repeated, tag = "1")]
        pub partition_key_table: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub explicit_hash_key_table: Vec<String>,
        #[prost(message, repeated, tag = "3")]
        pub records: Vec<Record>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(uint64, required, tag = "1")]
        pub partition_key_index: u64,
        #[prost(uint64, optional, tag = "2")]
        pub explicit_hash_key_index: Option<u64>,
        #[prost(bytes = "bytes", required, tag = "3")]
        pub data: bytes::Bytes,
        #[prost(message, repeated, tag = "4")]
        pub tags: Vec<Tag>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tag {
        #[prost(string, required, tag = "1")]
        pub key: String,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }
}

/// Packs user records into one aggregated record, tracking its exact encoded size as it grows.
#[derive(Debug, Default)]
pub struct Aggregator {
    message: wire::AggregatedRecord,
    key_index: HashMap<String, u64>,
    hash_key_index: HashMap<String, u64>,
    /// The protobuf's encoded length so far.
    encoded_len: usize,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// The aggregated record's size (magic, protobuf and digest) once encoded.
    pub fn size(&self) -> usize {
        MAGIC.len() + self.encoded_len + DIGEST_LEN
    }

    /// [`Aggregator::size`] if this user record were added.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key_opt: Option<&str>,
        data_len: usize,
    ) -> usize {
        self.size() + self.growth(partition_key, explicit_hash_key_opt, data_len)
    }

    fn growth(
        &self,
        partition_key: &str,
        explicit_hash_key_opt: Option<&str>,
        data_len: usize,
    ) -> usize {
        let table_entry = |text: &str| 1 + encoded_len_varint(text.len() as u64) + text.len();
        let mut growth = 0;
        let key_index = match self.key_index.get(partition_key) {
            Some(index) => *index,
            None => {
                growth += table_entry(partition_key);
                self.key_index.len() as u64
            }
        };
        let mut body =
            1 + encoded_len_varint(key_index) + 1 + encoded_len_varint(data_len as u64) + data_len;
        if let Some(hash_key) = explicit_hash_key_opt {
            let index = match self.hash_key_index.get(hash_key) {
                Some(index) => *index,
                None => {
                    growth += table_entry(hash_key);
                    self.hash_key_index.len() as u64
                }
            };
            body += 1 + encoded_len_varint(index);
        }
        growth + 1 + encoded_len_varint(body as u64) + body
    }

    pub fn push(&mut self, partition_key: &str, explicit_hash_key_opt: Option<&str>, data: Bytes) {
        self.encoded_len += self.growth(partition_key, explicit_hash_key_opt, data.len());
        let partition_key_index = intern(
            &mut self.message.partition_key_table,
            &mut self.key_index,
            partition_key,
        );
        let explicit_hash_key_index = explicit_hash_key_opt.map(|hash_key| {
            intern(
                &mut self.message.explicit_hash_key_table,
                &mut self.hash_key_index,
                hash_key,
            )
        });
        self.message.records.push(wire::Record {
            partition_key_index,
            explicit_hash_key_index,
            data,
            tags: Vec::new(),
        });
    }

    /// The aggregated record: magic, protobuf, MD5 of the protobuf.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.size());
        out.put_slice(&MAGIC);
        self.message
            .encode(&mut out)
            .expect("BytesMut grows as needed");
        let digest = Md5::digest(&out[MAGIC.len()..]);
        out.put_slice(&digest);
        out.freeze()
    }
}

/// The index of `text` in a key table, adding it when new (the KPL shares repeated keys).
fn intern(table: &mut Vec<String>, index: &mut HashMap<String, u64>, text: &str) -> u64 {
    if let Some(position) = index.get(text) {
        return *position;
    }
    let position = table.len() as u64;
    table.push(text.to_string());
    index.insert(text.to_string(), position);
    position
}

/// A record as a consumer sees it after de-aggregation: one user record, numbered by the stored
/// record's sequence number and its position inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub sequence_number: String,
    /// The position inside an aggregated record (0 for a record that was not aggregated).
    pub sub_sequence_number: u64,
    /// How many user records the stored record held (1 when it was not aggregated).
    pub records_in_stored: u64,
    pub partition_key: String,
    pub explicit_hash_key_opt: Option<String>,
    pub data: Bytes,
    pub approximate_arrival_timestamp_ms: u64,
    /// NONE or KMS: how the stored record was kept at rest.
    pub encryption_type: String,
}

impl UserRecord {
    pub fn is_aggregated(&self) -> bool {
        self.records_in_stored > 1
    }

    /// The last user record of its stored record: checkpointing it covers the whole record.
    pub fn is_last_in_stored(&self) -> bool {
        self.sub_sequence_number + 1 >= self.records_in_stored
    }
}

/// The user records of a stored record's data, or `None` when it is not an aggregated record
/// (KCL's rule: the magic, more than a digest after it, a matching MD5, a valid protobuf).
pub fn parse(data: &[u8]) -> Option<Vec<(String, Option<String>, Bytes)>> {
    let body = data.strip_prefix(&MAGIC)?;
    if body.len() <= DIGEST_LEN {
        return None;
    }
    let (message, digest) = body.split_at(body.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let aggregated = wire::AggregatedRecord::decode(message).ok()?;
    aggregated
        .records
        .into_iter()
        .map(|record| {
            let partition_key = aggregated
                .partition_key_table
                .get(usize::try_from(record.partition_key_index).ok()?)?
                .clone();
            let hash_key_opt = match record.explicit_hash_key_index {
                Some(index) => Some(
                    aggregated
                        .explicit_hash_key_table
                        .get(usize::try_from(index).ok()?)?
                        .clone(),
                ),
                None => None,
            };
            Some((partition_key, hash_key_opt, record.data))
        })
        .collect()
}

/// Turns stored records into user records, unpacking aggregated ones. With the shard's hash
/// range, user records that hash outside it are dropped (after a reshard, an aggregate put
/// before it may hold records that now belong to a sibling shard), as the KCL does.
pub fn deaggregate(records: Vec<v1::Record>, range_opt: Option<HashKeyRange>) -> Vec<UserRecord> {
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let Some(users) = parse(&record.data) else {
            out.push(UserRecord {
                sequence_number: record.sequence_number,
                sub_sequence_number: 0,
                records_in_stored: 1,
                partition_key: record.partition_key,
                explicit_hash_key_opt: None,
                data: record.data,
                approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
                encryption_type: record.encryption_type,
            });
            continue;
        };
        let count = users.len() as u64;
        for (sub, (partition_key, hash_key_opt, data)) in users.into_iter().enumerate() {
            if let Some(range) = range_opt
                && !range.contains(hash_key_of(&partition_key, hash_key_opt.as_deref()))
            {
                continue;
            }
            out.push(UserRecord {
                sequence_number: record.sequence_number.clone(),
                sub_sequence_number: sub as u64,
                records_in_stored: count,
                partition_key,
                explicit_hash_key_opt: hash_key_opt,
                data,
                approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
                encryption_type: record.encryption_type.clone(),
            });
        }
    }
    out
}

fn hash_key_of(partition_key: &str, explicit_hash_key_opt: Option<&str>) -> HashKey {
    explicit_hash_key_opt
        .and_then(|text| HashKey::parse_explicit(text).ok())
        .unwrap_or_else(|| hash_partition_key(partition_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sequence_number: &str, data: Bytes) -> v1::Record {
        v1::Record {
            sequence_number: sequence_number.into(),
            approximate_arrival_timestamp_ms: 7,
            data,
            partition_key: AGGREGATED_PARTITION_KEY.into(),
            encryption_type: "KMS".into(),
        }
    }

    #[test]
    fn size_tracks_the_encoding_exactly() {
        let mut aggregator = Aggregator::new();
        for i in 0..300u64 {
            let key = format!("key-{}", i % 17);
            let hash_key = (i % 3 == 0).then(|| format!("{}", i * 1_000_003));
            let data = Bytes::from(vec![b'x'; (i * 37 % 700) as usize]);
            let predicted = aggregator.size_with(&key, hash_key.as_deref(), data.len());
            aggregator.push(&key, hash_key.as_deref(), data);
            assert_eq!(aggregator.size(), predicted);
            assert_eq!(
                aggregator.encode().len(),
                predicted,
                "after {} records",
                i + 1
            );
        }
    }

    #[test]
    fn round_trip_numbers_user_records_in_order() {
        let mut aggregator = Aggregator::new();
        aggregator.push("alpha", None, Bytes::from_static(b"one"));
        aggregator.push("beta", Some("42"), Bytes::from_static(b"two"));
        aggregator.push("alpha", None, Bytes::from_static(b""));
        let users = deaggregate(vec![stored("9", aggregator.encode())], None);
        let seen: Vec<(u64, &str, Option<&str>, &[u8])> = users
            .iter()
            .map(|u| {
                (
                    u.sub_sequence_number,
                    u.partition_key.as_str(),
                    u.explicit_hash_key_opt.as_deref(),
                    u.data.as_ref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, "alpha", None, &b"one"[..]),
                (1, "beta", Some("42"), &b"two"[..]),
                (2, "alpha", None, &b""[..]),
            ]
        );
        assert!(
            users
                .iter()
                .all(|u| u.sequence_number == "9" && u.records_in_stored == 3)
        );
        assert!(users[2].is_last_in_stored() && !users[1].is_last_in_stored());
    }

    #[test]
    fn anything_but_a_valid_aggregate_passes_through() {
        let mut aggregator = Aggregator::new();
        aggregator.push("k", None, Bytes::from_static(b"payload"));
        let good = aggregator.encode();
        let mut corrupted = good.to_vec();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        for data in [
            Bytes::from_static(b"plain bytes"),
            Bytes::copy_from_slice(&MAGIC),
            Bytes::from([&MAGIC[..], &[0u8; 16]].concat()),
            Bytes::from(corrupted),
        ] {
            let users = deaggregate(vec![stored("1", data.clone())], None);
            assert_eq!(users.len(), 1);
            assert_eq!(users[0].data, data);
            assert!(!users[0].is_aggregated());
        }
    }

    #[test]
    fn user_records_outside_the_shard_are_dropped() {
        let lower_half = HashKeyRange {
            start_inclusive: 0,
            end_inclusive: u128::MAX / 2,
        };
        let mut aggregator = Aggregator::new();
        aggregator.push("k", Some("5"), Bytes::from_static(b"inside"));
        aggregator.push(
            "k",
            Some(&(u128::MAX - 5).to_string()),
            Bytes::from_static(b"outside"),
        );
        let users = deaggregate(vec![stored("1", aggregator.encode())], Some(lower_half));
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].data.as_ref(), b"inside");
        assert_eq!(users[0].records_in_stored, 2);
    }
}

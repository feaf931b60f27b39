//! The KPL's aggregated record format (`../shared/KINESIS.md` §6), byte-compatible with the KPL
//! and the KCL: magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, then the 16-byte MD5 of the
//! protobuf bytes. Producers pack many small user records bound for one shard into one stored
//! record ([`Aggregator`]); consumers unpack them ([`parse`]). The server never parses
//! aggregates; a consumer parses whatever bytes a stream holds, so [`parse`] is fuzzed
//! (`fuzz/fuzz_targets/kpl_aggregated.rs`).

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::Message;
use prost::encoding::encoded_len_varint;

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
    // An "aggregate" of no user records is passed through as the stored record it is: taking it
    // for an aggregate would make a stored record vanish from a consumer's view. (Found by the
    // kpl_aggregated fuzz target: such a record did not re-aggregate to itself.)
    if aggregated.records.is_empty() {
        return None;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn parse_reads_what_the_aggregator_wrote_and_nothing_else() {
        let mut aggregator = Aggregator::new();
        aggregator.push("alpha", None, Bytes::from_static(b"one"));
        aggregator.push("beta", Some("42"), Bytes::from_static(b"two"));
        let records = parse(&aggregator.encode()).expect("an aggregate");
        assert_eq!(
            records,
            vec![
                ("alpha".to_string(), None, Bytes::from_static(b"one")),
                (
                    "beta".to_string(),
                    Some("42".to_string()),
                    Bytes::from_static(b"two")
                ),
            ]
        );
        assert_eq!(parse(b"plain"), None);
        assert_eq!(parse(&MAGIC), None);
        // A framed protobuf with a key table but no records is not an aggregate.
        let body = [0x0a, 0x01, b'k'];
        let framed = [&MAGIC[..], &body, Md5::digest(body).as_slice()].concat();
        assert_eq!(parse(&framed), None);
    }
}

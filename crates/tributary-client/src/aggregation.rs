//! KCL de-aggregation: stored records to the user records a KPL producer packed into them (the
//! format is `tributary_kinesis::aggregation`), numbered with sub-sequence numbers.

use bytes::Bytes;
pub use tributary_kinesis::aggregation::{
    AGGREGATED_PARTITION_KEY, Aggregator, MAGIC, MAX_AGGREGATED_BYTES, parse,
};
use tributary_types::{HashKey, HashKeyRange, hash_partition_key};

use crate::v1;

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

//! Records as producers send them and as shards store them, with Kinesis' limits.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hash::{HashKey, hash_partition_key};
use crate::sequence::SequenceNumber;
use crate::stream::EncryptionType;

/// Data plus partition key of one record, at most 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Partition keys are 1..=256 Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// One PutRecords call carries at most 500 records ...
pub const MAX_PUT_RECORDS_ENTRIES: usize = 500;
/// ... and at most 5 MiB including partition keys.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// GetRecords returns at most this many records per call (and it is the default limit).
pub const MAX_GET_RECORDS_LIMIT: u32 = 10_000;
/// A stream has at most this many shards at creation (Kinesis' default account quota is 500).
pub const MAX_SHARDS_PER_STREAM: u32 = 500;
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;

/// One record of a put request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecordEntry {
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<String>,
}

/// A record as a shard stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub sequence_number: SequenceNumber,
    pub approximate_arrival_timestamp_ms: u64,
    pub partition_key: String,
    pub data: Bytes,
    /// KMS when the record was stored sealed (the stream was encrypted when it was put).
    pub encryption_type: EncryptionType,
}

/// Checks one put entry against Kinesis' rules and returns the hash key it routes to.
pub fn validate_put_entry(entry: &PutRecordEntry) -> Result<HashKey, Error> {
    let key_chars = entry.partition_key.chars().count();
    if key_chars == 0 || key_chars > MAX_PARTITION_KEY_CHARS {
        return Err(Error::invalid_argument(format!(
            "Value at 'partitionKey' failed to satisfy constraint: Member must have length between 1 and \
             {MAX_PARTITION_KEY_CHARS} (got {key_chars} characters)"
        )));
    }
    let size = entry.data.len() + entry.partition_key.len();
    if size > MAX_RECORD_BYTES {
        return Err(Error::invalid_argument(format!(
            "Record size {size} bytes (data plus partition key) exceeds the limit of {MAX_RECORD_BYTES} bytes"
        )));
    }
    match &entry.explicit_hash_key {
        Some(text) => HashKey::parse_explicit(text),
        None => Ok(hash_partition_key(&entry.partition_key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, data_len: usize) -> PutRecordEntry {
        PutRecordEntry {
            partition_key: key.to_string(),
            data: Bytes::from(vec![7u8; data_len]),
            explicit_hash_key: None,
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert!(validate_put_entry(&entry("k", 10)).is_ok());
        assert!(validate_put_entry(&entry("", 10)).is_err());
        assert!(
            validate_put_entry(&entry(&"é".repeat(256), 10)).is_ok(),
            "256 characters is allowed"
        );
        assert!(validate_put_entry(&entry(&"k".repeat(257), 10)).is_err());
        assert!(validate_put_entry(&entry("k", MAX_RECORD_BYTES - 1)).is_ok());
        assert!(validate_put_entry(&entry("k", MAX_RECORD_BYTES)).is_err());
    }
}

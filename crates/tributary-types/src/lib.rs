//! The vocabulary every Tributary crate shares: typed ids, hash keys and ranges, sequence numbers,
//! records and their validation, shard iterators and the closed set of error codes.
//!
//! No I/O and no async here: everything is plain data and pure functions, so it is unit-tested
//! directly.

mod error;
mod hash;
mod ids;
mod iterator;
mod record;
mod sequence;
pub mod stored;
mod stream;
pub mod table;
mod token;

pub use error::{Error, ErrorCode, Result};
pub use hash::{HashKey, HashKeyRange, hash_partition_key};
pub use ids::{GroupId, METADATA_GROUP, NodeId, ShardId, StreamName};
pub use iterator::{IteratorPosition, ShardIterator, ShardIteratorType};
pub use record::{
    DEFAULT_RETENTION_HOURS, MAX_GET_RECORDS_LIMIT, MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS_BYTES,
    MAX_PUT_RECORDS_ENTRIES, MAX_RECORD_BYTES, MAX_RETENTION_HOURS, MAX_SHARDS_PER_STREAM,
    MIN_RETENTION_HOURS, PutRecordEntry, StoredRecord, validate_put_entry,
};
pub use sequence::SequenceNumber;
pub use stream::{
    ConsumerName, EncryptionType, MAX_CONSUMERS_PER_STREAM, MAX_TAGS_PER_CALL, MAX_TAGS_PER_STREAM,
    ON_DEMAND_INITIAL_SHARDS, StreamMode, validate_tag, validate_tag_counts,
};
pub use token::{NEXT_TOKEN_TTL_MS, NextToken};

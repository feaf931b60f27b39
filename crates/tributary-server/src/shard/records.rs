//! The records column family: `group | sequence number → (arrival ms, partition key, data)`.

use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};
use tributary_storage::{CF_RECORDS, Store, io_error, keys};
use tributary_types::{GroupId, SequenceNumber, StoredRecord};

#[derive(Serialize, Deserialize)]
struct RecordValue<'a> {
    arrival_ms: u64,
    partition_key: &'a str,
    data: &'a [u8],
}

pub fn put(
    store: &Store,
    batch: &mut WriteBatch,
    group: GroupId,
    sequence_number: SequenceNumber,
    arrival_ms: u64,
    partition_key: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let value = postcard::to_stdvec(&RecordValue {
        arrival_ms,
        partition_key,
        data,
    })
    .map_err(io_error)?;
    batch.put_cf(
        store.cf(CF_RECORDS),
        keys::record_key(group, sequence_number),
        value,
    );
    Ok(())
}

/// Up to `limit` records (and about `max_bytes` of data, at least one record) from
/// `from_inclusive` on, in sequence order.
pub fn read(
    store: &Store,
    group: GroupId,
    from_inclusive: SequenceNumber,
    limit: usize,
    max_bytes: usize,
) -> std::io::Result<Vec<StoredRecord>> {
    let mut options = ReadOptions::default();
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    let from = keys::record_key(group, from_inclusive);
    let cf = store.cf(CF_RECORDS);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in
        store
            .db()
            .iterator_cf_opt(cf, options, IteratorMode::From(&from, Direction::Forward))
    {
        if out.len() >= limit || (bytes >= max_bytes && !out.is_empty()) {
            break;
        }
        let (key, value) = item.map_err(io_error)?;
        let decoded: RecordValue = postcard::from_bytes(&value).map_err(io_error)?;
        bytes += decoded.data.len() + decoded.partition_key.len();
        out.push(StoredRecord {
            sequence_number: keys::sequence_number_of(&key),
            approximate_arrival_timestamp_ms: decoded.arrival_ms,
            partition_key: decoded.partition_key.to_string(),
            data: Bytes::copy_from_slice(decoded.data),
        });
    }
    Ok(out)
}

/// The newest record of a group, if any.
pub fn last(store: &Store, group: GroupId) -> std::io::Result<Option<StoredRecord>> {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    let cf = store.cf(CF_RECORDS);
    let Some(item) = store
        .db()
        .iterator_cf_opt(cf, options, IteratorMode::End)
        .next()
    else {
        return Ok(None);
    };
    let (key, value) = item.map_err(io_error)?;
    let decoded: RecordValue = postcard::from_bytes(&value).map_err(io_error)?;
    Ok(Some(StoredRecord {
        sequence_number: keys::sequence_number_of(&key),
        approximate_arrival_timestamp_ms: decoded.arrival_ms,
        partition_key: decoded.partition_key.to_string(),
        data: Bytes::copy_from_slice(decoded.data),
    }))
}

/// Every record of a group as raw (key, value) pairs, for snapshots.
pub fn dump(store: &Store, group: GroupId) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    let snapshot = store.db().snapshot();
    let mut out = Vec::new();
    for item in snapshot.iterator_cf_opt(store.cf(CF_RECORDS), options, IteratorMode::Start) {
        let (key, value) = item.map_err(io_error)?;
        out.push((key.to_vec(), value.to_vec()));
    }
    Ok(out)
}

//! The records column family: `group | sequence number → stored value`, in the format of
//! `tributary_types::stored` (arrival time, then the partition key and data, or both sealed
//! for an encrypted stream).

use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use tributary_storage::{CF_RECORDS, Store, io_error, keys};
use tributary_types::stored::{StoredValue, arrival_ms_of};
use tributary_types::{EncryptionType, Error, GroupId, SequenceNumber, StoredRecord};

use crate::keyring::RecordOpener;

pub fn put(
    store: &Store,
    batch: &mut WriteBatch,
    group: GroupId,
    sequence_number: SequenceNumber,
    value: &StoredValue<'_>,
) -> std::io::Result<()> {
    let value = value.encode().map_err(|e| io_error(e.message))?;
    batch.put_cf(
        store.cf(CF_RECORDS),
        keys::record_key(group, sequence_number),
        value,
    );
    Ok(())
}

/// Why a read failed: the store, or a sealed record this node cannot open.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Sealed(Error),
}

impl From<std::io::Error> for ReadError {
    fn from(error: std::io::Error) -> ReadError {
        ReadError::Io(error)
    }
}

/// A stored record value as the read path returns it, sealed records opened.
fn decode(
    key: &[u8],
    value: &[u8],
    opener: &mut RecordOpener<'_>,
) -> Result<StoredRecord, ReadError> {
    let sequence_number = keys::sequence_number_of(key);
    match StoredValue::decode(value).map_err(|e| io_error(e.message))? {
        StoredValue::Plain {
            arrival_ms,
            partition_key,
            data,
        } => Ok(StoredRecord {
            sequence_number,
            approximate_arrival_timestamp_ms: arrival_ms,
            partition_key: partition_key.to_string(),
            data: Bytes::copy_from_slice(data),
            encryption_type: EncryptionType::None,
        }),
        StoredValue::Sealed {
            arrival_ms,
            key,
            version,
            salt,
            position,
            ciphertext,
        } => {
            let (partition_key, data) = opener
                .open(key, version, &salt, position, ciphertext)
                .map_err(ReadError::Sealed)?;
            Ok(StoredRecord {
                sequence_number,
                approximate_arrival_timestamp_ms: arrival_ms,
                partition_key,
                data,
                encryption_type: EncryptionType::Kms,
            })
        }
    }
}

/// Up to `limit` records and `max_bytes` of data and keys (but at least one record) from
/// `from_inclusive` on, in sequence order, and whether a limit left records unread. Sealed
/// records are opened with `opener`.
pub fn read(
    store: &Store,
    group: GroupId,
    from_inclusive: SequenceNumber,
    limit: usize,
    max_bytes: usize,
    opener: &mut RecordOpener<'_>,
) -> Result<(Vec<StoredRecord>, bool), ReadError> {
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
        let (key, value) = item.map_err(io_error)?;
        if out.len() >= limit {
            return Ok((out, true));
        }
        let record = decode(&key, &value, opener)?;
        let size = record.data.len() + record.partition_key.len();
        if bytes + size > max_bytes && !out.is_empty() {
            return Ok((out, true));
        }
        bytes += size;
        out.push(record);
    }
    Ok((out, false))
}

/// The number of the first record (in sequence order) that arrived at or after `timestamp_ms`.
/// Arrival times are stamped by the receiving node and are not strictly monotonic, so this is
/// Kinesis' rule exactly: a scan for the first qualifying record, decoding only the timestamp.
pub fn first_arrived_at_or_after(
    store: &Store,
    group: GroupId,
    timestamp_ms: u64,
) -> std::io::Result<Option<SequenceNumber>> {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    for item in store
        .db()
        .iterator_cf_opt(store.cf(CF_RECORDS), options, IteratorMode::Start)
    {
        let (key, value) = item.map_err(io_error)?;
        let arrival_ms = arrival_ms_of(&value).map_err(|e| io_error(e.message))?;
        if arrival_ms >= timestamp_ms {
            return Ok(Some(keys::sequence_number_of(&key)));
        }
    }
    Ok(None)
}

/// Deletes, from the oldest record on, every record that arrived before `before_ms`, stopping at
/// the first that did not. Returns how many were removed. Reads the committed records, so the
/// caller writes any pending batch first.
pub fn trim(
    store: &Store,
    batch: &mut WriteBatch,
    group: GroupId,
    before_ms: u64,
) -> std::io::Result<u64> {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    let mut removed = 0u64;
    let mut end_opt: Option<Vec<u8>> = None;
    for item in store
        .db()
        .iterator_cf_opt(store.cf(CF_RECORDS), options, IteratorMode::Start)
    {
        let (key, value) = item.map_err(io_error)?;
        let arrival_ms = arrival_ms_of(&value).map_err(|e| io_error(e.message))?;
        if arrival_ms >= before_ms {
            end_opt = Some(key.to_vec());
            break;
        }
        removed += 1;
    }
    if removed > 0 {
        let end = end_opt.unwrap_or_else(|| keys::group_end(group).to_vec());
        batch.delete_range_cf(
            store.cf(CF_RECORDS),
            keys::group_prefix(group).to_vec(),
            end,
        );
    }
    Ok(removed)
}

/// The arrival time of the oldest retained record, if any.
pub fn oldest_arrival_ms(store: &Store, group: GroupId) -> std::io::Result<Option<u64>> {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
    options.set_iterate_upper_bound(keys::group_end(group).to_vec());
    let Some(item) = store
        .db()
        .iterator_cf_opt(store.cf(CF_RECORDS), options, IteratorMode::Start)
        .next()
    else {
        return Ok(None);
    };
    let (_, value) = item.map_err(io_error)?;
    let arrival_ms = arrival_ms_of(&value).map_err(|e| io_error(e.message))?;
    Ok(Some(arrival_ms))
}

/// The sequence number and arrival time of the newest record of a group, if any.
pub fn last(store: &Store, group: GroupId) -> std::io::Result<Option<(SequenceNumber, u64)>> {
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
    let arrival_ms = arrival_ms_of(&value).map_err(|e| io_error(e.message))?;
    Ok(Some((keys::sequence_number_of(&key), arrival_ms)))
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

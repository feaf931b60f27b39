//! Key layout. Big-endian integers so RocksDB's byte order is numeric order.

use tributary_types::{GroupId, SequenceNumber};

pub const TAG_VOTE: u8 = 1;
pub const TAG_LAST_PURGED: u8 = 2;
pub const TAG_COMMITTED: u8 = 3;
pub const TAG_SM_APPLIED: u8 = 1;
pub const TAG_SM_MEMBERSHIP: u8 = 2;
pub const TAG_SM_STATE: u8 = 3;
/// A shard group's ending sequence number, once sealed by a reshard.
pub const TAG_SM_SEALED: u8 = 4;
/// A shard's idempotent-put state, one key per producer id: `tag_key | producer id`.
pub const TAG_SM_PRODUCER: u8 = 5;

pub fn group_prefix(group: GroupId) -> [u8; 8] {
    group.0.to_be_bytes()
}

/// The first key after every key of `group`.
pub fn group_end(group: GroupId) -> [u8; 8] {
    (group.0 + 1).to_be_bytes()
}

pub fn log_key(group: GroupId, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

pub fn log_index_of(key: &[u8]) -> u64 {
    let mut index = [0u8; 8];
    index.copy_from_slice(&key[8..16]);
    u64::from_be_bytes(index)
}

pub fn tag_key(group: GroupId, tag: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8] = tag;
    key
}

/// The state-machine key of one producer of a shard group (see [`TAG_SM_PRODUCER`]).
pub fn producer_key(group: GroupId, producer_id: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..9].copy_from_slice(&tag_key(group, TAG_SM_PRODUCER));
    key[9..].copy_from_slice(&producer_id.to_be_bytes());
    key
}

pub fn producer_id_of(key: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[9..17]);
    u64::from_be_bytes(id)
}

pub fn record_key(group: GroupId, sequence_number: SequenceNumber) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8..].copy_from_slice(&sequence_number.0.to_be_bytes());
    key
}

pub fn sequence_number_of(key: &[u8]) -> SequenceNumber {
    let mut value = [0u8; 16];
    value.copy_from_slice(&key[8..24]);
    SequenceNumber(u128::from_be_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically() {
        assert!(log_key(GroupId(1), 255) < log_key(GroupId(1), 256));
        assert!(log_key(GroupId(1), u64::MAX) < log_key(GroupId(2), 0));
        assert!(
            record_key(GroupId(1), SequenceNumber(u128::MAX)).as_slice()
                < group_end(GroupId(1)).as_slice()
        );
        assert_eq!(log_index_of(&log_key(GroupId(9), 77)), 77);
    }
}

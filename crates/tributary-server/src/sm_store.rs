//! What both state machines persist beside their own state: the applied log id and the last
//! membership, always written in the same batch as the state they describe.

use openraft::RaftTypeConfig;
use openraft::type_config::alias::{LogIdOf, StoredMembershipOf};
use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tributary_storage::{CF_SM, Store, io_error, keys};
use tributary_types::GroupId;

pub fn read<T: DeserializeOwned>(
    store: &Store,
    group: GroupId,
    tag: u8,
) -> std::io::Result<Option<T>> {
    read_bytes(store, group, tag)?
        .map(|bytes| postcard::from_bytes(&bytes).map_err(io_error))
        .transpose()
}

/// The value under `tag`, as stored (for values with their own encoding).
pub fn read_bytes(store: &Store, group: GroupId, tag: u8) -> std::io::Result<Option<Vec<u8>>> {
    store
        .db()
        .get_cf(store.cf(CF_SM), keys::tag_key(group, tag))
        .map_err(io_error)
}

pub fn put<T: Serialize>(
    store: &Store,
    batch: &mut WriteBatch,
    group: GroupId,
    tag: u8,
    value: &T,
) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(value).map_err(io_error)?;
    put_bytes(store, batch, group, tag, bytes);
    Ok(())
}

/// Puts `bytes` under `tag` as they are (for values with their own encoding).
pub fn put_bytes(store: &Store, batch: &mut WriteBatch, group: GroupId, tag: u8, bytes: Vec<u8>) {
    batch.put_cf(store.cf(CF_SM), keys::tag_key(group, tag), bytes);
}

/// The applied log id and membership of a group, as last persisted.
pub fn read_applied<C: RaftTypeConfig>(
    store: &Store,
    group: GroupId,
) -> std::io::Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>)> {
    let applied = read::<Option<LogIdOf<C>>>(store, group, keys::TAG_SM_APPLIED)?.flatten();
    let membership =
        read::<StoredMembershipOf<C>>(store, group, keys::TAG_SM_MEMBERSHIP)?.unwrap_or_default();
    Ok((applied, membership))
}

pub fn put_applied<C: RaftTypeConfig>(
    store: &Store,
    batch: &mut WriteBatch,
    group: GroupId,
    applied: &Option<LogIdOf<C>>,
    membership: &StoredMembershipOf<C>,
) -> std::io::Result<()> {
    put(store, batch, group, keys::TAG_SM_APPLIED, applied)?;
    put(store, batch, group, keys::TAG_SM_MEMBERSHIP, membership)
}

//! openraft's log storage for one group, on the node's shared RocksDB.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tributary_types::GroupId;

use crate::db::{CF_RAFT_LOG, CF_RAFT_STATE, Store};
use crate::{io_error, keys};

/// The Raft log and vote of one group.
pub struct LogStore<C> {
    store: Store,
    group: GroupId,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            store: self.store.clone(),
            group: self.group,
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    pub fn new(store: Store, group: GroupId) -> Self {
        LogStore {
            store,
            group,
            _config: PhantomData,
        }
    }

    fn read_tag<T: DeserializeOwned>(&self, tag: u8) -> std::io::Result<Option<T>> {
        let cf = self.store.cf(CF_RAFT_STATE);
        let bytes = self
            .store
            .db()
            .get_cf(cf, keys::tag_key(self.group, tag))
            .map_err(io_error)?;
        bytes
            .map(|bytes| postcard::from_bytes(&bytes).map_err(io_error))
            .transpose()
    }

    fn put_tag<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        tag: u8,
        value: &T,
    ) -> std::io::Result<()> {
        let bytes = postcard::to_stdvec(value).map_err(io_error)?;
        batch.put_cf(
            self.store.cf(CF_RAFT_STATE),
            keys::tag_key(self.group, tag),
            bytes,
        );
        Ok(())
    }

    async fn write_synced(&self, batch: WriteBatch) -> std::io::Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write_synced(batch))
            .await
            .map_err(io_error)?
    }

    fn last_entry(&self) -> std::io::Result<Option<EntryOf<C>>> {
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::log_key(self.group, 0).to_vec());
        options.set_iterate_upper_bound(keys::group_end(self.group).to_vec());
        let cf = self.store.cf(CF_RAFT_LOG);
        let mut iter = self
            .store
            .db()
            .iterator_cf_opt(cf, options, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(io_error)?;
                Ok(Some(postcard::from_bytes(&value).map_err(io_error)?))
            }
        }
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::io::Result<Vec<C::Entry>> {
        let start = match range.start_bound() {
            Bound::Included(index) => *index,
            Bound::Excluded(index) => index + 1,
            Bound::Unbounded => 0,
        };
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(keys::group_end(self.group).to_vec());
        let from = keys::log_key(self.group, start);
        let cf = self.store.cf(CF_RAFT_LOG);
        let mut entries = Vec::new();
        for item in self.store.db().iterator_cf_opt(
            cf,
            options,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (key, value) = item.map_err(io_error)?;
            let index = keys::log_index_of(&key);
            if !range.contains(&index) {
                break;
            }
            let entry: EntryOf<C> = postcard::from_bytes(&value).map_err(io_error)?;
            debug_assert_eq!(
                entry.index(),
                index,
                "log entry stored under the wrong index"
            );
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> std::io::Result<Option<VoteOf<C>>> {
        self.read_tag(keys::TAG_VOTE)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> std::io::Result<LogState<C>> {
        let last_purged_log_id: Option<LogIdOf<C>> = self.read_tag(keys::TAG_LAST_PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> std::io::Result<()> {
        let mut batch = WriteBatch::default();
        self.put_tag(&mut batch, keys::TAG_VOTE, vote)?;
        self.write_synced(batch).await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> std::io::Result<()> {
        // Not synced: losing it only means re-deriving the commit index from a quorum.
        let mut batch = WriteBatch::default();
        self.put_tag(&mut batch, keys::TAG_COMMITTED, &committed)?;
        self.store.write(batch)
    }

    async fn read_committed(&mut self) -> std::io::Result<Option<LogIdOf<C>>> {
        Ok(self
            .read_tag::<Option<LogIdOf<C>>>(keys::TAG_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> std::io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.store.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = postcard::to_stdvec(&entry).map_err(io_error)?;
            batch.put_cf(cf, keys::log_key(self.group, entry.index()), value);
        }
        // Visible to readers at once; durable (and acknowledged) after the shared WAL sync.
        self.store.write(batch)?;
        self.store
            .flusher()
            .after_sync(Box::new(move |result| callback.io_completed(result)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> std::io::Result<()> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        tracing::debug!(group = %self.group, first_removed, "truncate log");
        let mut batch = WriteBatch::default();
        let cf = self.store.cf(CF_RAFT_LOG);
        batch.delete_range_cf(
            cf,
            keys::log_key(self.group, first_removed).as_slice(),
            keys::group_end(self.group).as_slice(),
        );
        self.write_synced(batch).await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> std::io::Result<()> {
        tracing::debug!(group = %self.group, upto = log_id.index(), "purge log");
        let mut batch = WriteBatch::default();
        self.put_tag(&mut batch, keys::TAG_LAST_PURGED, &log_id)?;
        let cf = self.store.cf(CF_RAFT_LOG);
        batch.delete_range_cf(
            cf,
            keys::log_key(self.group, 0),
            keys::log_key(self.group, log_id.index() + 1),
        );
        self.write_synced(batch).await
    }
}

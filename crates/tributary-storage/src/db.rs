//! Opening the node's RocksDB and the operations every group shares.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions,
};
use tributary_types::GroupId;

use crate::flusher::Flusher;
use crate::{io_error, keys};

pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_STATE: &str = "raft_state";
pub const CF_SM: &str = "sm";
pub const CF_RECORDS: &str = "records";
const COLUMN_FAMILIES: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_STATE, CF_SM, CF_RECORDS];

/// The node's database handle; cheap to clone. The database closes when the last clone drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    // Declared first so it drops (and joins its thread) before the database handle.
    flusher: Flusher,
    db: Arc<DB>,
}

/// Record data is compressed (LZ4) once it reaches the stored records. The Raft log holds the
/// same bytes only until they are applied and purged, and the state CFs are small: compressing
/// them cost CPU on every flush for nothing (BENCHMARKS.md, "Where a put spends its time").
fn column_family_options(name: &str) -> Options {
    let mut options = Options::default();
    let compression = if name == CF_RECORDS {
        DBCompressionType::Lz4
    } else {
        DBCompressionType::None
    };
    options.set_compression_type(compression);
    options
}

impl Store {
    pub fn open(path: &Path) -> std::io::Result<Store> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Two cores are shared by three nodes, clients and load: keep background work small.
        options.set_max_background_jobs(2);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options(name)));
        let db = Arc::new(DB::open_cf_descriptors(&options, path, descriptors).map_err(io_error)?);
        let flusher = Flusher::start(db.clone())?;
        Ok(Store {
            inner: Arc::new(Inner { flusher, db }),
        })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.inner.db
    }

    pub(crate) fn flusher(&self) -> &Flusher {
        &self.inner.flusher
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.inner
            .db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} is created at open"))
    }

    /// Writes `batch` and syncs the WAL before returning (blocking; call from a blocking context).
    pub fn write_synced(&self, batch: WriteBatch) -> std::io::Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.inner.db.write_opt(batch, &options).map_err(io_error)
    }

    /// Writes `batch` without waiting for a sync. Used for state-machine writes, which the synced
    /// Raft log can always replay.
    pub fn write(&self, batch: WriteBatch) -> std::io::Result<()> {
        self.inner.db.write(batch).map_err(io_error)
    }

    /// Syncs everything written so far to the WAL.
    pub fn sync(&self) -> std::io::Result<()> {
        self.inner.db.flush_wal(true).map_err(io_error)
    }

    /// Every group with any state on disk (a vote, log entries or state-machine state).
    pub fn groups_on_disk(&self) -> std::io::Result<BTreeSet<GroupId>> {
        let mut groups = BTreeSet::new();
        for name in [CF_RAFT_STATE, CF_RAFT_LOG, CF_SM] {
            let cf = self.cf(name);
            let mut from = 0u64;
            // One seek per group: jump to the first key of the next group id each time.
            loop {
                let start = from.to_be_bytes();
                let mut iter = self
                    .inner
                    .db
                    .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
                let Some(item) = iter.next() else { break };
                let (key, _) = item.map_err(io_error)?;
                let Some(prefix) = key.get(..8) else { break };
                let group = u64::from_be_bytes(prefix.try_into().expect("8 bytes"));
                groups.insert(GroupId(group));
                match group.checked_add(1) {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
        Ok(groups)
    }

    /// Removes every trace of a group (log, vote, state machine, records) in one synced batch.
    pub fn delete_group(&self, group: GroupId) -> std::io::Result<()> {
        let mut batch = WriteBatch::default();
        for name in COLUMN_FAMILIES {
            batch.delete_range_cf(
                self.cf(name),
                keys::group_prefix(group),
                keys::group_end(group),
            );
        }
        self.write_synced(batch)
    }

    /// Flushes memtables so a clean shutdown leaves nothing to replay.
    pub fn flush_all(&self) -> std::io::Result<()> {
        for name in COLUMN_FAMILIES {
            self.inner.db.flush_cf(self.cf(name)).map_err(io_error)?;
        }
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_on_disk_are_found_and_deleted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            store.cf(CF_RAFT_STATE),
            keys::tag_key(GroupId(3), keys::TAG_VOTE),
            b"v",
        );
        batch.put_cf(store.cf(CF_RAFT_LOG), keys::log_key(GroupId(7), 1), b"e");
        batch.put_cf(
            store.cf(CF_SM),
            keys::tag_key(GroupId(0), keys::TAG_SM_APPLIED),
            b"a",
        );
        batch.put_cf(
            store.cf(CF_SM),
            keys::tag_key(GroupId(u64::MAX), keys::TAG_SM_APPLIED),
            b"a",
        );
        store.write_synced(batch).unwrap();
        let found = || -> Vec<u64> {
            store
                .groups_on_disk()
                .unwrap()
                .into_iter()
                .map(|g| g.0)
                .collect()
        };
        assert_eq!(found(), [0, 3, 7, u64::MAX]);
        store.delete_group(GroupId(7)).unwrap();
        assert_eq!(found(), [0, 3, u64::MAX]);
    }
}

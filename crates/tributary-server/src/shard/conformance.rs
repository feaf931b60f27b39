//! openraft's storage conformance suite, run against the RocksDB log store and both state
//! machines, plus the shard state machine's numbering and recovery rules.

use bytes::Bytes;
use futures::stream;
use openraft::StorageError;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::alias::EntryOf;
use tempfile::TempDir;
use tributary_raft::meta::MetaTypeConfig;
use tributary_raft::shard::{PutBatch, ShardCommand, ShardTypeConfig};
use tributary_storage::{LogStore, Store};
use tributary_types::{GroupId, METADATA_GROUP, SequenceNumber, ShardId};

use super::{ShardMachine, records};
use crate::meta::MetaMachine;

struct ShardStores;

impl StoreBuilder<ShardTypeConfig, LogStore<ShardTypeConfig>, ShardMachine, TempDir>
    for ShardStores
{
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<ShardTypeConfig>, ShardMachine), StorageError<ShardTypeConfig>>
    {
        let dir = TempDir::new().expect("temp dir");
        let store = Store::open(dir.path()).expect("open RocksDB");
        let (machine, _) =
            ShardMachine::open(store.clone(), GroupId(7), ShardId(3)).expect("open shard machine");
        Ok((dir, LogStore::new(store, GroupId(7)), machine))
    }
}

struct MetaStores;

impl StoreBuilder<MetaTypeConfig, LogStore<MetaTypeConfig>, MetaMachine, TempDir> for MetaStores {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<MetaTypeConfig>, MetaMachine), StorageError<MetaTypeConfig>>
    {
        let dir = TempDir::new().expect("temp dir");
        let store = Store::open(dir.path()).expect("open RocksDB");
        let (machine, _) = MetaMachine::open(store.clone()).expect("open meta machine");
        Ok((dir, LogStore::new(store, METADATA_GROUP), machine))
    }
}

#[tokio::test]
async fn shard_storage_passes_the_openraft_suite() {
    Suite::test_all(ShardStores).await.expect("conformance");
}

#[tokio::test]
async fn metadata_storage_passes_the_openraft_suite() {
    Suite::test_all(MetaStores).await.expect("conformance");
}

fn put_entry(index: u64, records: &[&str]) -> std::io::Result<EntryResponder<ShardTypeConfig>> {
    let batch = PutBatch {
        arrival_ms: 1_000 + index,
        records: records
            .iter()
            .map(|r| (format!("key-{r}"), Bytes::from(r.to_string())))
            .collect(),
    };
    let log_id = openraft::testing::log_id::<ShardTypeConfig>(1, 1, index);
    Ok((
        EntryOf::<ShardTypeConfig>::new_normal(log_id, ShardCommand::Put(batch)),
        None,
    ))
}

#[tokio::test]
async fn applying_numbers_records_from_the_log_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let group = GroupId(9);
    let shard = ShardId(2);
    {
        let store = Store::open(dir.path()).unwrap();
        let (mut machine, tip) = ShardMachine::open(store.clone(), group, shard).unwrap();
        machine
            .apply(stream::iter(vec![
                put_entry(1, &["a", "b"]),
                put_entry(2, &["c"]),
            ]))
            .await
            .unwrap();
        assert_eq!(*tip.borrow(), Some(SequenceNumber::new(shard, 2, 0)));
        store.flush_all().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let (mut machine, tip) = ShardMachine::open(store.clone(), group, shard).unwrap();
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(
        applied.map(|id| id.index()),
        Some(2),
        "the applied index is stored with the records"
    );
    assert_eq!(*tip.borrow(), Some(SequenceNumber::new(shard, 2, 0)));
    let (stored, more) = records::read(
        &store,
        group,
        SequenceNumber::shard_start(shard),
        10,
        usize::MAX,
    )
    .unwrap();
    assert!(!more, "every record was read");
    // The byte cap: at least one record, never more than the cap after the first, and it
    // says when it left records unread.
    let start = SequenceNumber::shard_start(shard);
    let (one, more) = records::read(&store, group, start, 10, 1).unwrap();
    assert!(one.len() == 1 && more);
    let (two, more) = records::read(&store, group, start, 2, usize::MAX).unwrap();
    assert!(two.len() == 2 && more);
    let numbers: Vec<SequenceNumber> = stored.iter().map(|r| r.sequence_number).collect();
    assert_eq!(
        numbers,
        [
            SequenceNumber::new(shard, 1, 0),
            SequenceNumber::new(shard, 1, 1),
            SequenceNumber::new(shard, 2, 0)
        ]
    );
    assert_eq!(stored[1].data.as_ref(), b"b");
    assert_eq!(stored[2].approximate_arrival_timestamp_ms, 1_002);

    // Re-applying an entry after a crash rewrites the same numbers: nothing is duplicated.
    machine
        .apply(stream::iter(vec![put_entry(2, &["c"])]))
        .await
        .unwrap();
    assert_eq!(
        records::read(
            &store,
            group,
            SequenceNumber::shard_start(shard),
            10,
            usize::MAX
        )
        .unwrap()
        .0
        .len(),
        3
    );
}

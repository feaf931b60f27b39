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
use tributary_raft::shard::{ProducerStamp, PutBatch, ShardCommand, ShardTypeConfig};
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

/// Reads records of a store that holds no sealed ones.
fn read_records(
    store: &Store,
    group: GroupId,
    from: SequenceNumber,
    limit: usize,
    max_bytes: usize,
) -> Result<(Vec<tributary_types::StoredRecord>, bool), records::ReadError> {
    let mut opener = crate::keyring::RecordOpener::new(None, b"");
    records::read(store, group, from, limit, max_bytes, &mut opener)
}

fn put_entry(index: u64, records: &[&str]) -> std::io::Result<EntryResponder<ShardTypeConfig>> {
    stamped_put_entry(index, records, None)
}

/// A put entry; with a producer id, records are numbered in that producer's sequence from their
/// own text (`"3"` is number 3).
fn stamped_put_entry(
    index: u64,
    records: &[&str],
    producer_id_opt: Option<u64>,
) -> std::io::Result<EntryResponder<ShardTypeConfig>> {
    let producer_opt = producer_id_opt.map(|producer_id| ProducerStamp {
        producer_id,
        sequences: records
            .iter()
            .map(|r| r.parse().expect("numbered"))
            .collect(),
    });
    let batch = PutBatch {
        producer_opt,
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
    let (stored, more) = read_records(
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
    let (one, more) = read_records(&store, group, start, 10, 1).unwrap();
    assert!(one.len() == 1 && more);
    let (two, more) = read_records(&store, group, start, 2, usize::MAX).unwrap();
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
        read_records(
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

fn all_records(store: &Store, group: GroupId, shard: ShardId) -> Vec<(SequenceNumber, String)> {
    let start = SequenceNumber::shard_start(shard);
    let (stored, _) = read_records(store, group, start, 1_000, usize::MAX).unwrap();
    stored
        .into_iter()
        .map(|r| {
            (
                r.sequence_number,
                String::from_utf8(r.data.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn idempotent_retries_store_each_record_once_across_reopen_and_snapshot() {
    let dir = TempDir::new().unwrap();
    let (group, shard, producer) = (GroupId(11), ShardId(4), Some(77));
    let expected = |s: &[(u64, u16, &str)]| -> Vec<(SequenceNumber, String)> {
        s.iter()
            .map(|(index, offset, text)| {
                (
                    SequenceNumber::new(shard, *index, *offset),
                    text.to_string(),
                )
            })
            .collect()
    };
    {
        let store = Store::open(dir.path()).unwrap();
        let (mut machine, tip) = ShardMachine::open(store.clone(), group, shard).unwrap();
        machine
            .apply(stream::iter(vec![
                stamped_put_entry(1, &["1", "2", "3"], producer),
                // A retry of an attempt whose outcome the producer never heard, with two more.
                stamped_put_entry(2, &["1", "2", "3", "4", "5"], producer),
                // Another producer's numbers are its own.
                stamped_put_entry(3, &["1"], Some(78)),
                // Plain puts are never de-duplicated.
                put_entry(4, &["1"]),
            ]))
            .await
            .unwrap();
        assert_eq!(
            all_records(&store, group, shard),
            expected(&[
                (1, 0, "1"),
                (1, 1, "2"),
                (1, 2, "3"),
                (2, 0, "4"),
                (2, 1, "5"),
                (3, 0, "1"),
                (4, 0, "1")
            ])
        );
        assert_eq!(*tip.borrow(), Some(SequenceNumber::new(shard, 4, 0)));
        store.flush_all().unwrap();
    }
    // The producer state survives a restart: a late retry still stores nothing new.
    let store = Store::open(dir.path()).unwrap();
    let (mut machine, tip) = ShardMachine::open(store.clone(), group, shard).unwrap();
    machine
        .apply(stream::iter(vec![stamped_put_entry(
            5,
            &["4", "5", "6"],
            producer,
        )]))
        .await
        .unwrap();
    let after_reopen = all_records(&store, group, shard);
    assert_eq!(
        after_reopen.len(),
        8,
        "only record 6 was new: {after_reopen:?}"
    );
    assert_eq!(
        after_reopen[7],
        (SequenceNumber::new(shard, 5, 0), "6".to_string())
    );
    assert_eq!(*tip.borrow(), Some(SequenceNumber::new(shard, 5, 0)));

    // A replica that installs a snapshot de-duplicates the same way.
    let snapshot = machine.get_current_snapshot().await.unwrap().unwrap();
    let other_dir = TempDir::new().unwrap();
    let other_store = Store::open(other_dir.path()).unwrap();
    let (mut other, _) = ShardMachine::open(other_store.clone(), group, shard).unwrap();
    other
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    other
        .apply(stream::iter(vec![stamped_put_entry(
            6,
            &["5", "6", "7"],
            producer,
        )]))
        .await
        .unwrap();
    let on_other = all_records(&other_store, group, shard);
    assert_eq!(on_other.len(), 9);
    assert_eq!(
        on_other[8],
        (SequenceNumber::new(shard, 6, 0), "7".to_string())
    );

    // Retention forgets producers idle since before the trim point: their numbers start afresh.
    let trim = openraft::testing::log_id::<ShardTypeConfig>(1, 1, 7);
    other
        .apply(stream::iter(vec![Ok((
            EntryOf::<ShardTypeConfig>::new_normal(
                trim,
                ShardCommand::Trim {
                    before_ms: 1_000 + 7,
                },
            ),
            None,
        ))]))
        .await
        .unwrap();
    other
        .apply(stream::iter(vec![stamped_put_entry(8, &["1"], producer)]))
        .await
        .unwrap();
    let after_trim = all_records(&other_store, group, shard);
    assert_eq!(
        after_trim.last(),
        Some(&(SequenceNumber::new(shard, 8, 0), "1".to_string()))
    );
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn sealed_batches_store_no_plaintext_and_open_with_the_key_ring() {
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys.toml");
    crate::keyring::create_file(&keys, &["default".to_string()]).unwrap();
    let ring = crate::keyring::KeyRing::load(&keys).unwrap();
    let db = dir.path().join("db");
    let (group, shard) = (GroupId(4), ShardId(1));
    let store = Store::open(&db).unwrap();
    let (mut machine, tip) = ShardMachine::open(store.clone(), group, shard).unwrap();

    let sealer = ring.batch_sealer("default").unwrap();
    let plain = [("key-quetzal", "payload-aardvark"), ("key-ocelot", "")];
    let batch = PutBatch {
        arrival_ms: 5_000,
        records: plain
            .iter()
            .enumerate()
            .map(|(position, (key, data))| {
                let sealed = sealer
                    .seal(position as u32, b"orders", key, data.as_bytes())
                    .unwrap();
                (String::new(), sealed)
            })
            .collect(),
        producer_opt: None,
    };
    let command = ShardCommand::PutSealed {
        key: sealer.batch_key().clone(),
        batch,
    };
    assert_eq!(
        command.record_sizes().collect::<Vec<_>>(),
        [27, 10],
        "throughput is charged for what the producer sent"
    );
    let log_id = openraft::testing::log_id::<ShardTypeConfig>(1, 1, 1);
    machine
        .apply(stream::iter(vec![Ok((
            EntryOf::<ShardTypeConfig>::new_normal(log_id, command),
            None,
        ))]))
        .await
        .unwrap();
    assert_eq!(*tip.borrow(), Some(SequenceNumber::new(shard, 1, 1)));
    store.flush_all().unwrap();

    let start = SequenceNumber::shard_start(shard);
    let mut opener = crate::keyring::RecordOpener::new(Some(&ring), b"orders");
    let (stored, _) = records::read(&store, group, start, 10, usize::MAX, &mut opener).unwrap();
    let opened: Vec<(&str, &[u8])> = stored
        .iter()
        .map(|r| (r.partition_key.as_str(), r.data.as_ref()))
        .collect();
    assert_eq!(
        opened,
        [
            ("key-quetzal", &b"payload-aardvark"[..]),
            ("key-ocelot", &b""[..])
        ]
    );
    assert!(
        stored
            .iter()
            .all(|r| r.encryption_type == tributary_types::EncryptionType::Kms)
    );
    // Retention and AT_TIMESTAMP read the arrival time, which stays in clear.
    assert_eq!(
        records::first_arrived_at_or_after(&store, group, 4_000).unwrap(),
        Some(SequenceNumber::new(shard, 1, 0))
    );
    for needle in ["payload-aardvark", "key-quetzal", "key-ocelot"] {
        assert_eq!(
            files_holding(dir.path(), needle.as_bytes()),
            Vec::<std::path::PathBuf>::new(),
            "{needle} is stored in clear"
        );
    }

    // Without the key ring, or under another stream's name, a sealed record does not open.
    let error = read_records(&store, group, start, 10, usize::MAX).unwrap_err();
    assert!(
        matches!(&error, records::ReadError::Sealed(e) if e.code == tributary_types::ErrorCode::KmsNotFound),
        "{error:?}"
    );
    let mut elsewhere = crate::keyring::RecordOpener::new(Some(&ring), b"payments");
    assert!(records::read(&store, group, start, 10, usize::MAX, &mut elsewhere).is_err());
}

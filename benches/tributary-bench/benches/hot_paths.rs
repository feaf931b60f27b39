//! Criterion micro-benchmarks of the write path's hot spots, each on one put batch of 500 records
//! of 100 bytes (what a busy producer sends): `cargo bench -p tributary-bench --bench hot_paths`.
//!
//! - hash routing: MD5 of each partition key and the open shard whose range holds it;
//! - record encode/decode: the batch as a Raft log entry (postcard), both ways;
//! - aggregation: packing the batch into KPL aggregated records, and unpacking them;
//! - batch apply: the shard state machine storing the batch (one RocksDB write, not synced);
//! - storage append: the batch appended to a shard's Raft log and synced (group commit, fsync).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::EntryOf;
use tempfile::TempDir;
use tributary_client::aggregation::{Aggregator, MAX_AGGREGATED_BYTES, parse};
use tributary_raft::codec;
use tributary_raft::shard::{PutBatch, ShardCommand, ShardTypeConfig};
use tributary_server::shard::ShardMachine;
use tributary_storage::{LogStore, Store};
use tributary_types::{GroupId, HashKeyRange, ShardId, hash_partition_key};

const RECORDS: usize = 500;
const RECORD_BYTES: usize = 100;

fn batch() -> PutBatch {
    PutBatch {
        arrival_ms: 1_700_000_000_000,
        records: (0..RECORDS)
            .map(|i| (format!("user-{i}"), Bytes::from(vec![b'x'; RECORD_BYTES])))
            .collect(),
        producer_opt: None,
    }
}

fn entry(index: u64) -> EntryOf<ShardTypeConfig> {
    let log_id = openraft::testing::log_id::<ShardTypeConfig>(1, 1, index);
    EntryOf::<ShardTypeConfig>::new_normal(log_id, ShardCommand::Put(batch()))
}

fn hash_routing(c: &mut Criterion) {
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("user-{i}")).collect();
    let shards = HashKeyRange::split_evenly(64);
    let mut group = c.benchmark_group("hash_routing");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("md5_and_shard_of_64", |b| {
        b.iter(|| {
            for key in &keys {
                let hash_key = hash_partition_key(key);
                black_box(shards.iter().position(|range| range.contains(hash_key)));
            }
        })
    });
    group.finish();
}

fn record_codec(c: &mut Criterion) {
    let command = ShardCommand::Put(batch());
    let encoded = codec::encode(&command).expect("encode");
    let mut group = c.benchmark_group("record_codec");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("encode_batch", |b| {
        b.iter(|| codec::encode(black_box(&command)).expect("encode"))
    });
    group.bench_function("decode_batch", |b| {
        b.iter(|| codec::decode::<ShardCommand>(black_box(&encoded)).expect("decode"))
    });
    group.finish();
}

fn aggregation(c: &mut Criterion) {
    let records = batch().records;
    let aggregate = || {
        let mut out = Vec::new();
        let mut aggregator = Aggregator::new();
        for (key, data) in &records {
            if aggregator.size_with(key, None, data.len()) > MAX_AGGREGATED_BYTES {
                out.push(std::mem::take(&mut aggregator).encode());
            }
            aggregator.push(key, None, data.clone());
        }
        out.push(aggregator.encode());
        out
    };
    let packed = aggregate();
    let mut group = c.benchmark_group("aggregation");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("aggregate_batch", |b| b.iter(aggregate));
    group.bench_function("deaggregate_batch", |b| {
        b.iter(|| {
            for data in &packed {
                black_box(parse(data).expect("aggregated"));
            }
        })
    });
    group.finish();
}

/// Times `routine` on a fresh put entry (the next log index) per iteration.
fn bench_per_entry(
    c: &mut Criterion,
    group_name: &str,
    name: &str,
    mut routine: impl FnMut(EntryOf<ShardTypeConfig>),
) {
    let mut index = 0;
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                index += 1;
                entry(index)
            },
            &mut routine,
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn batch_apply(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = TempDir::new().expect("temp dir");
    let store = Store::open(dir.path()).expect("open RocksDB");
    let (mut machine, _tip) =
        ShardMachine::open(store, GroupId(1), ShardId(0)).expect("shard machine");
    bench_per_entry(c, "batch_apply", "apply_500x100B", |entry| {
        runtime.block_on(async {
            let entries = futures::stream::iter(vec![Ok((entry, None))]);
            machine.apply(entries).await.expect("apply");
        })
    });
}

fn storage_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = TempDir::new().expect("temp dir");
    let store = Store::open(dir.path()).expect("open RocksDB");
    let mut log = LogStore::<ShardTypeConfig>::new(store, GroupId(1));
    bench_per_entry(c, "storage_append", "append_and_fsync_500x100B", |entry| {
        runtime.block_on(async {
            let (tx, rx) = ShardTypeConfig::oneshot();
            log.append([entry], IOFlushed::signal(tx))
                .await
                .expect("append");
            rx.await.expect("flusher answers").expect("synced");
        })
    });
}

criterion_group!(
    hot_paths,
    hash_routing,
    record_codec,
    aggregation,
    batch_apply,
    storage_append
);
criterion_main!(hot_paths);

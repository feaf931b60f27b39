//! On-demand scaling. On the metadata leader, every second, for each ACTIVE ON_DEMAND stream:
//!
//! - a shard whose write utilization stayed above [`SPLIT_ABOVE`] (50% of the Kinesis write
//!   limit: the larger of records/1,000 and bytes/1 MiB per second) in every second of the
//!   scaling window is split at the middle of its hash range;
//! - otherwise, two adjacent open shards whose busiest seconds add up to less than
//!   [`MERGE_BELOW`] (25%) over the window are merged, while the stream has more than its
//!   initial 4 shards.
//!
//! Utilization is measured by each shard's leader ([`crate::meter`]) and known only once it has
//! led for a whole window, so new children and new leaders are left alone for one window, and
//! one reshard runs at a time (resharding needs the stream ACTIVE). The window is 60 s
//! (`--scaling-window-ms`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use tributary_raft::meta::MetaCommand;
use tributary_types::{ON_DEMAND_INITIAL_SHARDS, StreamMode};

use crate::groups::ShardGroup;
use crate::meta::{ShardMeta, ShardStatus, StreamMeta, StreamStatus};
use crate::meter::WindowLoad;
use crate::node::Node;
use crate::now_ms;

/// Split a shard busier than this in every second of the window.
pub const SPLIT_ABOVE: f64 = 0.5;
/// Merge an adjacent pair whose busiest seconds add up to less than this.
pub const MERGE_BELOW: f64 = 0.25;
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// This replica's view of its shard's load (only a leader has one).
pub(crate) fn local_load(node: &Node, local: &ShardGroup) -> Option<WindowLoad> {
    let now = Instant::now();
    let leads = local.current_leader() == Some(node.id());
    local.meter.observe_leadership(leads, now);
    if leads { local.meter.load(now) } else { None }
}

pub(crate) async fn scale_on_demand_streams(node: Arc<Node>) {
    let mut stop = node.stop_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if node.meta_raft.metrics().borrow_watched().current_leader != Some(node.id()) {
            continue;
        }
        let streams: Vec<StreamMeta> = node.meta.read(|state| {
            state
                .streams
                .values()
                .filter(|s| s.mode == StreamMode::OnDemand && s.status == StreamStatus::Active)
                .cloned()
                .collect()
        });
        for stream in streams {
            if let Some(command) = decide(&node, &stream).await {
                tracing::info!(stream = %stream.name, %command, "on-demand scaling");
                if let Err(error) = node.meta_write(command).await {
                    tracing::warn!(stream = %stream.name, %error, "on-demand scaling refused");
                }
            }
        }
    }
}

async fn decide(node: &Node, stream: &StreamMeta) -> Option<MetaCommand> {
    let mut open: Vec<&ShardMeta> = stream
        .shards
        .iter()
        .filter(|s| s.status == ShardStatus::Open)
        .collect();
    open.sort_by_key(|s| s.hash_range.start_inclusive);
    let mut loads = Vec::with_capacity(open.len());
    for shard in &open {
        loads.push(shard_load(node, shard).await);
    }
    if let Some((hot, _)) = open
        .iter()
        .zip(&loads)
        .find(|(_, load)| load.is_some_and(|l| l.min > SPLIT_ABOVE))
    {
        let range = hot.hash_range;
        let middle = range.start_inclusive + (range.end_inclusive - range.start_inclusive) / 2 + 1;
        return Some(MetaCommand::SplitShard {
            name: stream.name.clone(),
            shard: hot.shard_id,
            new_starting_hash_key: middle,
            at_ms: now_ms(),
            down_nodes: Vec::new(),
            by_scaler: true,
        });
    }
    if open.len() <= ON_DEMAND_INITIAL_SHARDS as usize {
        return None;
    }
    (0..open.len().saturating_sub(1)).find_map(|i| match (loads[i], loads[i + 1]) {
        (Some(a), Some(b)) if a.max + b.max < MERGE_BELOW => Some(MetaCommand::MergeShards {
            name: stream.name.clone(),
            shard: open[i].shard_id,
            adjacent_shard: open[i + 1].shard_id,
            at_ms: now_ms(),
            down_nodes: Vec::new(),
            by_scaler: true,
        }),
        _ => None,
    })
}

/// The load of a shard as its leader reports it, wherever the leader runs.
async fn shard_load(node: &Node, shard: &ShardMeta) -> Option<WindowLoad> {
    if let Some(local) = node.shard_group(shard.group)
        && local.current_leader() == Some(node.id())
    {
        return local_load(node, &local);
    }
    crate::lifecycle::ask_replicas(node, shard, |reply| {
        reply.load.map(|load| WindowLoad {
            min: load.min_utilization,
            max: load.max_utilization,
        })
    })
    .await
}

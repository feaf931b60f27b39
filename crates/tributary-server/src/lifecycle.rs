//! The stream driver. On the metadata leader it moves streams through their lifecycle:
//! CREATING and UPDATING streams turn ACTIVE once every shard a reshard closed is sealed and every
//! open shard has elected a leader, and
//! DELETING streams leave the catalogue (their replicas have already stopped and removed their
//! data, since a DELETING stream places no groups). Closed shards whose records have all expired
//! leave the catalogue, and their replicas remove their groups. Commands are idempotent, so a
//! new metadata leader simply carries on.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tributary_proto::internal::{GroupLeaderReply, GroupLeaderRequest};
use tributary_raft::meta::MetaCommand;
use tributary_raft::shard::{ShardCommand, ShardResponse};
use tributary_types::NodeId;

use crate::meta::{ShardMeta, ShardStatus, StreamMeta, StreamStatus};
use crate::node::Node;

/// How often the driver looks again when nothing in the catalogue changed (a shard may have
/// elected its leader meanwhile).
const DRIVER_INTERVAL: Duration = Duration::from_millis(200);
/// How long the driver waits for a replica to say who leads its group.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) async fn drive_streams(node: Arc<Node>) {
    let mut changes = node.meta.changes();
    loop {
        if node.meta_raft.metrics().borrow_watched().current_leader == Some(node.id()) {
            let streams: Vec<StreamMeta> = node.meta.read(|state| {
                state
                    .streams
                    .values()
                    .filter(|stream| stream.status != StreamStatus::Active)
                    .cloned()
                    .collect()
            });
            for stream in streams {
                drive(&node, &stream).await;
            }
            expire_closed_shards(&node).await;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(DRIVER_INTERVAL) => {}
        }
    }
}

async fn drive(node: &Node, stream: &StreamMeta) {
    let command = match stream.status {
        StreamStatus::Active => return,
        StreamStatus::Creating | StreamStatus::Updating => {
            // Parents closed by a reshard are sealed first: their ending sequence number is then
            // final, and no put can land in them any more.
            let unsealed = stream.shards.iter().filter(|shard| {
                shard.status == ShardStatus::Closed && shard.ending_sequence_number_opt.is_none()
            });
            let mut all_sealed = true;
            for shard in unsealed {
                all_sealed &= seal(node, stream, shard).await;
            }
            if !all_sealed {
                return;
            }
            for shard in stream
                .shards
                .iter()
                .filter(|shard| shard.status == ShardStatus::Open)
            {
                if shard_leader(node, shard).await.is_none() {
                    return;
                }
            }
            MetaCommand::ActivateStream {
                name: stream.name.clone(),
            }
        }
        StreamStatus::Deleting => MetaCommand::RemoveStream {
            name: stream.name.clone(),
        },
    };
    if let Err(error) = node.meta_write(command).await {
        tracing::debug!(stream = %stream.name, %error, "stream driver: command not accepted yet");
    }
}

/// Drops closed, sealed shards closed longer ago than the retention period: all their records
/// have expired, ListShards no longer lists them, and their groups can go.
async fn expire_closed_shards(node: &Node) {
    let expired: Vec<(StreamMeta, Vec<tributary_types::ShardId>)> = node.meta.read(|state| {
        state
            .streams
            .values()
            .filter(|stream| stream.status == StreamStatus::Active)
            .filter_map(|stream| {
                let horizon = node.trim_horizon_ms(stream);
                let shards: Vec<_> = stream
                    .shards
                    .iter()
                    .filter(|shard| {
                        shard.ending_sequence_number_opt.is_some()
                            && shard
                                .closed_at_ms_opt
                                .is_some_and(|closed| closed < horizon)
                    })
                    .map(|shard| shard.shard_id)
                    .collect();
                (!shards.is_empty()).then(|| (stream.clone(), shards))
            })
            .collect()
    });
    for (stream, shards) in expired {
        tracing::info!(stream = %stream.name, shards = shards.len(), "closed shards expired");
        let command = MetaCommand::ExpireShards {
            name: stream.name.clone(),
            shards,
        };
        if let Err(error) = node.meta_write(command).await {
            tracing::debug!(stream = %stream.name, %error, "expiring closed shards failed; retrying");
        }
    }
}

/// Seals a closed shard's group and records its ending sequence number; whether it is done.
async fn seal(node: &Node, stream: &StreamMeta, shard: &ShardMeta) -> bool {
    let ending = match node
        .shard_write(&stream.name, shard, ShardCommand::Seal)
        .await
    {
        Ok(ShardResponse {
            ending_opt: Some(ending),
            ..
        }) => ending,
        Ok(_) => {
            tracing::warn!(stream = %stream.name, shard = %shard.shard_id, "seal answered without an ending");
            return false;
        }
        Err(error) => {
            tracing::debug!(stream = %stream.name, shard = %shard.shard_id, %error, "sealing a closed shard failed; retrying");
            return false;
        }
    };
    let command = MetaCommand::SealShard {
        name: stream.name.clone(),
        shard: shard.shard_id,
        ending,
    };
    match node.meta_write(command).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(stream = %stream.name, %error, "recording a seal failed; retrying");
            false
        }
    }
}

/// The leader of a shard group, as this node's replica or any replica that answers knows it.
pub(crate) async fn shard_leader(node: &Node, shard: &ShardMeta) -> Option<NodeId> {
    if let Some(local) = node.shard_group(shard.group) {
        return local.current_leader();
    }
    ask_replicas(node, shard, |reply| reply.leader).await
}

/// Asks the other replicas of a shard, in order, what they know of its group (the internal
/// `GroupLeader` RPC) until `pick` finds what it wants in an answer.
pub(crate) async fn ask_replicas<T>(
    node: &Node,
    shard: &ShardMeta,
    pick: impl Fn(GroupLeaderReply) -> Option<T>,
) -> Option<T> {
    for replica in shard.replicas.iter().filter(|id| **id != node.id()) {
        let Some(address) = node.node_address(*replica) else {
            continue;
        };
        let Ok(mut client) = node.router.client(*replica, &address) else {
            continue;
        };
        let request = GroupLeaderRequest {
            group_id: shard.group.0,
        };
        if let Ok(Ok(reply)) = tokio::time::timeout(ASK_TIMEOUT, client.group_leader(request)).await
            && let Some(found) = pick(reply.into_inner())
        {
            return Some(found);
        }
    }
    None
}

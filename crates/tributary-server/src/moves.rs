//! Decommissioning nodes (`cluster remove-node`): replicas move away through Raft membership
//! changes, and the node then leaves the cluster.
//!
//! - The **removal driver** runs on the metadata leader. For a node marked for removal it starts
//!   replica moves (at most [`MAX_MOVES_IN_FLIGHT`] at a time, each to the target
//!   `MetaState::move_target` picks), replaces the node in the metadata group's voters, and once
//!   the node holds nothing, takes it out of the metadata group and forgets it.
//! - The **mover** runs on every node, for the shard groups it leads that have a move in the
//!   catalogue: it adds the target as a learner, waits until the learner has caught up, makes it
//!   a voter in place of the old replica (one joint-consensus change), then records the move as
//!   finished. A leader that is itself the replica leaving hands leadership to another voter
//!   first. Every step checks the group's membership first, so a new leader resumes where an
//!   old one stopped.
//!
//! A shard keeps its majority throughout: the old replica stays a voter until the new one has
//! caught up, and the change needs a majority of both the old and the new voters, which the
//! shard's two other replicas form even when the node being removed is down.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, Membership};
use tributary_raft::meta::MetaCommand;
use tributary_types::NodeId;

use crate::groups::ShardGroup;
use crate::meta::placement::REPLICATION_FACTOR;
use crate::meta::{MetaState, ReplicaMove, ShardMeta};
use crate::node::{Node, most_caught_up_voter};

/// Replica moves under way at once, cluster-wide; each copies a shard's data to a new node.
pub const MAX_MOVES_IN_FLIGHT: usize = 4;
/// How often the driver and the movers look again when the catalogue has not changed.
const MOVES_INTERVAL: Duration = Duration::from_millis(500);
/// How long a mover waits for a new replica to catch up before it looks again.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a membership change may take to commit.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

/// The removal driver (see the module docs); acts only while this node leads the metadata group.
pub(crate) async fn drive_removals(node: Arc<Node>) {
    let mut changes = node.meta.changes();
    loop {
        let leads = node.meta_raft.metrics().borrow_watched().current_leader == Some(node.id());
        let removing = node
            .meta
            .read(|state| state.nodes.values().any(|n| n.removing));
        if leads && removing {
            start_moves(&node).await;
            replace_metadata_voters(&node).await;
            forget_emptied_nodes(&node).await;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(MOVES_INTERVAL) => {}
        }
    }
}

/// The next move to start: a replica on a node being removed, of a shard not moving yet.
fn next_move(state: &MetaState) -> Option<MetaCommand> {
    let in_flight = state
        .live_shards()
        .filter(|(_, shard)| shard.move_opt.is_some())
        .count();
    if in_flight >= MAX_MOVES_IN_FLIGHT {
        return None;
    }
    state
        .live_shards()
        .filter(|(_, shard)| shard.move_opt.is_none())
        .find_map(|(stream, shard)| {
            let from = *shard
                .replicas
                .iter()
                .find(|id| state.nodes.get(id).is_some_and(|info| info.removing))?;
            let to = state.move_target(shard, from)?;
            Some(MetaCommand::StartMove {
                name: stream.clone(),
                shard: shard.shard_id,
                from,
                to,
                at_ms: crate::now_ms(),
            })
        })
}

async fn start_moves(node: &Node) {
    while let Some(command) = node.meta.read(next_move) {
        let description = command.to_string();
        match node.meta_write(command).await {
            Ok(()) => tracing::info!(command = %description, "replica move started"),
            Err(error) => {
                tracing::warn!(command = %description, %error, "could not start a replica move");
                return;
            }
        }
    }
}

/// Puts a serving node in the place of a metadata voter being removed: one of the same AZ first,
/// then one of an AZ the other voters are not in. The leaving voter stays a learner until it
/// holds nothing, so it still learns which of its replicas have moved.
async fn replace_metadata_voters(node: &Node) {
    let membership = membership_of(&node.meta_raft);
    if membership.get_joint_config().len() > 1 {
        return;
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let state = node.meta.snapshot();
    let az_of = |id: &NodeId| state.nodes.get(id).map(|info| info.az.as_str());
    let Some(leaving) = voters
        .iter()
        .copied()
        .find(|id| state.nodes.get(id).is_some_and(|info| info.removing))
    else {
        return;
    };
    if leaving == node.id() {
        if let Some(target) = most_caught_up_voter(&node.meta_raft, node.id()) {
            tracing::info!(
                to = target,
                "this node is being removed: handing off metadata leadership"
            );
            node.meta_raft.trigger().transfer_leader(target).await.ok();
        }
        return;
    }
    let voter_azs: BTreeSet<&str> = voters
        .iter()
        .filter(|id| **id != leaving)
        .filter_map(az_of)
        .collect();
    let replacement = state
        .serving_nodes()
        .filter(|(id, _)| !voters.contains(id) && membership.get_node(id).is_some())
        .min_by_key(|(id, info)| {
            (
                Some(info.az.as_str()) != az_of(&leaving),
                voter_azs.contains(info.az.as_str()),
                **id,
            )
        })
        .map(|(id, _)| *id);
    let mut new_voters = voters.clone();
    new_voters.remove(&leaving);
    match replacement {
        Some(id) => {
            new_voters.insert(id);
        }
        None if new_voters.len() >= REPLICATION_FACTOR => {}
        None => {
            tracing::warn!(
                leaving,
                "no serving node can replace a metadata voter being removed yet"
            );
            return;
        }
    }
    let change = node
        .meta_raft
        .change_membership(ChangeMembers::ReplaceAllVoters(new_voters.clone()), true);
    match tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await {
        Ok(Ok(_)) => tracing::info!(leaving, voters = ?new_voters, "metadata voter replaced"),
        Ok(Err(error)) => tracing::warn!(leaving, %error, "replacing a metadata voter failed"),
        Err(_) => tracing::warn!(leaving, "replacing a metadata voter timed out"),
    }
}

/// A node being removed that holds no replica and no metadata vote leaves the metadata group
/// and the catalogue.
async fn forget_emptied_nodes(node: &Node) {
    let emptied: Vec<NodeId> = node.meta.read(|state| {
        state
            .nodes
            .iter()
            .filter(|(id, info)| {
                info.removing && !state.live_shards().any(|(_, shard)| shard.placed_on(**id))
            })
            .map(|(id, _)| *id)
            .collect()
    });
    for id in emptied {
        let membership = membership_of(&node.meta_raft);
        if membership.voter_ids().any(|voter| voter == id) {
            continue;
        }
        if membership.get_node(&id).is_some() {
            let change = node
                .meta_raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false);
            match tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(node = id, %error, "could not take a removed node out of the metadata group");
                    continue;
                }
                Err(_) => continue,
            }
        }
        match node
            .meta_write(MetaCommand::ForgetNode { node_id: id })
            .await
        {
            Ok(()) => tracing::info!(node = id, "node removed from the cluster"),
            Err(error) => tracing::warn!(node = id, %error, "could not forget a removed node"),
        }
    }
}

/// The movers (see the module docs): one task per moving shard this node leads.
pub(crate) async fn carry_out_moves(node: Arc<Node>) {
    let busy: Arc<Mutex<HashSet<tributary_types::GroupId>>> = Arc::default();
    let mut changes = node.meta.changes();
    loop {
        for group in node.groups.led_by(node.id()) {
            let shard_opt = node.meta.read(|state| {
                state
                    .streams
                    .get(&group.stream)
                    .and_then(|stream| stream.shard(group.shard))
                    .filter(|shard| shard.move_opt.is_some())
                    .cloned()
            });
            let Some(shard) = shard_opt else { continue };
            if !busy.lock().expect("busy lock").insert(group.group) {
                continue;
            }
            let (node, busy) = (node.clone(), busy.clone());
            tokio::spawn(async move {
                let replica_move = shard.move_opt.expect("filtered above");
                if let Err(why) = advance_move(&node, &group, &shard, replica_move).await {
                    tracing::info!(group = %group.group, stream = %group.stream, shard = %group.shard, %why, "replica move not finished yet");
                }
                busy.lock().expect("busy lock").remove(&group.group);
            });
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(MOVES_INTERVAL) => {}
        }
    }
}

/// A group's current membership (its voters and learners), as its Raft instance knows it.
fn membership_of<C, SM>(raft: &openraft::Raft<C, SM>) -> Membership<NodeId, BasicNode>
where
    C: openraft::RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    SM: openraft::storage::RaftStateMachine<C>,
{
    raft.metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .clone()
}

/// Takes one move as far as it can go from this leader (see the module docs).
async fn advance_move(
    node: &Node,
    group: &ShardGroup,
    shard: &ShardMeta,
    ReplicaMove { from, to, .. }: ReplicaMove,
) -> Result<(), String> {
    let raft = &group.raft;
    let membership = membership_of(raft);
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let done =
        membership.get_joint_config().len() == 1 && voters.contains(&to) && !voters.contains(&from);
    if !done {
        if from == node.id() {
            let target = most_caught_up_voter(raft, node.id())
                .ok_or("the leaving leader has no other voter to hand off to")?;
            raft.trigger()
                .transfer_leader(target)
                .await
                .map_err(|e| e.to_string())?;
            return Err(format!(
                "this replica is leaving: leadership handed to node {target}"
            ));
        }
        if membership.get_node(&to).is_none() {
            let address = node
                .node_address(to)
                .ok_or_else(|| format!("node {to} has no known address"))?;
            let add = raft.add_learner(to, BasicNode { addr: address }, false);
            tokio::time::timeout(MEMBERSHIP_TIMEOUT, add)
                .await
                .map_err(|_| format!("adding node {to} as a learner timed out"))?
                .map_err(|e| format!("adding node {to} as a learner: {e}"))?;
            tracing::info!(group = %group.group, learner = to, "new replica added as a learner");
        }
        let target = raft.metrics().borrow_watched().last_log_index;
        raft.wait(Some(CATCH_UP_TIMEOUT))
            .metrics(
                |metrics| {
                    let matched = metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&to).cloned().flatten())
                        .map(|log_id| log_id.index());
                    matched >= target
                },
                "the new replica to catch up",
            )
            .await
            .map_err(|e| format!("node {to} has not caught up: {e}"))?;
        let mut new_voters = voters;
        new_voters.remove(&from);
        new_voters.insert(to);
        let change = raft.change_membership(ChangeMembers::ReplaceAllVoters(new_voters), false);
        tokio::time::timeout(MEMBERSHIP_TIMEOUT, change)
            .await
            .map_err(|_| "the membership change timed out".to_string())?
            .map_err(|e| format!("membership change: {e}"))?;
    }
    let finish = MetaCommand::FinishMove {
        name: group.stream.clone(),
        shard: shard.shard_id,
        from,
        to,
    };
    node.meta_write(finish)
        .await
        .map_err(|e| format!("recording the finished move: {e}"))?;
    tracing::info!(group = %group.group, stream = %group.stream, shard = %group.shard, from, to, "replica moved");
    Ok(())
}

//! Replica placement: each shard gets up to three replicas in distinct AZs, on the least loaded
//! reachable node of each AZ (a node the proposer could not reach is used only when its AZ has no
//! other); the preferred leader (first replica) is the reachable one leading the fewest shards.
//! Nodes being removed get nothing new. Pure and deterministic: it runs inside the metadata
//! state machine's apply.

use std::collections::BTreeMap;

use tributary_types::{Error, ErrorCode, NodeId};

use super::state::MetaState;

/// Replicas per shard when the cluster has at least this many AZs.
pub const REPLICATION_FACTOR: usize = 3;

/// Replica sets for `shard_count` new shards, given the load already placed in `state`.
pub fn place_shards(
    state: &MetaState,
    shard_count: u32,
    down_nodes: &[NodeId],
) -> Result<Vec<Vec<NodeId>>, Error> {
    let down = |id: &NodeId| down_nodes.contains(id);
    let mut nodes_by_az: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for (id, info) in state.serving_nodes() {
        nodes_by_az.entry(info.az.as_str()).or_default().push(*id);
    }
    if nodes_by_az.is_empty() {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            "No node has registered with the cluster yet",
        ));
    }
    let replication = REPLICATION_FACTOR.min(nodes_by_az.len());

    let mut replicas_per_node: BTreeMap<NodeId, usize> =
        state.nodes.keys().map(|id| (*id, 0)).collect();
    let mut leaders_per_node = replicas_per_node.clone();
    for (_, shard) in state
        .streams
        .values()
        .flat_map(|s| s.shards.iter().map(move |sh| (s, sh)))
    {
        for (position, node) in shard.replicas.iter().enumerate() {
            *replicas_per_node.entry(*node).or_default() += 1;
            if position == 0 {
                *leaders_per_node.entry(*node).or_default() += 1;
            }
        }
    }

    let mut placements = Vec::with_capacity(shard_count as usize);
    for _ in 0..shard_count {
        // The least loaded node of every AZ, then the least loaded AZs.
        let mut candidates: Vec<NodeId> = nodes_by_az
            .values()
            .map(|nodes| {
                *nodes
                    .iter()
                    .min_by_key(|id| (down(id), replicas_per_node[id], leaders_per_node[id], **id))
                    .unwrap()
            })
            .collect();
        candidates.sort_by_key(|id| (down(id), replicas_per_node[id], leaders_per_node[id], *id));
        candidates.truncate(replication);
        let leader_position = (0..candidates.len())
            .min_by_key(|&i| {
                (
                    down(&candidates[i]),
                    leaders_per_node[&candidates[i]],
                    replicas_per_node[&candidates[i]],
                    candidates[i],
                )
            })
            .expect("at least one candidate");
        candidates.swap(0, leader_position);
        for (position, node) in candidates.iter().enumerate() {
            *replicas_per_node.get_mut(node).unwrap() += 1;
            if position == 0 {
                *leaders_per_node.get_mut(node).unwrap() += 1;
            }
        }
        placements.push(candidates);
    }
    Ok(placements)
}

#[cfg(test)]
mod tests {
    use tributary_raft::meta::MetaCommand;

    use super::*;

    fn cluster(azs: &[&str]) -> MetaState {
        let mut state = MetaState::default();
        for (i, az) in azs.iter().enumerate() {
            let node_id = i as u64 + 1;
            let command = MetaCommand::RegisterNode {
                node_id,
                az: az.to_string(),
                address: String::new(),
            };
            state.apply(&command).unwrap();
        }
        state
    }

    #[test]
    fn three_replicas_in_three_azs() {
        let state = cluster(&["az-1", "az-2", "az-3"]);
        for replicas in place_shards(&state, 7, &[]).unwrap() {
            assert_eq!(replicas.len(), 3);
            let mut azs: Vec<&str> = replicas
                .iter()
                .map(|id| state.nodes[id].az.as_str())
                .collect();
            azs.sort();
            azs.dedup();
            assert_eq!(azs.len(), 3);
        }
    }

    #[test]
    fn six_nodes_share_replicas_and_leaders_evenly() {
        let state = cluster(&["az-1", "az-2", "az-3", "az-1", "az-2", "az-3"]);
        let shards = 8;
        let placements = place_shards(&state, shards, &[]).unwrap();
        let mut replicas = BTreeMap::<NodeId, usize>::new();
        let mut leaders = BTreeMap::<NodeId, usize>::new();
        for set in &placements {
            *leaders.entry(set[0]).or_default() += 1;
            for node in set {
                *replicas.entry(*node).or_default() += 1;
            }
        }
        let ceil = (shards as usize * 3).div_ceil(6);
        assert!(replicas.values().all(|&n| n <= ceil + 1), "{replicas:?}");
        assert!(leaders.values().all(|&n| n <= 2), "{leaders:?}");
        assert_eq!(leaders.len(), 6, "every node leads something: {leaders:?}");
    }

    #[test]
    fn fewer_azs_means_fewer_replicas_in_distinct_azs() {
        let state = cluster(&["az-1", "az-1"]);
        for replicas in place_shards(&state, 3, &[]).unwrap() {
            assert_eq!(replicas.len(), 1);
        }
    }

    #[test]
    fn unreachable_nodes_are_avoided_where_their_az_has_another() {
        let state = cluster(&["az-1", "az-2", "az-3", "az-1", "az-2", "az-3"]);
        for replicas in place_shards(&state, 6, &[4]).unwrap() {
            assert!(!replicas.contains(&4), "{replicas:?}");
            assert_eq!(replicas.len(), 3);
        }
        // A lone node of its AZ is still used (three AZs matter more), but never leads.
        let state = cluster(&["az-1", "az-2", "az-3"]);
        for replicas in place_shards(&state, 3, &[2]).unwrap() {
            assert!(replicas.contains(&2) && replicas[0] != 2, "{replicas:?}");
        }
    }
}

//! Node removal in the catalogue: which node takes a moving replica, and the rules of the
//! commands that mark a node for removal, start and finish a replica move, and forget an emptied
//! node. Pure and deterministic, like the rest of the apply function; the tasks that carry moves
//! out live in `crate::moves`.

use std::collections::{BTreeMap, BTreeSet};

use tributary_types::{Error, ErrorCode, NodeId, ShardId, StreamName};

use super::placement::REPLICATION_FACTOR;
use super::state::{MetaState, NodeInfo, ReplicaMove, ShardMeta, StreamStatus};

impl MetaState {
    /// Registered nodes that are not being removed.
    pub fn serving_nodes(&self) -> impl Iterator<Item = (&NodeId, &NodeInfo)> {
        self.nodes.iter().filter(|(_, info)| !info.removing)
    }

    /// Every shard that still has a Raft group (its stream is not being deleted), with its
    /// stream's name.
    pub fn live_shards(&self) -> impl Iterator<Item = (&StreamName, &ShardMeta)> {
        self.streams
            .values()
            .filter(|stream| stream.status != StreamStatus::Deleting)
            .flat_map(|stream| stream.shards.iter().map(move |shard| (&stream.name, shard)))
    }

    /// Replicas (held or being received) per registered node.
    pub fn replica_counts(&self) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> = self.nodes.keys().map(|id| (*id, 0)).collect();
        for (_, shard) in self.live_shards() {
            for node in shard
                .replicas
                .iter()
                .chain(shard.move_opt.as_ref().map(|m| &m.to))
            {
                *counts.entry(*node).or_default() += 1;
            }
        }
        counts
    }

    /// The node that should take `shard`'s replica on `from`: a serving node that holds no replica
    /// of the shard, in an AZ none of the shard's other replicas is in; a node of `from`'s own AZ
    /// first, then the one holding the fewest replicas.
    pub fn move_target(&self, shard: &ShardMeta, from: NodeId) -> Option<NodeId> {
        let az_of = |id: &NodeId| self.nodes.get(id).map(|info| info.az.as_str());
        let other_azs: BTreeSet<&str> = shard
            .replicas
            .iter()
            .filter(|id| **id != from)
            .filter_map(az_of)
            .collect();
        let from_az = az_of(&from);
        let counts = self.replica_counts();
        self.serving_nodes()
            .filter(|(id, info)| {
                **id != from
                    && !shard.replicas.contains(id)
                    && !other_azs.contains(info.az.as_str())
            })
            .min_by_key(|(id, info)| (Some(info.az.as_str()) != from_az, counts[*id], **id))
            .map(|(id, _)| *id)
    }

    pub(super) fn register_node(
        &mut self,
        node_id: NodeId,
        az: &str,
        address: &str,
    ) -> Result<(), Error> {
        if self.removed_nodes.contains(&node_id) {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Node {node_id} was removed from the cluster; a node joins under an id the cluster has never seen"
                ),
            ));
        }
        let removing = self.nodes.get(&node_id).is_some_and(|info| info.removing);
        self.nodes.insert(
            node_id,
            NodeInfo {
                az: az.to_string(),
                address: address.to_string(),
                removing,
            },
        );
        Ok(())
    }

    /// Marks `node_id` for removal, if the cluster can do without it: at least
    /// [`REPLICATION_FACTOR`] serving nodes remain (the metadata group's voters), and every
    /// shard it holds has a node to move to in an AZ the shard's other replicas are not in.
    pub(super) fn remove_node(&mut self, node_id: NodeId) -> Result<(), Error> {
        if self.removed_nodes.contains(&node_id) {
            return Ok(());
        }
        let Some(info) = self.nodes.get(&node_id) else {
            return Err(Error::new(
                ErrorCode::ResourceNotFound,
                format!("Node {node_id} is not a member of the cluster"),
            ));
        };
        if info.removing {
            return Ok(());
        }
        let remaining = self
            .serving_nodes()
            .filter(|(id, _)| **id != node_id)
            .count();
        if remaining < REPLICATION_FACTOR {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Removing node {node_id} would leave {remaining} serving nodes; a cluster keeps at least {REPLICATION_FACTOR}. Join a node first (tributary node --join)"
                ),
            ));
        }
        let mut after = self.clone();
        after
            .nodes
            .get_mut(&node_id)
            .expect("checked above")
            .removing = true;
        for (stream, shard) in self.live_shards() {
            if shard.replicas.contains(&node_id) && after.move_target(shard, node_id).is_none() {
                return Err(Error::new(
                    ErrorCode::ResourceInUse,
                    format!(
                        "Removing node {node_id} would leave shard {} of stream {stream} with no node to take its replica in an AZ its other replicas are not in. Join a node in {} first (tributary node --join)",
                        shard.shard_id, self.nodes[&node_id].az
                    ),
                ));
            }
        }
        *self = after;
        Ok(())
    }

    pub(super) fn start_move(
        &mut self,
        name: &StreamName,
        shard_id: ShardId,
        from: NodeId,
        to: NodeId,
        at_ms: u64,
    ) -> Result<(), Error> {
        let (target_az, target_serving) = match self.nodes.get(&to) {
            Some(info) => (info.az.clone(), !info.removing),
            None => (String::new(), false),
        };
        let azs: BTreeMap<NodeId, String> = self
            .nodes
            .iter()
            .map(|(id, info)| (*id, info.az.clone()))
            .collect();
        let stream = self.stream_mut(name)?;
        if stream.status == StreamStatus::Deleting {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!("Stream {name} is being deleted; its replicas do not move"),
            ));
        }
        let shard = shard_mut(stream, shard_id)?;
        let wanted = ReplicaMove {
            from,
            to,
            started_at_ms: at_ms,
        };
        match shard.move_opt {
            Some(current) if current.from == from && current.to == to => return Ok(()),
            Some(current) => {
                return Err(Error::new(
                    ErrorCode::ResourceInUse,
                    format!(
                        "Shard {shard_id} of stream {name} is already moving a replica from node {} to node {}",
                        current.from, current.to
                    ),
                ));
            }
            None => {}
        }
        if !shard.replicas.contains(&from) {
            return Err(Error::invalid_argument(format!(
                "Node {from} holds no replica of shard {shard_id} of stream {name}"
            )));
        }
        if shard.replicas.contains(&to) || !target_serving {
            return Err(Error::invalid_argument(format!(
                "Node {to} cannot take a replica of shard {shard_id} of stream {name}: it already holds one, is unknown, or is being removed"
            )));
        }
        let az_taken = shard
            .replicas
            .iter()
            .filter(|id| **id != from)
            .any(|id| azs.get(id) == Some(&target_az));
        if az_taken {
            return Err(Error::invalid_argument(format!(
                "Shard {shard_id} of stream {name} already has a replica in {target_az}, node {to}'s AZ"
            )));
        }
        shard.move_opt = Some(wanted);
        Ok(())
    }

    pub(super) fn finish_move(
        &mut self,
        name: &StreamName,
        shard_id: ShardId,
        from: NodeId,
        to: NodeId,
    ) -> Result<(), Error> {
        let shard = shard_mut(self.stream_mut(name)?, shard_id)?;
        if shard.replicas.contains(&to) && !shard.replicas.contains(&from) {
            return Ok(());
        }
        if !shard.move_opt.is_some_and(|m| m.from == from && m.to == to) {
            return Err(Error::invalid_argument(format!(
                "Shard {shard_id} of stream {name} has no move from node {from} to node {to}"
            )));
        }
        // The new replica takes the old one's place, so a preferred leader stays first.
        for replica in shard.replicas.iter_mut().filter(|id| **id == from) {
            *replica = to;
        }
        shard.move_opt = None;
        Ok(())
    }

    pub(super) fn forget_node(&mut self, node_id: NodeId) -> Result<(), Error> {
        if self.removed_nodes.contains(&node_id) {
            return Ok(());
        }
        if !self.nodes.get(&node_id).is_some_and(|info| info.removing) {
            return Err(Error::invalid_argument(format!(
                "Node {node_id} is not being removed"
            )));
        }
        if let Some((stream, shard)) = self.live_shards().find(|(_, s)| s.placed_on(node_id)) {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Node {node_id} still holds a replica of shard {} of stream {stream}",
                    shard.shard_id
                ),
            ));
        }
        self.nodes.remove(&node_id);
        self.removed_nodes.insert(node_id);
        Ok(())
    }
}

fn shard_mut(
    stream: &mut super::state::StreamMeta,
    shard_id: ShardId,
) -> Result<&mut ShardMeta, Error> {
    let name = stream.name.clone();
    stream
        .shards
        .iter_mut()
        .find(|shard| shard.shard_id == shard_id)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ResourceNotFound,
                format!("Shard {shard_id} in stream {name} does not exist"),
            )
        })
}

#[cfg(test)]
mod tests {
    use tributary_raft::meta::MetaCommand;
    use tributary_types::StreamMode;

    use super::*;

    fn cluster(azs: &[&str]) -> MetaState {
        let mut state = MetaState::default();
        for (i, az) in azs.iter().enumerate() {
            let command = MetaCommand::RegisterNode {
                node_id: i as u64 + 1,
                az: az.to_string(),
                address: format!("node-{}", i + 1),
            };
            state.apply(&command).unwrap();
        }
        state
    }

    fn name() -> StreamName {
        "s".parse().unwrap()
    }

    fn with_stream(state: &mut MetaState, shards: u32) {
        let create = MetaCommand::CreateStream {
            name: name(),
            shard_count: shards,
            retention_hours: 24,
            created_at_ms: 0,
            down_nodes: vec![],
            mode: StreamMode::Provisioned,
            tags: vec![],
        };
        state.apply(&create).unwrap();
    }

    fn shard(state: &MetaState, id: u32) -> ShardMeta {
        state.streams[&name()].shard(ShardId(id)).unwrap().clone()
    }

    fn azs_of(state: &MetaState, replicas: &[NodeId]) -> BTreeSet<String> {
        replicas
            .iter()
            .map(|id| state.nodes[id].az.clone())
            .collect()
    }

    #[test]
    fn a_moving_replica_goes_to_its_own_az_first_then_to_a_free_az() {
        let mut state = cluster(&["a", "b", "c", "a", "d"]);
        with_stream(&mut state, 1);
        let replicas = shard(&state, 0).replicas;
        assert_eq!(azs_of(&state, &replicas).len(), 3);
        let on_a = *replicas
            .iter()
            .find(|id| state.nodes[*id].az == "a")
            .unwrap();
        let other_a = if on_a == 1 { 4 } else { 1 };
        assert_eq!(state.move_target(&shard(&state, 0), on_a), Some(other_a));

        // With the other node of its AZ being removed too, AZ d (free) takes it.
        state.nodes.get_mut(&other_a).unwrap().removing = true;
        assert_eq!(state.move_target(&shard(&state, 0), on_a), Some(5));
    }

    #[test]
    fn removal_is_refused_when_a_shard_would_lose_its_distinct_azs() {
        let mut state = cluster(&["a", "b", "c"]);
        with_stream(&mut state, 2);
        let refused = state.apply(&MetaCommand::RemoveNode { node_id: 1 });
        assert_eq!(refused.unwrap_err().code, ErrorCode::ResourceInUse);

        // A fourth node, in AZ b: node 1 (AZ a) cannot go to it while shards have a b replica.
        state
            .apply(&MetaCommand::RegisterNode {
                node_id: 4,
                az: "b".into(),
                address: "node-4".into(),
            })
            .unwrap();
        let refused = state
            .apply(&MetaCommand::RemoveNode { node_id: 1 })
            .unwrap_err();
        assert!(refused.message.contains("Join a node in a"), "{refused:?}");
        assert!(
            !state.nodes[&1].removing,
            "a refused removal changes nothing"
        );
        // Node 2 (AZ b) can go: node 4 takes its replicas.
        state
            .apply(&MetaCommand::RemoveNode { node_id: 2 })
            .unwrap();
        assert!(state.nodes[&2].removing);
        let unknown = state.apply(&MetaCommand::RemoveNode { node_id: 9 });
        assert_eq!(unknown.unwrap_err().code, ErrorCode::ResourceNotFound);
    }

    #[test]
    fn a_move_replaces_the_replica_in_place_and_the_emptied_node_is_forgotten() {
        let mut state = cluster(&["a", "b", "c", "a"]);
        with_stream(&mut state, 1);
        // Node 4 (least loaded) may hold the a replica already; make node 1 the one on a.
        let replicas = shard(&state, 0).replicas;
        let (from, to) = if replicas.contains(&1) {
            (1, 4)
        } else {
            (4, 1)
        };
        state
            .apply(&MetaCommand::RemoveNode { node_id: from })
            .unwrap();
        let forget = state.apply(&MetaCommand::ForgetNode { node_id: from });
        assert_eq!(forget.unwrap_err().code, ErrorCode::ResourceInUse);

        // A target in an AZ the shard already has is refused.
        let b_node = 2;
        let start = |to| MetaCommand::StartMove {
            name: name(),
            shard: ShardId(0),
            from,
            to,
            at_ms: 7,
        };
        assert!(state.apply(&start(b_node)).is_err());
        state.apply(&start(to)).unwrap();
        state.apply(&start(to)).unwrap();
        assert!(shard(&state, 0).placed_on(to));
        assert_eq!(
            state.groups_of(to).count(),
            1,
            "the target starts the group as a learner"
        );
        let finish = MetaCommand::FinishMove {
            name: name(),
            shard: ShardId(0),
            from,
            to,
        };
        state.apply(&finish).unwrap();
        state.apply(&finish).unwrap();
        let moved = shard(&state, 0);
        assert_eq!(moved.move_opt, None);
        let position = replicas.iter().position(|id| *id == from).unwrap();
        assert_eq!(moved.replicas[position], to, "{moved:?}");
        assert_eq!(azs_of(&state, &moved.replicas).len(), 3);

        state
            .apply(&MetaCommand::ForgetNode { node_id: from })
            .unwrap();
        assert!(!state.nodes.contains_key(&from));
        let again = MetaCommand::RegisterNode {
            node_id: from,
            az: "a".into(),
            address: "back".into(),
        };
        let refused = state.apply(&again).unwrap_err();
        assert!(refused.message.contains("was removed"), "{refused:?}");
    }

    #[test]
    fn new_shards_avoid_nodes_being_removed() {
        let mut state = cluster(&["a", "b", "c", "a"]);
        state
            .apply(&MetaCommand::RemoveNode { node_id: 4 })
            .unwrap();
        // Registration (sent again on every start) keeps the mark.
        let again = MetaCommand::RegisterNode {
            node_id: 4,
            az: "a".into(),
            address: "node-4".into(),
        };
        state.apply(&again).unwrap();
        assert!(state.nodes[&4].removing);
        with_stream(&mut state, 6);
        for shard in &state.streams[&name()].shards {
            assert!(!shard.replicas.contains(&4), "{shard:?}");
        }
    }
}

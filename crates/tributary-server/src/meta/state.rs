//! The metadata catalogue and its pure apply function: `apply(state, command) -> result`.
//! Everything here is deterministic, so every replica of group 0 reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tributary_raft::meta::MetaCommand;
use tributary_types::{
    Error, ErrorCode, GroupId, HashKeyRange, MAX_RETENTION_HOURS, MAX_SHARDS_PER_STREAM,
    METADATA_GROUP, MIN_RETENTION_HOURS, NodeId, SequenceNumber, ShardId, StreamName,
};

use super::placement;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub az: String,
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardStatus {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub shard_id: ShardId,
    pub group: GroupId,
    pub hash_range: HashKeyRange,
    pub parent_opt: Option<ShardId>,
    pub adjacent_parent_opt: Option<ShardId>,
    pub status: ShardStatus,
    /// The first replica is the preferred leader; it initializes the group.
    pub replicas: Vec<NodeId>,
    pub ending_sequence_number_opt: Option<SequenceNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub name: StreamName,
    pub status: StreamStatus,
    pub retention_hours: u32,
    pub created_at_ms: u64,
    pub shards: Vec<ShardMeta>,
}

impl StreamMeta {
    pub fn shard(&self, shard_id: ShardId) -> Option<&ShardMeta> {
        self.shards.iter().find(|shard| shard.shard_id == shard_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub streams: BTreeMap<StreamName, StreamMeta>,
    pub next_group: u64,
}

impl Default for MetaState {
    fn default() -> Self {
        // Group 0 is the metadata group itself.
        MetaState {
            nodes: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_group: 1,
        }
    }
}

impl MetaState {
    pub fn stream(&self, name: &StreamName) -> Result<&StreamMeta, Error> {
        self.streams
            .get(name)
            .ok_or_else(|| Error::stream_not_found(name.as_str()))
    }

    /// Every shard group `node` holds a replica of, with its stream.
    pub fn groups_of(&self, node: NodeId) -> impl Iterator<Item = (&StreamMeta, &ShardMeta)> {
        self.streams
            .values()
            .flat_map(|stream| stream.shards.iter().map(move |shard| (stream, shard)))
            .filter(move |(_, shard)| shard.replicas.contains(&node))
    }

    /// Of the shard groups found on this node's disk, those whose stream was deleted. Group ids
    /// are never reused, so an id below `next_group` that the catalogue lacks was deleted — true
    /// even when this replica of the catalogue is behind.
    pub fn deleted_groups(&self, on_disk: impl IntoIterator<Item = GroupId>) -> Vec<GroupId> {
        let live: std::collections::BTreeSet<GroupId> = self
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(|shard| shard.group))
            .collect();
        on_disk
            .into_iter()
            .filter(|g| *g != METADATA_GROUP && g.0 < self.next_group && !live.contains(g))
            .collect()
    }

    pub fn apply(&mut self, command: &MetaCommand) -> Result<(), Error> {
        match command {
            MetaCommand::RegisterNode {
                node_id,
                az,
                address,
            } => {
                self.nodes.insert(
                    *node_id,
                    NodeInfo {
                        az: az.clone(),
                        address: address.clone(),
                    },
                );
                Ok(())
            }
            MetaCommand::CreateStream {
                name,
                shard_count,
                retention_hours,
                created_at_ms,
                down_nodes,
            } => self.create_stream(
                name,
                *shard_count,
                *retention_hours,
                *created_at_ms,
                down_nodes,
            ),
            MetaCommand::DeleteStream { name } => {
                self.stream(name)?;
                self.streams.remove(name);
                Ok(())
            }
        }
    }

    fn create_stream(
        &mut self,
        name: &StreamName,
        shard_count: u32,
        retention_hours: u32,
        created_at_ms: u64,
        down_nodes: &[NodeId],
    ) -> Result<(), Error> {
        validate_create(shard_count, retention_hours)?;
        if self.streams.contains_key(name) {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!("Stream {name} already exists."),
            ));
        }
        let replica_sets = placement::place_shards(self, shard_count, down_nodes)?;
        let ranges = HashKeyRange::split_evenly(shard_count);
        let shards = ranges
            .into_iter()
            .zip(replica_sets)
            .enumerate()
            .map(|(index, (hash_range, replicas))| {
                let group = GroupId(self.next_group);
                self.next_group += 1;
                ShardMeta {
                    shard_id: ShardId(index as u32),
                    group,
                    hash_range,
                    parent_opt: None,
                    adjacent_parent_opt: None,
                    status: ShardStatus::Open,
                    replicas,
                    ending_sequence_number_opt: None,
                }
            })
            .collect();
        let stream = StreamMeta {
            name: name.clone(),
            // Shard groups start within a second of the commit; writers wait for their leaders.
            status: StreamStatus::Active,
            retention_hours,
            created_at_ms,
            shards,
        };
        self.streams.insert(name.clone(), stream);
        Ok(())
    }
}

/// The argument rules of CreateStream; checked before proposing and again at apply.
pub fn validate_create(shard_count: u32, retention_hours: u32) -> Result<(), Error> {
    if shard_count == 0 {
        return Err(Error::invalid_argument(
            "Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    if shard_count > MAX_SHARDS_PER_STREAM {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "A stream may have at most {MAX_SHARDS_PER_STREAM} shards; {shard_count} were requested"
            ),
        ));
    }
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&retention_hours) {
        return Err(Error::invalid_argument(format!(
            "Retention period {retention_hours} hours is outside [{MIN_RETENTION_HOURS}, {MAX_RETENTION_HOURS}]"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(nodes: &[(NodeId, &str)]) -> MetaState {
        let mut state = MetaState::default();
        for (id, az) in nodes {
            let command = MetaCommand::RegisterNode {
                node_id: *id,
                az: az.to_string(),
                address: format!("127.0.0.1:{id}"),
            };
            state.apply(&command).unwrap();
        }
        state
    }

    fn create(name: &str, shard_count: u32) -> MetaCommand {
        MetaCommand::CreateStream {
            name: name.parse().unwrap(),
            shard_count,
            retention_hours: 24,
            created_at_ms: 1,
            down_nodes: Vec::new(),
        }
    }

    #[test]
    fn create_allocates_groups_and_ranges() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        state.apply(&create("s", 3)).unwrap();
        state.apply(&create("t", 2)).unwrap();
        let groups: Vec<u64> = state
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(|sh| sh.group.0))
            .collect();
        assert_eq!(groups, [1, 2, 3, 4, 5]);
        let s = state.stream(&"s".parse().unwrap()).unwrap();
        assert_eq!(s.shards[2].hash_range.end_inclusive, u128::MAX);
    }

    #[test]
    fn create_rejects_duplicates_and_bad_arguments_without_changing_state() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        state.apply(&create("s", 1)).unwrap();
        let before = state.clone();
        assert_eq!(
            state.apply(&create("s", 1)).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            state.apply(&create("z", 0)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            state.apply(&create("z", 501)).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
        assert_eq!(state, before);
    }

    #[test]
    fn deleted_groups_are_told_apart_from_unknown_new_ones() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        state.apply(&create("s", 2)).unwrap(); // groups 1, 2
        state.apply(&create("t", 1)).unwrap(); // group 3
        state
            .apply(&MetaCommand::DeleteStream {
                name: "s".parse().unwrap(),
            })
            .unwrap();
        // Group 9 is newer than this replica knows (it may be behind): never treated as deleted.
        let on_disk = [GroupId(0), GroupId(1), GroupId(2), GroupId(3), GroupId(9)];
        assert_eq!(state.deleted_groups(on_disk), [GroupId(1), GroupId(2)]);
    }

    #[test]
    fn delete_needs_an_existing_stream() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        let delete = MetaCommand::DeleteStream {
            name: "nope".parse().unwrap(),
        };
        assert_eq!(
            state.apply(&delete).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
    }
}

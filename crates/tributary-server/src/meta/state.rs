//! The metadata catalogue and its pure apply function: `apply(state, command) -> result`.
//! Everything here is deterministic, so every replica of group 0 reaches the same state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tributary_raft::meta::{MetaCommand, RetentionChange, StreamEncryption};
use tributary_types::table::Item;
use tributary_types::{
    ConsumerName, Error, ErrorCode, GroupId, HashKeyRange, MAX_CONSUMERS_PER_STREAM,
    MAX_RETENTION_HOURS, MAX_SHARDS_PER_STREAM, METADATA_GROUP, MIN_RETENTION_HOURS, NodeId,
    SequenceNumber, ShardId, StreamMode, StreamName, validate_tag, validate_tag_counts,
};

use super::placement;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub az: String,
    pub address: String,
    /// Being decommissioned (`cluster remove-node`): nothing new is placed here and its
    /// replicas move away.
    pub removing: bool,
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
    pub created_at_ms: u64,
    /// When the shard closed (split or merged), for ListShards' time filters and expiry.
    pub closed_at_ms_opt: Option<u64>,
    /// A replica on its way to another node; at most one per shard.
    pub move_opt: Option<ReplicaMove>,
}

/// One replica of a shard moving between nodes: `to` replicates the group as a learner, catches
/// up, becomes a voter, and `from` leaves the group (see `moves.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMove {
    pub from: NodeId,
    pub to: NodeId,
    pub started_at_ms: u64,
}

impl ShardMeta {
    /// Whether `node` holds (or is receiving) a replica of this shard.
    pub fn placed_on(&self, node: NodeId) -> bool {
        self.replicas.contains(&node) || self.move_opt.is_some_and(|m| m.to == node)
    }
}

/// A registered enhanced fan-out consumer. Registration needs no provisioning here, so a
/// consumer is ACTIVE as soon as the registration commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub name: StreamName,
    pub status: StreamStatus,
    pub retention_hours: u32,
    pub created_at_ms: u64,
    pub shards: Vec<ShardMeta>,
    pub mode: StreamMode,
    pub tags: BTreeMap<String, String>,
    pub consumers: BTreeMap<ConsumerName, ConsumerMeta>,
    /// The index the next new shard (a split or merge child) gets; shard ids are never reused.
    pub next_shard_index: u32,
    /// When UpdateShardCount ran, within the last 24 hours (at most 10 there, as in Kinesis).
    pub scalings_ms: Vec<u64>,
    /// Enhanced monitoring's shard-level metrics, as last set (recorded and reported).
    pub shard_level_metrics: BTreeSet<String>,
    /// Set while the stream is encrypted: new records are sealed with this key.
    pub encryption_opt: Option<StreamEncryption>,
    /// When Start/StopStreamEncryption changed it, within the last 24 hours (at most 25 there, as
    /// in Kinesis).
    pub encryption_changes_ms: Vec<u64>,
}

impl StreamMeta {
    pub fn shard(&self, shard_id: ShardId) -> Option<&ShardMeta> {
        self.shards.iter().find(|shard| shard.shard_id == shard_id)
    }

    pub fn open_shard_count(&self) -> usize {
        self.shards
            .iter()
            .filter(|shard| shard.status == ShardStatus::Open)
            .count()
    }

    /// Refuses an operation that needs the stream ACTIVE (Kinesis' ResourceInUseException).
    pub fn require_active(&self, operation: &str) -> Result<(), Error> {
        if self.status == StreamStatus::Active {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::ResourceInUse,
            format!(
                "Stream {} is {}; {operation} needs it ACTIVE",
                self.name,
                self.status.as_str()
            ),
        ))
    }

    /// Users reshard PROVISIONED streams; ON_DEMAND streams are resharded by the scaler alone
    /// (Kinesis answers a ValidationException).
    pub fn require_resharder(&self, by_scaler: bool, operation: &str) -> Result<(), Error> {
        match (self.mode, by_scaler) {
            (StreamMode::Provisioned, false) | (StreamMode::OnDemand, true) => Ok(()),
            (StreamMode::OnDemand, false) => Err(Error::invalid_argument(format!(
                "{operation} is not supported for stream {} in ON_DEMAND mode; it scales itself",
                self.name
            ))),
            (StreamMode::Provisioned, true) => Err(Error::invalid_argument(format!(
                "Stream {} is PROVISIONED now; the on-demand scaler leaves it alone",
                self.name
            ))),
        }
    }

    /// Refuses an operation on a stream that is being created or deleted.
    pub fn require_usable(&self, operation: &str) -> Result<(), Error> {
        if matches!(self.status, StreamStatus::Active | StreamStatus::Updating) {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::ResourceInUse,
            format!(
                "Stream {} is {}; {operation} needs it ACTIVE or UPDATING",
                self.name,
                self.status.as_str()
            ),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub streams: BTreeMap<StreamName, StreamMeta>,
    pub next_group: u64,
    /// Lease tables (see `tables.rs`).
    pub tables: BTreeMap<String, super::tables::TableMeta>,
    /// Ids of nodes removed from the cluster; none of them may register again.
    pub removed_nodes: std::collections::BTreeSet<NodeId>,
    /// Users, access keys and policies (see `auth.rs`).
    pub auth: super::auth::AuthState,
}

impl Default for MetaState {
    fn default() -> Self {
        // Group 0 is the metadata group itself.
        MetaState {
            nodes: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_group: 1,
            tables: BTreeMap::new(),
            removed_nodes: Default::default(),
            auth: Default::default(),
        }
    }
}

impl MetaState {
    pub fn stream(&self, name: &StreamName) -> Result<&StreamMeta, Error> {
        self.streams
            .get(name)
            .ok_or_else(|| Error::stream_not_found(name.as_str()))
    }

    pub(super) fn stream_mut(&mut self, name: &StreamName) -> Result<&mut StreamMeta, Error> {
        self.streams
            .get_mut(name)
            .ok_or_else(|| Error::stream_not_found(name.as_str()))
    }

    /// Every shard group `node` holds (or is receiving) a replica of, with its stream. A DELETING stream has no
    /// groups any more: its replicas stop and remove their data.
    pub fn groups_of(&self, node: NodeId) -> impl Iterator<Item = (&StreamMeta, &ShardMeta)> {
        self.streams
            .values()
            .filter(|stream| stream.status != StreamStatus::Deleting)
            .flat_map(|stream| stream.shards.iter().map(move |shard| (stream, shard)))
            .filter(move |(_, shard)| shard.placed_on(node))
    }

    /// Of the shard groups found on this node's disk, those whose stream was deleted. Group ids
    /// are never reused, so an id below `next_group` that the catalogue lacks was deleted — true
    /// even when this replica of the catalogue is behind.
    pub fn deleted_groups(&self, on_disk: impl IntoIterator<Item = GroupId>) -> Vec<GroupId> {
        let live: std::collections::BTreeSet<GroupId> = self
            .streams
            .values()
            .filter(|stream| stream.status != StreamStatus::Deleting)
            .flat_map(|s| s.shards.iter().map(|shard| shard.group))
            .collect();
        on_disk
            .into_iter()
            .filter(|g| *g != METADATA_GROUP && g.0 < self.next_group && !live.contains(g))
            .collect()
    }

    pub fn apply(&mut self, command: &MetaCommand) -> Result<(), Error> {
        self.apply_with_item(command).map(|_| ())
    }

    /// Applies a command; table updates also answer the item they wrote.
    pub fn apply_with_item(&mut self, command: &MetaCommand) -> Result<Option<Item>, Error> {
        if let MetaCommand::Table(table_command) = command {
            return self.apply_table(table_command);
        }
        if let MetaCommand::Auth(auth_command) = command {
            return self.apply_auth(auth_command).map(|()| None);
        }
        self.apply_catalogue(command).map(|()| None)
    }

    fn apply_catalogue(&mut self, command: &MetaCommand) -> Result<(), Error> {
        match command {
            MetaCommand::Table(_) => unreachable!("table commands are applied by apply_table"),
            MetaCommand::Auth(_) => unreachable!("auth commands are applied by apply_auth"),
            MetaCommand::RegisterNode {
                node_id,
                az,
                address,
            } => self.register_node(*node_id, az, address),
            MetaCommand::CreateStream {
                name,
                shard_count,
                retention_hours,
                created_at_ms,
                down_nodes,
                mode,
                tags,
            } => self.create_stream(
                name,
                *shard_count,
                *retention_hours,
                *created_at_ms,
                down_nodes,
                *mode,
                tags,
            ),
            MetaCommand::DeleteStream {
                name,
                enforce_consumer_deletion,
            } => {
                let stream = self.stream_mut(name)?;
                if stream.status == StreamStatus::Deleting {
                    return Ok(());
                }
                if !stream.consumers.is_empty() && !enforce_consumer_deletion {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!(
                            "Stream {name} has {} registered consumers; deregister them or delete with \
                             EnforceConsumerDeletion",
                            stream.consumers.len()
                        ),
                    ));
                }
                stream.status = StreamStatus::Deleting;
                stream.consumers.clear();
                stream.tags.clear();
                Ok(())
            }
            MetaCommand::RemoveStream { name } => {
                if self.stream(name)?.status != StreamStatus::Deleting {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Stream {name} is not DELETING"),
                    ));
                }
                self.streams.remove(name);
                Ok(())
            }
            MetaCommand::ActivateStream { name } => {
                let stream = self.stream_mut(name)?;
                if matches!(
                    stream.status,
                    StreamStatus::Creating | StreamStatus::Updating
                ) {
                    stream.status = StreamStatus::Active;
                }
                Ok(())
            }
            MetaCommand::UpdateRetention {
                name,
                hours,
                change,
            } => {
                let stream = self.stream_mut(name)?;
                stream.require_active("changing the retention period")?;
                validate_retention_change(stream.retention_hours, *hours, *change)?;
                stream.retention_hours = *hours;
                Ok(())
            }
            MetaCommand::AddTags { name, tags } => {
                let stream = self.stream_mut(name)?;
                stream.require_usable("tagging")?;
                for (key, value) in tags {
                    validate_tag(key, value)?;
                }
                let after = tags
                    .iter()
                    .filter(|(key, _)| !stream.tags.contains_key(key))
                    .map(|(key, _)| key)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    + stream.tags.len();
                validate_tag_counts(tags.len(), after)?;
                stream.tags.extend(tags.iter().cloned());
                Ok(())
            }
            MetaCommand::SetShardLevelMetrics { name, metrics } => {
                let stream = self.stream_mut(name)?;
                stream.require_usable("enhanced monitoring")?;
                stream.shard_level_metrics = metrics.iter().cloned().collect();
                Ok(())
            }
            MetaCommand::RemoveTags { name, keys } => {
                let stream = self.stream_mut(name)?;
                stream.require_usable("untagging")?;
                if keys.is_empty() || keys.len() > tributary_types::MAX_TAGS_PER_CALL {
                    return Err(Error::invalid_argument(format!(
                        "A call removes 1 to {} tags; got {}",
                        tributary_types::MAX_TAGS_PER_CALL,
                        keys.len()
                    )));
                }
                for key in keys {
                    stream.tags.remove(key);
                }
                Ok(())
            }
            MetaCommand::RegisterConsumer {
                name,
                consumer,
                created_at_ms,
            } => {
                let stream = self.stream_mut(name)?;
                stream.require_usable("registering a consumer")?;
                if stream.consumers.contains_key(consumer) {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Consumer {consumer} of stream {name} already exists."),
                    ));
                }
                if stream.consumers.len() >= MAX_CONSUMERS_PER_STREAM {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!(
                            "Stream {name} already has {MAX_CONSUMERS_PER_STREAM} consumers, the most a stream may have"
                        ),
                    ));
                }
                stream.consumers.insert(
                    consumer.clone(),
                    ConsumerMeta {
                        created_at_ms: *created_at_ms,
                    },
                );
                Ok(())
            }
            MetaCommand::DeregisterConsumer { name, consumer } => {
                let stream = self.stream_mut(name)?;
                stream
                    .consumers
                    .remove(consumer)
                    .map(|_| ())
                    .ok_or_else(|| {
                        Error::not_found(format!("Consumer {consumer} of stream {name} not found."))
                    })
            }
            MetaCommand::SplitShard {
                name,
                shard,
                new_starting_hash_key,
                at_ms,
                down_nodes,
                by_scaler,
            } => {
                self.stream(name)?
                    .require_resharder(*by_scaler, "SplitShard")?;
                self.split_shard(name, *shard, *new_starting_hash_key, *at_ms, down_nodes)
            }
            MetaCommand::MergeShards {
                name,
                shard,
                adjacent_shard,
                at_ms,
                down_nodes,
                by_scaler,
            } => {
                self.stream(name)?
                    .require_resharder(*by_scaler, "MergeShards")?;
                self.merge_shards(name, *shard, *adjacent_shard, *at_ms, down_nodes)
            }
            MetaCommand::UpdateShardCount {
                name,
                target,
                at_ms,
                down_nodes,
            } => {
                self.stream(name)?
                    .require_resharder(false, "UpdateShardCount")?;
                self.update_shard_count(name, *target, *at_ms, down_nodes)
            }
            MetaCommand::SealShard {
                name,
                shard,
                ending,
            } => self.seal_shard(name, *shard, *ending),
            MetaCommand::ExpireShards { name, shards } => {
                let stream = self.stream_mut(name)?;
                stream.shards.retain(|shard| {
                    !(shards.contains(&shard.shard_id) && shard.status == ShardStatus::Closed)
                });
                Ok(())
            }
            MetaCommand::RemoveNode { node_id } => self.remove_node(*node_id),
            MetaCommand::StartMove {
                name,
                shard,
                from,
                to,
                at_ms,
            } => self.start_move(name, *shard, *from, *to, *at_ms),
            MetaCommand::FinishMove {
                name,
                shard,
                from,
                to,
            } => self.finish_move(name, *shard, *from, *to),
            MetaCommand::ForgetNode { node_id } => self.forget_node(*node_id),
            MetaCommand::SetStreamEncryption {
                name,
                encryption_opt,
                at_ms,
            } => {
                let stream = self.stream_mut(name)?;
                stream.require_active("changing encryption")?;
                let day_ago = at_ms.saturating_sub(24 * 3_600_000);
                stream.encryption_changes_ms.retain(|ms| *ms > day_ago);
                if stream.encryption_changes_ms.len() >= MAX_ENCRYPTION_CHANGES_PER_DAY {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!(
                            "Stream {name} changed its encryption {MAX_ENCRYPTION_CHANGES_PER_DAY} times in the last 24 hours, the most allowed"
                        ),
                    ));
                }
                stream.encryption_changes_ms.push(*at_ms);
                stream.encryption_opt = encryption_opt.clone();
                stream.status = StreamStatus::Updating;
                Ok(())
            }
            MetaCommand::UpdateStreamMode { name, mode } => {
                let stream = self.stream_mut(name)?;
                stream.require_active("changing the capacity mode")?;
                if stream.mode == *mode {
                    return Err(Error::invalid_argument(format!(
                        "Stream {name} is already {mode}"
                    )));
                }
                stream.mode = *mode;
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_stream(
        &mut self,
        name: &StreamName,
        shard_count: u32,
        retention_hours: u32,
        created_at_ms: u64,
        down_nodes: &[NodeId],
        mode: StreamMode,
        tags: &[(String, String)],
    ) -> Result<(), Error> {
        validate_create(shard_count, retention_hours)?;
        for (key, value) in tags {
            validate_tag(key, value)?;
        }
        if tags.len() > tributary_types::MAX_TAGS_PER_STREAM {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!(
                    "A stream carries at most {} tags; {} were given",
                    tributary_types::MAX_TAGS_PER_STREAM,
                    tags.len()
                ),
            ));
        }
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
                    created_at_ms,
                    closed_at_ms_opt: None,
                    move_opt: None,
                }
            })
            .collect();
        let stream = StreamMeta {
            name: name.clone(),
            // The stream driver activates it once every shard group has elected a leader.
            status: StreamStatus::Creating,
            retention_hours,
            created_at_ms,
            shards,
            mode,
            tags: tags.iter().cloned().collect(),
            consumers: BTreeMap::new(),
            next_shard_index: shard_count,
            scalings_ms: Vec::new(),
            shard_level_metrics: Default::default(),
            encryption_opt: None,
            encryption_changes_ms: Vec::new(),
        };
        self.streams.insert(name.clone(), stream);
        Ok(())
    }
}

/// Start/StopStreamEncryption calls per stream per rolling 24 hours (Kinesis' limit).
pub const MAX_ENCRYPTION_CHANGES_PER_DAY: usize = 25;

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

/// Kinesis' retention rules: within [24, 8760] hours, an increase above and a decrease below the
/// current period.
pub fn validate_retention_change(
    current: u32,
    hours: u32,
    change: RetentionChange,
) -> Result<(), Error> {
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
        return Err(Error::invalid_argument(format!(
            "Retention period {hours} hours is outside [{MIN_RETENTION_HOURS}, {MAX_RETENTION_HOURS}]"
        )));
    }
    match change {
        RetentionChange::Increase if hours <= current => Err(Error::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream must be greater than current retention period ({current} hours)"
        ))),
        RetentionChange::Decrease if hours >= current => Err(Error::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream must be less than current retention period ({current} hours)"
        ))),
        _ => Ok(()),
    }
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
            mode: StreamMode::Provisioned,
            tags: Vec::new(),
        }
    }

    fn name(text: &str) -> StreamName {
        text.parse().unwrap()
    }

    fn active(state: &mut MetaState, stream: &str, shard_count: u32) {
        state.apply(&create(stream, shard_count)).unwrap();
        state
            .apply(&MetaCommand::ActivateStream { name: name(stream) })
            .unwrap();
    }

    #[test]
    fn streams_are_created_creating_and_activated_by_the_driver() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        state.apply(&create("s", 2)).unwrap();
        let stream = state.stream(&name("s")).unwrap();
        assert_eq!(stream.status, StreamStatus::Creating);
        assert_eq!(stream.next_shard_index, 2);
        let retention = MetaCommand::UpdateRetention {
            name: name("s"),
            hours: 48,
            change: RetentionChange::Increase,
        };
        assert_eq!(
            state.apply(&retention).unwrap_err().code,
            ErrorCode::ResourceInUse,
            "retention changes need ACTIVE"
        );
        state
            .apply(&MetaCommand::ActivateStream { name: name("s") })
            .unwrap();
        state.apply(&retention).unwrap();
        assert_eq!(state.stream(&name("s")).unwrap().retention_hours, 48);
    }

    #[test]
    fn retention_changes_follow_kinesis_rules() {
        use RetentionChange::{Decrease, Increase};
        assert!(validate_retention_change(24, 48, Increase).is_ok());
        assert!(validate_retention_change(48, 24, Decrease).is_ok());
        for (current, hours, change) in [
            (24, 24, Increase),
            (48, 24, Increase),
            (24, 48, Decrease),
            (24, 23, Decrease),
            (24, 8761, Increase),
        ] {
            assert_eq!(
                validate_retention_change(current, hours, change)
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidArgument,
                "{current} -> {hours} by {change:?}"
            );
        }
    }

    #[test]
    fn tags_overwrite_count_distinct_keys_and_removal_ignores_missing_ones() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        active(&mut state, "s", 1);
        let tags = |pairs: &[(&str, &str)]| MetaCommand::AddTags {
            name: name("s"),
            tags: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        state
            .apply(&tags(&[("team", "a"), ("env", "dev")]))
            .unwrap();
        state.apply(&tags(&[("team", "b")])).unwrap();
        let stream = state.stream(&name("s")).unwrap();
        assert_eq!(stream.tags.get("team").map(String::as_str), Some("b"));
        assert_eq!(stream.tags.len(), 2);
        // 2 tags so far; 4 × 10 + 8 more make the 50 a stream may carry.
        for (batch, count) in [(0, 10), (1, 10), (2, 10), (3, 10), (4, 8)] {
            let pairs: Vec<(String, String)> = (0..count)
                .map(|i| (format!("k{batch}-{i}"), String::new()))
                .collect();
            let command = MetaCommand::AddTags {
                name: name("s"),
                tags: pairs,
            };
            state.apply(&command).unwrap();
        }
        assert_eq!(
            state
                .apply(&tags(&[("one-too-many", "")]))
                .unwrap_err()
                .code,
            ErrorCode::LimitExceeded
        );
        let remove = MetaCommand::RemoveTags {
            name: name("s"),
            keys: vec!["team".into(), "absent".into()],
        };
        state.apply(&remove).unwrap();
        assert!(!state.stream(&name("s")).unwrap().tags.contains_key("team"));
    }

    #[test]
    fn consumers_are_limited_and_block_deletion_unless_enforced() {
        let mut state = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        active(&mut state, "s", 1);
        let register = |consumer: String| MetaCommand::RegisterConsumer {
            name: name("s"),
            consumer: consumer.parse().unwrap(),
            created_at_ms: 5,
        };
        for i in 0..MAX_CONSUMERS_PER_STREAM {
            state.apply(&register(format!("c{i}"))).unwrap();
        }
        assert_eq!(
            state.apply(&register("c0".into())).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            state.apply(&register("extra".into())).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
        let delete = |enforce_consumer_deletion| MetaCommand::DeleteStream {
            name: name("s"),
            enforce_consumer_deletion,
        };
        assert_eq!(
            state.apply(&delete(false)).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
        state.apply(&delete(true)).unwrap();
        let stream = state.stream(&name("s")).unwrap();
        assert_eq!(stream.status, StreamStatus::Deleting);
        assert!(stream.consumers.is_empty());
        assert_eq!(
            state.groups_of(1).count(),
            0,
            "a DELETING stream has no groups"
        );
        state
            .apply(&MetaCommand::RemoveStream { name: name("s") })
            .unwrap();
        assert!(state.stream(&name("s")).is_err());
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
                enforce_consumer_deletion: false,
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
            enforce_consumer_deletion: false,
        };
        assert_eq!(
            state.apply(&delete).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
    }
}

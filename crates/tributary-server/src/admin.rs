//! Control-plane operations: cluster status and the stream catalogue. Writes go through the
//! metadata group; reads come from this node's replica of it.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tributary_proto::v1::PingRequest;
use tributary_raft::meta::{MetaCommand, RetentionChange};
use tributary_types::{
    ConsumerName, DEFAULT_RETENTION_HOURS, Error, ErrorCode, NextToken, NodeId,
    ON_DEMAND_INITIAL_SHARDS, SequenceNumber, ShardId, StreamMode, StreamName,
};

use crate::api::{
    ClusterStatus, ConsumerDescription, LeadershipReport, Limits, MoveStatus, NodeStatus, Page,
    ReplicaDescription, ShardDescription, ShardLevelMetricsChange, StreamDescription,
    StreamSummary,
};
use crate::meta::listing::{ShardFilter, filter_shards};
use crate::meta::state::validate_create;
use crate::meta::{ShardMeta, StreamMeta};
use crate::node::Node;
use crate::now_ms;

/// ListStreams returns at most this many names per call unless asked for fewer.
pub const DEFAULT_LIST_STREAMS_LIMIT: u32 = 100;
/// ListShards returns at most this many shards per call unless asked for fewer.
pub const DEFAULT_LIST_SHARDS_LIMIT: u32 = 1_000;
/// The largest page either listing serves.
pub const MAX_LIST_LIMIT: u32 = 10_000;
/// DescribeStream's default and largest page of shards.
pub const MAX_DESCRIBE_SHARDS: u32 = 100;
/// ListTagsForStream's default and largest page.
pub const MAX_LIST_TAGS_LIMIT: u32 = 50;

/// Enhanced monitoring's shard-level metric names (Kinesis' enum, without `ALL`).
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

/// Options of CreateStream beyond the name.
#[derive(Debug, Clone, Default)]
pub struct CreateStreamOptions {
    /// Required for PROVISIONED streams; unset (or 0) for ON_DEMAND ones.
    pub shard_count: u32,
    pub retention_hours_opt: Option<u32>,
    pub mode_opt: Option<StreamMode>,
    pub tags: Vec<(String, String)>,
}

/// The ListShards request in domain terms.
#[derive(Debug, Clone, Default)]
pub struct ListShardsRequest {
    pub stream_opt: Option<String>,
    pub next_token_opt: Option<String>,
    pub exclusive_start_shard_id_opt: Option<String>,
    pub max_results_opt: Option<u32>,
    pub filter_opt: Option<ShardFilter>,
}

fn page_limit(limit_opt: Option<u32>, default: u32, max: u32, field: &str) -> Result<usize, Error> {
    let limit = limit_opt.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(Error::invalid_argument(format!(
            "Value '{limit}' at '{field}' failed to satisfy constraint: Member must have value between 1 and {max}"
        )));
    }
    Ok(limit as usize)
}

/// How long `cluster status` waits for a node to answer a ping before calling it dead.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

impl Node {
    pub async fn cluster_status(&self) -> ClusterStatus {
        self.catch_up_metadata().await;
        let state = self.meta.snapshot();
        let replica_counts = state.replica_counts();
        let metrics = self.meta_raft.metrics().borrow_watched().clone();
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let pings = state.nodes.iter().map(|(id, info)| async move {
            if *id == self.id() {
                Some(self.leadership_report())
            } else {
                self.ping_report(&info.address).await
            }
        });
        let reports = futures::future::join_all(pings).await;
        let mut lag: BTreeMap<NodeId, u64> = BTreeMap::new();
        for report in reports.iter().flatten() {
            for (follower, entries) in &report.follower_lag {
                let worst = lag.entry(*follower).or_default();
                *worst = (*worst).max(*entries);
            }
        }
        let nodes = state
            .nodes
            .iter()
            .zip(&reports)
            .map(|((id, info), report_opt)| NodeStatus {
                id: *id,
                az: info.az.clone(),
                address: info.address.clone(),
                alive: report_opt.is_some(),
                removing: info.removing,
                metadata_voter: voters.contains(id),
                replica_count: replica_counts.get(id).copied().unwrap_or(0) as u32,
                shard_leaders: report_opt.as_ref().map_or(0, |r| r.shard_leaders),
                lag_entries: lag.get(id).copied().unwrap_or(0),
            })
            .collect();
        let moves = state
            .live_shards()
            .filter_map(|(stream, shard)| {
                shard.move_opt.map(|m| MoveStatus {
                    stream: stream.clone(),
                    shard_id: shard.shard_id,
                    from: m.from,
                    to: m.to,
                    started_at_ms: m.started_at_ms,
                })
            })
            .collect();
        ClusterStatus {
            nodes,
            metadata_leader_opt: metrics.current_leader,
            answered_by: self.id(),
            moves,
            removed_nodes: state.removed_nodes.iter().copied().collect(),
            auth: self.auth_mode().as_str(),
            tls: self.tls_on,
        }
    }

    /// Marks a node for removal (see `moves.rs`); answers how many replicas will move.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<u32, Error> {
        self.catch_up_metadata().await;
        self.meta_write(MetaCommand::RemoveNode { node_id }).await?;
        Ok(self.meta.read(|state| {
            state
                .live_shards()
                .filter(|(_, shard)| shard.replicas.contains(&node_id))
                .count() as u32
        }))
    }

    /// Registered nodes that do not answer a ping now.
    async fn unreachable_nodes(&self) -> Vec<NodeId> {
        let nodes = self.meta.read(|state| state.nodes.clone());
        let pings = nodes.iter().map(|(id, info)| async move {
            let alive = *id == self.id() || self.ping(&info.address).await;
            (!alive).then_some(*id)
        });
        futures::future::join_all(pings)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The shard groups this node leads, and how far behind their followers are.
    pub fn leadership_report(&self) -> LeadershipReport {
        let mut report = LeadershipReport::default();
        for group in self.groups.all() {
            let metrics = group.raft.metrics().borrow_watched().clone();
            if metrics.current_leader != Some(self.id()) {
                continue;
            }
            report.shard_leaders += 1;
            let last = metrics.last_log_index.unwrap_or(0);
            for (follower, matched_opt) in metrics.replication.iter().flatten() {
                if *follower == self.id() {
                    continue;
                }
                let behind = last.saturating_sub(matched_opt.as_ref().map_or(0, |id| id.index));
                let worst = report.follower_lag.entry(*follower).or_default();
                *worst = (*worst).max(behind);
            }
        }
        report
    }

    /// A node's leadership report, or `None` when it does not answer in time.
    async fn ping_report(&self, address: &str) -> Option<LeadershipReport> {
        let mut client = self.public_client(address).ok()?;
        match tokio::time::timeout(PING_TIMEOUT, client.ping(PingRequest {})).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                Some(LeadershipReport {
                    shard_leaders: reply.shard_leaders,
                    follower_lag: reply.follower_lag.into_iter().collect(),
                })
            }
            _ => None,
        }
    }

    async fn ping(&self, address: &str) -> bool {
        self.ping_report(address).await.is_some()
    }

    /// A stream name that parses and names a stream of the catalogue.
    async fn known_stream(&self, name: &str) -> Result<StreamName, Error> {
        let name: StreamName = name.parse()?;
        self.stream_meta(&name).await?;
        Ok(name)
    }

    pub async fn create_stream(
        &self,
        name: &str,
        options: CreateStreamOptions,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        let mode = options.mode_opt.unwrap_or(StreamMode::Provisioned);
        let shard_count = match mode {
            StreamMode::Provisioned => options.shard_count,
            StreamMode::OnDemand if options.shard_count == 0 => ON_DEMAND_INITIAL_SHARDS,
            StreamMode::OnDemand => {
                return Err(Error::invalid_argument(format!(
                    "An ON_DEMAND stream starts with {ON_DEMAND_INITIAL_SHARDS} shards and scales itself; \
                     leave ShardCount unset"
                )));
            }
        };
        let retention_hours = options
            .retention_hours_opt
            .unwrap_or(DEFAULT_RETENTION_HOURS);
        validate_create(shard_count, retention_hours)?;
        if self.meta.read(|state| state.streams.contains_key(&name)) {
            return Err(Error::new(
                ErrorCode::ResourceInUse,
                format!("Stream {name} already exists."),
            ));
        }
        let down_nodes = self.unreachable_nodes().await;
        self.meta_write(MetaCommand::CreateStream {
            name,
            shard_count,
            retention_hours,
            created_at_ms: now_ms(),
            down_nodes,
            mode,
            tags: options.tags,
        })
        .await
    }

    pub async fn delete_stream(
        &self,
        name: &str,
        enforce_consumer_deletion: bool,
    ) -> Result<(), Error> {
        let name = self.known_stream(name).await?;
        self.meta_write(MetaCommand::DeleteStream {
            name,
            enforce_consumer_deletion,
        })
        .await
    }

    /// Stream names in order, a page at a time; `exclusive_start` or a token says where to resume.
    pub async fn list_streams(
        &self,
        limit_opt: Option<u32>,
        exclusive_start_opt: Option<&str>,
        next_token_opt: Option<&str>,
    ) -> Result<Page<String>, Error> {
        let limit = page_limit(
            limit_opt,
            DEFAULT_LIST_STREAMS_LIMIT,
            MAX_LIST_LIMIT,
            "limit",
        )?;
        let after_opt: Option<String> = match (next_token_opt, exclusive_start_opt) {
            (Some(token), _) => Some(NextToken::decode(token, now_ms())?.after),
            (None, Some(start)) => Some(start.to_string()),
            (None, None) => None,
        };
        self.catch_up_metadata().await;
        let names: Vec<String> = self.meta.read(|state| {
            state
                .streams
                .keys()
                .map(ToString::to_string)
                .filter(|name| after_opt.as_ref().is_none_or(|after| name > after))
                .take(limit + 1)
                .collect()
        });
        Ok(paginate(names, limit, "", |name| name.clone()))
    }

    /// DescribeStream: up to `limit_opt` (1..100, default 100) shards in id order after
    /// `exclusive_start_opt`.
    pub async fn describe_stream(
        &self,
        name: &str,
        limit_opt: Option<u32>,
        exclusive_start_opt: Option<&str>,
    ) -> Result<StreamDescription, Error> {
        let limit = page_limit(limit_opt, MAX_DESCRIBE_SHARDS, MAX_DESCRIBE_SHARDS, "limit")?;
        let after_opt: Option<ShardId> = exclusive_start_opt.map(str::parse).transpose()?;
        let name: StreamName = name.parse()?;
        let stream = self.stream_meta(&name).await?;
        let mut listed: Vec<&ShardMeta> = stream
            .shards
            .iter()
            .filter(|shard| after_opt.is_none_or(|after| shard.shard_id > after))
            .collect();
        listed.sort_by_key(|shard| shard.shard_id);
        let has_more_shards = listed.len() > limit;
        let shards = listed
            .into_iter()
            .take(limit)
            .map(|shard| self.describe_shard(shard))
            .collect();
        Ok(StreamDescription {
            name: stream.name,
            status: stream.status,
            retention_hours: stream.retention_hours,
            created_at_ms: stream.created_at_ms,
            shards,
            mode: stream.mode,
            has_more_shards,
            shard_level_metrics: stream.shard_level_metrics.into_iter().collect(),
            encryption_opt: stream.encryption_opt,
        })
    }

    fn describe_shard(&self, shard: &ShardMeta) -> ShardDescription {
        let local_opt = self.shard_group(shard.group);
        let leader_opt = match &local_opt {
            Some(local) => local.current_leader(),
            None => self
                .leader_hints
                .lock()
                .expect("leader hints lock poisoned")
                .get(&shard.group)
                .copied(),
        };
        ShardDescription {
            shard_id: shard.shard_id,
            hash_range: shard.hash_range,
            status: shard.status,
            parent_opt: shard.parent_opt,
            adjacent_parent_opt: shard.adjacent_parent_opt,
            replicas: shard
                .replicas
                .iter()
                .map(|id| ReplicaDescription {
                    node_id: *id,
                    az: self
                        .meta
                        .read(|state| state.nodes.get(id).map(|info| info.az.clone()))
                        .unwrap_or_default(),
                })
                .collect(),
            leader_opt,
            starting_sequence_number: SequenceNumber::shard_start(shard.shard_id),
            ending_sequence_number_opt: shard.ending_sequence_number_opt,
            latest_sequence_number_opt: local_opt.and_then(|local| *local.tip.borrow()),
        }
    }

    pub async fn describe_stream_summary(&self, name: &str) -> Result<StreamSummary, Error> {
        let name: StreamName = name.parse()?;
        let stream = self.stream_meta(&name).await?;
        Ok(StreamSummary {
            open_shard_count: stream.open_shard_count() as u32,
            consumer_count: stream.consumers.len() as u32,
            name: stream.name,
            status: stream.status,
            mode: stream.mode,
            retention_hours: stream.retention_hours,
            created_at_ms: stream.created_at_ms,
            shard_level_metrics: stream.shard_level_metrics.into_iter().collect(),
            encryption_opt: stream.encryption_opt,
        })
    }

    /// DescribeLimits: what this cluster holds now (it has no account-wide quotas).
    pub async fn describe_limits(&self) -> Limits {
        self.catch_up_metadata().await;
        self.meta.read(|state| Limits {
            open_shard_count: state
                .streams
                .values()
                .map(|stream| stream.open_shard_count() as u32)
                .sum(),
            on_demand_stream_count: state
                .streams
                .values()
                .filter(|stream| stream.mode == StreamMode::OnDemand)
                .count() as u32,
        })
    }

    /// Enable/DisableEnhancedMonitoring: records the stream's shard-level metrics (`ALL` stands
    /// for every one). Tributary exports its per-shard metrics whatever is set here.
    pub async fn update_shard_level_metrics(
        &self,
        name: &str,
        metrics: &[String],
        enable: bool,
    ) -> Result<ShardLevelMetricsChange, Error> {
        let name: StreamName = name.parse()?;
        if metrics.is_empty() || metrics.len() > SHARD_LEVEL_METRICS.len() {
            return Err(Error::invalid_argument(format!(
                "Value at 'shardLevelMetrics' failed to satisfy constraint: Member must have between 1 and {} items",
                SHARD_LEVEL_METRICS.len()
            )));
        }
        let mut named = std::collections::BTreeSet::new();
        for metric in metrics {
            match metric.as_str() {
                "ALL" => named.extend(SHARD_LEVEL_METRICS.iter().map(|m| m.to_string())),
                known if SHARD_LEVEL_METRICS.contains(&known) => {
                    named.insert(known.to_string());
                }
                other => {
                    return Err(Error::invalid_argument(format!(
                        "Value '{other}' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy enum value set: [{}, ALL]",
                        SHARD_LEVEL_METRICS.join(", ")
                    )));
                }
            }
        }
        let stream = self.stream_meta(&name).await?;
        let current: Vec<String> = stream.shard_level_metrics.iter().cloned().collect();
        let desired: Vec<String> = if enable {
            stream.shard_level_metrics.union(&named).cloned().collect()
        } else {
            stream
                .shard_level_metrics
                .difference(&named)
                .cloned()
                .collect()
        };
        self.meta_write(MetaCommand::SetShardLevelMetrics {
            name: name.clone(),
            metrics: desired.clone(),
        })
        .await?;
        Ok(ShardLevelMetricsChange {
            stream: name,
            current,
            desired,
        })
    }

    /// The trim horizon of a stream now: records (and closed shards) older than this are gone.
    pub(crate) fn trim_horizon_ms(&self, stream: &StreamMeta) -> u64 {
        now_ms().saturating_sub(u64::from(stream.retention_hours) * self.config.retention_hour_ms)
    }

    pub async fn list_shards(
        &self,
        request: ListShardsRequest,
    ) -> Result<Page<ShardDescription>, Error> {
        let limit = page_limit(
            request.max_results_opt,
            DEFAULT_LIST_SHARDS_LIMIT,
            MAX_LIST_LIMIT,
            "maxResults",
        )?;
        let (stream_name, after_opt): (StreamName, Option<ShardId>) =
            match (&request.stream_opt, &request.next_token_opt) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_argument(
                        "NextToken and StreamName cannot be provided together",
                    ));
                }
                (None, None) => {
                    return Err(Error::invalid_argument(
                        "Either NextToken or StreamName should be provided",
                    ));
                }
                (None, Some(token)) => {
                    let token = NextToken::decode(token, now_ms())?;
                    (token.scope.parse()?, Some(token.after.parse()?))
                }
                (Some(name), None) => {
                    let after_opt = match &request.exclusive_start_shard_id_opt {
                        Some(id) => Some(id.parse()?),
                        None => None,
                    };
                    (name.parse()?, after_opt)
                }
            };
        let stream = self.stream_meta(&stream_name).await?;
        let filter = request.filter_opt.unwrap_or(ShardFilter::FromTrimHorizon);
        let horizon = self.trim_horizon_ms(&stream);
        let shards: Vec<&ShardMeta> = filter_shards(&stream, filter, horizon)
            .into_iter()
            .filter(|shard| after_opt.is_none_or(|after| shard.shard_id > after))
            .take(limit + 1)
            .collect();
        let page = paginate(shards, limit, stream_name.as_str(), |shard| {
            shard.shard_id.to_string()
        });
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|shard| self.describe_shard(shard))
                .collect(),
            next_token_opt: page.next_token_opt,
        })
    }

    pub async fn update_retention(
        &self,
        name: &str,
        hours: u32,
        change: RetentionChange,
    ) -> Result<(), Error> {
        let name = self.known_stream(name).await?;
        self.meta_write(MetaCommand::UpdateRetention {
            name,
            hours,
            change,
        })
        .await
    }

    pub async fn split_shard(
        &self,
        name: &str,
        shard: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        let shard: ShardId = shard.parse()?;
        let new_starting_hash_key = tributary_types::HashKey::parse_explicit(new_starting_hash_key)
            .map_err(|e| Error::invalid_argument(format!("NewStartingHashKey: {}", e.message)))?
            .0;
        self.stream_meta(&name).await?;
        let down_nodes = self.unreachable_nodes().await;
        self.meta_write(MetaCommand::SplitShard {
            name,
            shard,
            new_starting_hash_key,
            at_ms: now_ms(),
            down_nodes,
            by_scaler: false,
        })
        .await
    }

    pub async fn merge_shards(
        &self,
        name: &str,
        shard: &str,
        adjacent_shard: &str,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        let shard: ShardId = shard.parse()?;
        let adjacent_shard: ShardId = adjacent_shard.parse()?;
        self.stream_meta(&name).await?;
        let down_nodes = self.unreachable_nodes().await;
        self.meta_write(MetaCommand::MergeShards {
            name,
            shard,
            adjacent_shard,
            at_ms: now_ms(),
            down_nodes,
            by_scaler: false,
        })
        .await
    }

    /// UpdateShardCount (UNIFORM_SCALING); returns the open shard count before the change.
    pub async fn update_shard_count(
        &self,
        name: &str,
        target: u32,
        scaling_type_opt: Option<&str>,
    ) -> Result<u32, Error> {
        if let Some(other) = scaling_type_opt.filter(|t| *t != "UNIFORM_SCALING") {
            return Err(Error::invalid_argument(format!(
                "Value '{other}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]"
            )));
        }
        let name: StreamName = name.parse()?;
        let current = self.stream_meta(&name).await?.open_shard_count() as u32;
        let down_nodes = self.unreachable_nodes().await;
        self.meta_write(MetaCommand::UpdateShardCount {
            name,
            target,
            at_ms: now_ms(),
            down_nodes,
        })
        .await?;
        Ok(current)
    }

    pub async fn update_stream_mode(&self, name: &str, mode: &str) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        let mode: StreamMode = mode.parse()?;
        self.stream_meta(&name).await?;
        self.meta_write(MetaCommand::UpdateStreamMode { name, mode })
            .await
    }

    pub async fn add_tags(&self, name: &str, tags: Vec<(String, String)>) -> Result<(), Error> {
        let name = self.known_stream(name).await?;
        self.meta_write(MetaCommand::AddTags { name, tags }).await
    }

    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<(), Error> {
        let name = self.known_stream(name).await?;
        self.meta_write(MetaCommand::RemoveTags { name, keys })
            .await
    }

    /// Tags in key order after `exclusive_start_opt`; the flag says whether more follow.
    pub async fn list_tags(
        &self,
        name: &str,
        exclusive_start_opt: Option<&str>,
        limit_opt: Option<u32>,
    ) -> Result<(Vec<(String, String)>, bool), Error> {
        let limit = page_limit(limit_opt, MAX_LIST_TAGS_LIMIT, MAX_LIST_TAGS_LIMIT, "limit")?;
        let name: StreamName = name.parse()?;
        let stream = self.stream_meta(&name).await?;
        let mut tags: Vec<(String, String)> = stream
            .tags
            .into_iter()
            .filter(|(key, _)| exclusive_start_opt.is_none_or(|start| key.as_str() > start))
            .take(limit + 1)
            .collect();
        let has_more = tags.len() > limit;
        tags.truncate(limit);
        Ok((tags, has_more))
    }

    pub async fn register_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<ConsumerDescription, Error> {
        let name: StreamName = stream.parse()?;
        let consumer: ConsumerName = consumer.parse()?;
        self.stream_meta(&name).await?;
        self.meta_write(MetaCommand::RegisterConsumer {
            name: name.clone(),
            consumer: consumer.clone(),
            created_at_ms: now_ms(),
        })
        .await?;
        self.describe_consumer(stream, consumer.as_str()).await
    }

    pub async fn deregister_consumer(&self, stream: &str, consumer: &str) -> Result<(), Error> {
        let name: StreamName = stream.parse()?;
        let consumer: ConsumerName = consumer.parse()?;
        self.stream_meta(&name).await?;
        self.meta_write(MetaCommand::DeregisterConsumer { name, consumer })
            .await
    }

    pub async fn describe_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<ConsumerDescription, Error> {
        let name: StreamName = stream.parse()?;
        let consumer: ConsumerName = consumer.parse()?;
        let meta = self.stream_meta(&name).await?;
        let registered = meta.consumers.get(&consumer).ok_or_else(|| {
            Error::not_found(format!("Consumer {consumer} of stream {name} not found."))
        })?;
        Ok(ConsumerDescription {
            stream: name,
            created_at_ms: registered.created_at_ms,
            name: consumer,
        })
    }

    pub async fn list_consumers(&self, stream: &str) -> Result<Vec<ConsumerDescription>, Error> {
        let name: StreamName = stream.parse()?;
        let meta = self.stream_meta(&name).await?;
        Ok(meta
            .consumers
            .into_iter()
            .map(|(consumer, registered)| ConsumerDescription {
                stream: name.clone(),
                name: consumer,
                created_at_ms: registered.created_at_ms,
            })
            .collect())
    }
}

/// Cuts `items` (fetched with one extra) to `limit` and issues a token when more follow.
fn paginate<T>(
    mut items: Vec<T>,
    limit: usize,
    scope: &str,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_token_opt = match (more, items.last()) {
        (true, Some(last)) => Some(
            NextToken {
                scope: scope.to_string(),
                after: key(last),
                issued_at_ms: now_ms(),
            }
            .encode(),
        ),
        _ => None,
    };
    Page {
        items,
        next_token_opt,
    }
}

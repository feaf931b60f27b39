//! Control-plane operations: cluster status and the stream catalogue. Writes go through the
//! metadata group; reads come from this node's replica of it.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tributary_proto::v1::PingRequest;
use tributary_raft::meta::MetaCommand;
use tributary_types::{DEFAULT_RETENTION_HOURS, Error, NodeId, SequenceNumber, StreamName};

use crate::api::{
    ClusterStatus, NodeStatus, ReplicaDescription, ShardDescription, StreamDescription,
};
use crate::meta::state::validate_create;
use crate::node::Node;
use crate::now_ms;

/// How long `cluster status` waits for a node to answer a ping before calling it dead.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

impl Node {
    pub async fn cluster_status(&self) -> ClusterStatus {
        self.catch_up_metadata().await;
        let nodes = self.meta.read(|state| state.nodes.clone());
        let pings = nodes.iter().map(|(id, info)| async move {
            let alive = *id == self.id() || self.ping(&info.address).await;
            NodeStatus {
                id: *id,
                az: info.az.clone(),
                address: info.address.clone(),
                alive,
            }
        });
        let nodes = futures::future::join_all(pings).await;
        ClusterStatus {
            nodes,
            metadata_leader_opt: self.meta_raft.metrics().borrow_watched().current_leader,
            answered_by: self.id(),
        }
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

    async fn ping(&self, address: &str) -> bool {
        let Ok(mut client) = self.public_client(address) else {
            return false;
        };
        matches!(
            tokio::time::timeout(PING_TIMEOUT, client.ping(PingRequest {})).await,
            Ok(Ok(_))
        )
    }

    pub async fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
        retention_hours_opt: Option<u32>,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        let retention_hours = retention_hours_opt.unwrap_or(DEFAULT_RETENTION_HOURS);
        validate_create(shard_count, retention_hours)?;
        if self.meta.read(|state| state.streams.contains_key(&name)) {
            return Err(Error::new(
                tributary_types::ErrorCode::ResourceInUse,
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
        })
        .await
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        self.stream_meta(&name).await?;
        self.meta_write(MetaCommand::DeleteStream { name }).await
    }

    pub async fn list_streams(&self) -> Vec<String> {
        self.catch_up_metadata().await;
        self.meta
            .read(|state| state.streams.keys().map(ToString::to_string).collect())
    }

    pub async fn describe_stream(&self, name: &str) -> Result<StreamDescription, Error> {
        let name: StreamName = name.parse()?;
        let stream = self.stream_meta(&name).await?;
        let nodes = self.meta.read(|state| state.nodes.clone());
        let shards = stream
            .shards
            .iter()
            .map(|shard| {
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
                            az: nodes
                                .get(id)
                                .map(|info| info.az.clone())
                                .unwrap_or_default(),
                        })
                        .collect(),
                    leader_opt,
                    starting_sequence_number: SequenceNumber::shard_start(shard.shard_id),
                    ending_sequence_number_opt: shard.ending_sequence_number_opt,
                    latest_sequence_number_opt: local_opt.and_then(|local| *local.tip.borrow()),
                }
            })
            .collect();
        Ok(StreamDescription {
            name: stream.name,
            status: stream.status,
            retention_hours: stream.retention_hours,
            created_at_ms: stream.created_at_ms,
            shards,
        })
    }
}

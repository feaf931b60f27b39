//! The node-to-node service: Raft messages for any group, and writes forwarded to a leader.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use openraft::{BasicNode, Raft, RaftTypeConfig, Snapshot};
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tributary_proto::internal::internal_server::Internal;
use tributary_proto::internal::*;
use tributary_raft::codec;
use tributary_raft::meta::MetaCommand;
use tributary_raft::shard::ShardCommand;
use tributary_types::{Error, GroupId, METADATA_GROUP, NodeId};

use crate::node::Node;
use crate::writes::{Attempt, not_leader, propose};

pub struct InternalService {
    pub node: Arc<Node>,
}

type RemoteResult<T> = Result<T, String>;

/// Decodes one Raft message for group type `C`, hands it to the group and encodes the answer.
async fn dispatch<C, SM>(
    raft: &Raft<C, SM>,
    kind: RaftKind,
    payload: &[u8],
) -> Result<Vec<u8>, String>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    SM: RaftStateMachine<C, SnapshotData = Cursor<Vec<u8>>>,
{
    match kind {
        RaftKind::AppendEntries => {
            let result: RemoteResult<_> = raft
                .append_entries(codec::decode(payload)?)
                .await
                .map_err(|e| e.to_string());
            codec::encode(&result)
        }
        RaftKind::Vote => {
            let result: RemoteResult<_> = raft
                .vote(codec::decode(payload)?)
                .await
                .map_err(|e| e.to_string());
            codec::encode(&result)
        }
        RaftKind::PreVote => {
            let result: RemoteResult<_> = raft
                .pre_vote(codec::decode(payload)?)
                .await
                .map_err(|e| e.to_string());
            codec::encode(&result)
        }
        RaftKind::FullSnapshot => {
            let (vote, meta, data): (VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>) =
                codec::decode(payload)?;
            let snapshot = Snapshot {
                meta,
                snapshot: Cursor::new(data),
            };
            let result: RemoteResult<_> = raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| e.to_string());
            codec::encode(&result)
        }
        RaftKind::TransferLeader => {
            let result: RemoteResult<_> = raft
                .handle_transfer_leader(codec::decode(payload)?)
                .await
                .map_err(|e| e.to_string());
            codec::encode(&result)
        }
        RaftKind::Unspecified => Err("unspecified Raft message kind".to_string()),
    }
}

fn deadline_from(timeout_ms: u64, default: Duration) -> Instant {
    let timeout = if timeout_ms == 0 {
        default
    } else {
        Duration::from_millis(timeout_ms).min(default)
    };
    Instant::now() + timeout
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn raft(&self, request: Request<RaftMessage>) -> Result<Response<RaftReply>, Status> {
        let message = request.into_inner();
        let kind = RaftKind::try_from(message.kind).unwrap_or(RaftKind::Unspecified);
        let group = GroupId(message.group_id);
        let result = if group == METADATA_GROUP {
            dispatch(&self.node.meta_raft, kind, &message.payload).await
        } else {
            match self.node.shard_group(group) {
                Some(shard) => dispatch(&shard.raft, kind, &message.payload).await,
                None => Err(format!(
                    "node {} does not run group {group} (yet)",
                    self.node.id()
                )),
            }
        };
        // A message this node cannot handle is answered as an error payload, so the sender backs
        // off exactly as for an unreachable peer.
        let payload = match result {
            Ok(payload) => payload,
            Err(error) => {
                codec::encode::<RemoteResult<()>>(&Err(error)).map_err(Status::internal)?
            }
        };
        Ok(Response::new(RaftReply {
            payload: payload.into(),
        }))
    }

    async fn shard_write(
        &self,
        request: Request<ShardWriteRequest>,
    ) -> Result<Response<ShardWriteReply>, Status> {
        let request = request.into_inner();
        let deadline = deadline_from(request.timeout_ms, self.node.config.write_timeout);
        let result = match (
            codec::decode::<ShardCommand>(&request.command),
            self.node.shard_group(GroupId(request.group_id)),
        ) {
            (Err(e), _) => Err(Error::invalid_argument(e)),
            (Ok(_), None) => Err(not_leader(
                &self.node,
                None,
                format!(
                    "node {} holds no replica of group {}",
                    self.node.id(),
                    request.group_id
                ),
            )),
            (Ok(ShardCommand::Trim { .. }), Some(_)) => Err(Error::invalid_argument(
                "trims are proposed by a shard's leader, never forwarded",
            )),
            (Ok(command), Some(group)) => {
                match self
                    .node
                    .propose_shard_local(&group, command, deadline)
                    .await
                {
                    Attempt::Done(result) => result,
                    Attempt::Retry { leader_opt, why } => {
                        Err(not_leader(&self.node, leader_opt, why))
                    }
                }
            }
        };
        let response = codec::encode(&result).map_err(Status::internal)?;
        Ok(Response::new(ShardWriteReply {
            response: response.into(),
        }))
    }

    async fn meta_write(
        &self,
        request: Request<MetaWriteRequest>,
    ) -> Result<Response<MetaWriteReply>, Status> {
        let request = request.into_inner();
        let deadline = deadline_from(request.timeout_ms, self.node.config.admin_timeout);
        let result = match codec::decode::<MetaCommand>(&request.command) {
            Err(e) => Err(Error::invalid_argument(e)),
            Ok(command) => match propose(
                &self.node.meta_raft,
                command,
                deadline,
                "the metadata group",
            )
            .await
            {
                Attempt::Done(result) => result,
                Attempt::Retry { leader_opt, why } => Err(not_leader(&self.node, leader_opt, why)),
            },
        };
        let response = codec::encode(&result).map_err(Status::internal)?;
        Ok(Response::new(MetaWriteReply {
            response: response.into(),
        }))
    }

    async fn meta_read_index(
        &self,
        _: Request<MetaReadIndexRequest>,
    ) -> Result<Response<MetaReadIndexReply>, Status> {
        let result = self.node.metadata_read_index().await;
        let response = codec::encode(&result).map_err(Status::internal)?;
        Ok(Response::new(MetaReadIndexReply {
            response: response.into(),
        }))
    }

    async fn group_leader(
        &self,
        request: Request<GroupLeaderRequest>,
    ) -> Result<Response<GroupLeaderReply>, Status> {
        let group = GroupId(request.into_inner().group_id);
        let Some(local) = self.node.shard_group(group) else {
            return Ok(Response::new(GroupLeaderReply::default()));
        };
        let leader = local.current_leader();
        let load = crate::autoscale::local_load(&self.node, &local).map(|load| ShardLoad {
            min_utilization: load.min,
            max_utilization: load.max,
        });
        Ok(Response::new(GroupLeaderReply { leader, load }))
    }
}

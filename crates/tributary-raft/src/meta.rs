//! The metadata group's type config and commands. Group 0 replicates the node list and the
//! stream catalogue; its state machine lives in tributary-server.

use std::fmt;

use serde::{Deserialize, Serialize};
use tributary_types::{Error, NodeId, StreamName};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaCommand {
    /// A node announces its AZ and address (idempotent; re-sent on every start).
    RegisterNode {
        node_id: NodeId,
        az: String,
        address: String,
    },
    /// Placement is computed when the command is applied, from the replicated node list and the
    /// nodes the proposer found unreachable (carried in the command), so every replica computes
    /// the same one.
    CreateStream {
        name: StreamName,
        shard_count: u32,
        retention_hours: u32,
        created_at_ms: u64,
        down_nodes: Vec<NodeId>,
    },
    DeleteStream {
        name: StreamName,
    },
}

impl fmt::Display for MetaCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaCommand::RegisterNode { node_id, az, .. } => {
                write!(f, "register-node({node_id}, {az})")
            }
            MetaCommand::CreateStream {
                name, shard_count, ..
            } => write!(f, "create-stream({name}, {shard_count})"),
            MetaCommand::DeleteStream { name } => write!(f, "delete-stream({name})"),
        }
    }
}

/// The outcome of applying a command: rule violations found at apply time (a duplicate name, too
/// few AZs) come back as typed errors, never as a failed Raft write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetaResponse {
    pub result: Option<Result<(), Error>>,
}

openraft::declare_raft_types!(
    /// The metadata group (group 0).
    pub MetaTypeConfig:
        D = MetaCommand,
        R = MetaResponse,
);

//! The metadata group's type config and commands. Group 0 replicates the node list and the
//! stream catalogue; its state machine lives in tributary-server.

use std::fmt;

use serde::{Deserialize, Serialize};
use tributary_types::table::{Condition, Item, Update};
use tributary_types::{
    ConsumerName, Error, NodeId, SequenceNumber, ShardId, StreamMode, StreamName,
};

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
        mode: StreamMode,
        tags: Vec<(String, String)>,
    },
    /// Moves the stream to DELETING: its shard groups stop and their data is removed on every
    /// replica; the stream driver then drops the entry.
    DeleteStream {
        name: StreamName,
        enforce_consumer_deletion: bool,
    },
    /// Drops a DELETING stream from the catalogue (stream driver).
    RemoveStream {
        name: StreamName,
    },
    /// CREATING or UPDATING → ACTIVE once every open shard has a leader (stream driver).
    ActivateStream {
        name: StreamName,
    },
    UpdateRetention {
        name: StreamName,
        hours: u32,
        change: RetentionChange,
    },
    AddTags {
        name: StreamName,
        tags: Vec<(String, String)>,
    },
    RemoveTags {
        name: StreamName,
        keys: Vec<String>,
    },
    /// Enhanced monitoring: the full set of shard-level metrics enabled on the stream after an
    /// Enable/DisableEnhancedMonitoring call (recorded and reported; Tributary's own per-shard
    /// metrics are always exported).
    SetShardLevelMetrics {
        name: StreamName,
        metrics: Vec<String>,
    },
    RegisterConsumer {
        name: StreamName,
        consumer: ConsumerName,
        created_at_ms: u64,
    },
    DeregisterConsumer {
        name: StreamName,
        consumer: ConsumerName,
    },
    UpdateStreamMode {
        name: StreamName,
        mode: StreamMode,
    },
    /// Resharding: parents close and children open at apply; placement as for CreateStream.
    SplitShard {
        name: StreamName,
        shard: ShardId,
        new_starting_hash_key: u128,
        at_ms: u64,
        down_nodes: Vec<NodeId>,
        /// Issued by the on-demand scaler (users reshard PROVISIONED streams only).
        by_scaler: bool,
    },
    MergeShards {
        name: StreamName,
        shard: ShardId,
        adjacent_shard: ShardId,
        at_ms: u64,
        down_nodes: Vec<NodeId>,
        by_scaler: bool,
    },
    UpdateShardCount {
        name: StreamName,
        target: u32,
        at_ms: u64,
        down_nodes: Vec<NodeId>,
    },
    /// A closed shard's group refuses further puts; this is its last sequence number (stream
    /// driver).
    SealShard {
        name: StreamName,
        shard: ShardId,
        ending: SequenceNumber,
    },
    /// Drops closed shards whose every record has expired; their replicas then stop their
    /// groups and remove what is left (stream driver).
    ExpireShards {
        name: StreamName,
        shards: Vec<ShardId>,
    },
    /// An operator decommissions a node (`cluster remove-node`): no new replica is placed on it,
    /// its replicas move to other nodes, then it leaves the catalogue.
    RemoveNode {
        node_id: NodeId,
    },
    /// One replica of a shard starts moving from `from` to `to` (removal driver, on the metadata
    /// leader). `to` replicates the group as a learner until the shard's leader promotes it.
    StartMove {
        name: StreamName,
        shard: ShardId,
        from: NodeId,
        to: NodeId,
        at_ms: u64,
    },
    /// The shard's group has `to` as a voter and no longer `from` (the shard's leader).
    FinishMove {
        name: StreamName,
        shard: ShardId,
        from: NodeId,
        to: NodeId,
    },
    /// A removed node that holds nothing any more leaves the catalogue; its id is never taken
    /// again (removal driver).
    ForgetNode {
        node_id: NodeId,
    },
    /// Lease tables (conditions are evaluated at apply, so conditional writes are linearizable).
    Table(TableCommand),
    /// Users, access keys and policies (`--auth required`).
    Auth(AuthCommand),
    /// Start/StopStreamEncryption: later puts are sealed with this key (or, for `None`, stored in
    /// clear). The stream goes UPDATING until the stream driver activates it again.
    SetStreamEncryption {
        name: StreamName,
        encryption_opt: Option<StreamEncryption>,
        at_ms: u64,
    },
}

/// How a stream's new records are sealed: the KeyId as the caller gave it (reported back as
/// Kinesis does) and the key ring's key it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEncryption {
    pub key_id: String,
    pub key: String,
}

/// Changes to users and policies. Secrets arrive sealed with the key ring (opaque bytes here):
/// the Raft log, snapshots and the catalogue never hold one in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AuthCommand {
    CreateUser {
        user: String,
        access_key_id: String,
        sealed_secret: Vec<u8>,
        at_ms: u64,
    },
    DeleteUser {
        user: String,
    },
    /// Creates or replaces a policy; the document was validated by the proposer.
    PutPolicy {
        policy: String,
        document: String,
        at_ms: u64,
    },
    DeletePolicy {
        policy: String,
    },
    AttachPolicy {
        user: String,
        policy: String,
    },
    DetachPolicy {
        user: String,
        policy: String,
    },
    /// `--admin-key-file`: makes the user `admin` with this key and the AdministratorAccess
    /// policy, unless a user `admin` exists (then nothing changes). Every node sends it at
    /// start; the first one applied wins.
    BootstrapAdmin {
        access_key_id: String,
        sealed_secret: Vec<u8>,
        at_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TableCommand {
    CreateTable {
        table: String,
        key_attribute: String,
        created_at_ms: u64,
    },
    DeleteTable {
        table: String,
    },
    PutItem {
        table: String,
        item: Item,
        condition: Option<Condition>,
    },
    UpdateItem {
        table: String,
        key: String,
        updates: Vec<Update>,
        condition: Option<Condition>,
    },
    DeleteItem {
        table: String,
        key: String,
        condition: Option<Condition>,
    },
}

/// Kinesis has two calls, and each refuses a change in the other direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionChange {
    Increase,
    Decrease,
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
            MetaCommand::DeleteStream { name, .. } => write!(f, "delete-stream({name})"),
            MetaCommand::RemoveStream { name } => write!(f, "remove-stream({name})"),
            MetaCommand::ActivateStream { name } => write!(f, "activate-stream({name})"),
            MetaCommand::UpdateRetention { name, hours, .. } => {
                write!(f, "update-retention({name}, {hours}h)")
            }
            MetaCommand::AddTags { name, tags } => write!(f, "add-tags({name}, {})", tags.len()),
            MetaCommand::SetShardLevelMetrics { name, metrics } => {
                write!(f, "set-shard-level-metrics({name}, {})", metrics.join(","))
            }
            MetaCommand::RemoveTags { name, keys } => {
                write!(f, "remove-tags({name}, {})", keys.len())
            }
            MetaCommand::RegisterConsumer { name, consumer, .. } => {
                write!(f, "register-consumer({name}, {consumer})")
            }
            MetaCommand::DeregisterConsumer { name, consumer } => {
                write!(f, "deregister-consumer({name}, {consumer})")
            }
            MetaCommand::UpdateStreamMode { name, mode } => {
                write!(f, "update-stream-mode({name}, {mode})")
            }
            MetaCommand::SplitShard { name, shard, .. } => {
                write!(f, "split-shard({name}, {shard})")
            }
            MetaCommand::MergeShards {
                name,
                shard,
                adjacent_shard,
                ..
            } => write!(f, "merge-shards({name}, {shard}, {adjacent_shard})"),
            MetaCommand::UpdateShardCount { name, target, .. } => {
                write!(f, "update-shard-count({name}, {target})")
            }
            MetaCommand::SealShard { name, shard, .. } => write!(f, "seal-shard({name}, {shard})"),
            MetaCommand::RemoveNode { node_id } => write!(f, "remove-node({node_id})"),
            MetaCommand::StartMove {
                name,
                shard,
                from,
                to,
                ..
            } => write!(f, "start-move({name}, {shard}, {from} -> {to})"),
            MetaCommand::FinishMove {
                name,
                shard,
                from,
                to,
            } => write!(f, "finish-move({name}, {shard}, {from} -> {to})"),
            MetaCommand::ForgetNode { node_id } => write!(f, "forget-node({node_id})"),
            MetaCommand::SetStreamEncryption {
                name,
                encryption_opt,
                ..
            } => match encryption_opt {
                Some(encryption) => {
                    write!(f, "start-stream-encryption({name}, {})", encryption.key)
                }
                None => write!(f, "stop-stream-encryption({name})"),
            },
            MetaCommand::Table(command) => match command {
                TableCommand::CreateTable { table, .. } => write!(f, "create-table({table})"),
                TableCommand::DeleteTable { table } => write!(f, "delete-table({table})"),
                TableCommand::PutItem { table, .. } => write!(f, "put-item({table})"),
                TableCommand::UpdateItem { table, key, .. } => {
                    write!(f, "update-item({table}, {key})")
                }
                TableCommand::DeleteItem { table, key, .. } => {
                    write!(f, "delete-item({table}, {key})")
                }
            },
            MetaCommand::ExpireShards { name, shards } => {
                write!(f, "expire-shards({name}, {})", shards.len())
            }
            // Names only: never a sealed secret.
            MetaCommand::Auth(command) => match command {
                AuthCommand::CreateUser {
                    user,
                    access_key_id,
                    ..
                } => write!(f, "create-user({user}, {access_key_id})"),
                AuthCommand::DeleteUser { user } => write!(f, "delete-user({user})"),
                AuthCommand::PutPolicy { policy, .. } => write!(f, "put-policy({policy})"),
                AuthCommand::DeletePolicy { policy } => write!(f, "delete-policy({policy})"),
                AuthCommand::AttachPolicy { user, policy } => {
                    write!(f, "attach-policy({policy}, {user})")
                }
                AuthCommand::DetachPolicy { user, policy } => {
                    write!(f, "detach-policy({policy}, {user})")
                }
                AuthCommand::BootstrapAdmin { access_key_id, .. } => {
                    write!(f, "bootstrap-admin({access_key_id})")
                }
            },
        }
    }
}

/// The outcome of applying a command: rule violations found at apply time (a duplicate name, too
/// few AZs) come back as typed errors, never as a failed Raft write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetaResponse {
    pub result: Option<Result<(), Error>>,
    /// For UpdateItem: the item after the update.
    pub item_opt: Option<Item>,
}

openraft::declare_raft_types!(
    /// The metadata group (group 0).
    pub MetaTypeConfig:
        D = MetaCommand,
        R = MetaResponse,
);

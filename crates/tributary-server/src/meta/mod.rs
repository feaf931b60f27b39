//! The metadata group (group 0): the node list and the stream catalogue, replicated on every node.

pub mod auth;
pub mod listing;
mod machine;
pub mod moves;
pub mod placement;
mod reshard;
pub mod state;
pub mod tables;

pub use machine::{MetaMachine, MetaView};
pub use state::{
    ConsumerMeta, MetaState, NodeInfo, ReplicaMove, ShardMeta, ShardStatus, StreamMeta,
    StreamStatus,
};

pub type MetaRaft = openraft::Raft<tributary_raft::meta::MetaTypeConfig, MetaMachine>;

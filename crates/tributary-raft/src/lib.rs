//! Raft plumbing: one concrete openraft type config per group kind (metadata, shard), the commands
//! each group replicates, Raft tuning, and the transport that carries every group's RPCs over one
//! gRPC channel per peer node.

pub mod codec;
pub mod config;
pub mod meta;
pub mod network;
pub mod shard;

pub use network::{NetworkFactory, PeerRouter};

//! Shard groups: the state machine that turns committed put batches into numbered records, and
//! reads of those records.

#[cfg(test)]
mod conformance;
mod machine;
mod producers;
pub mod records;

pub use machine::{ShardMachine, ShardTip};

pub type ShardRaft = openraft::Raft<tributary_raft::shard::ShardTypeConfig, ShardMachine>;

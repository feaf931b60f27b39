//! Storage for a node: one RocksDB shared by all Raft groups.
//!
//! Column families (every key starts with the big-endian group id, so one group's data is one
//! contiguous range and byte order is numeric order):
//! - `raft_log`:   group | log index             → encoded openraft entry
//! - `raft_state`: group | tag                   → vote, last purged log id
//! - `sm`:         group | tag                   → applied log id + membership + state, one batch
//! - `records`:    group | sequence number (u128) → stored record
//!
//! Durability: log appends are written unsynced, then a single flusher thread syncs the WAL once
//! for every append queued meanwhile (group commit across all groups) before acknowledging them to
//! openraft. Votes, truncations and purges are synced writes before they return.

mod db;
mod flusher;
pub mod keys;
mod log_store;

pub use db::{CF_RAFT_LOG, CF_RAFT_STATE, CF_RECORDS, CF_SM, Store};
pub use log_store::LogStore;

/// Maps any displayable error into the `io::Error` openraft's storage traits speak.
pub fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

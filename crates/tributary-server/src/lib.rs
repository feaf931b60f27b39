//! A Tributary node.
//!
//! - [`meta`]: the metadata group (node list, stream catalogue, placement), replicated everywhere.
//! - [`shard`]: shard groups, whose state machine numbers and stores records.
//! - [`node`]: start-up, the shard-group reconciler, shutdown.
//! - [`writes`] / [`reads`]: the put path (route, forward to leaders, quorum deadlines) and the
//!   read path (iterators, reads from the leader or any replica).
//! - `lifecycle`: the stream driver (CREATING/UPDATING → ACTIVE, DELETING → gone).
//! - `moves`: node removal (replica moves through Raft membership changes).
//! - [`service`]: the domain API trait and the thin gRPC shims over it.
//! - [`kinesis`]: the Kinesis-compatible HTTP endpoint, another thin adapter over the same API.
//! - [`tls`]: TLS on both ports, mutual TLS between nodes, certificate reload.

pub mod admin;
pub mod api;
pub mod auth;
pub mod autoscale;
pub mod clients;
pub mod config;
pub mod encryption;
pub mod fanout;
mod groups;
mod http;
pub mod keyring;
pub mod kinesis;
mod lifecycle;
pub mod limits;
pub mod meta;
mod meta_sync;
pub mod meter;
mod moves;
pub mod node;
mod reads;
mod retention;
pub mod service;
pub mod shard;
mod sm_store;
pub mod tables;
mod telemetry;
pub mod tls;
mod writes;

pub use config::NodeConfig;
pub use node::Node;
/// The Kinesis wire protocol crate, for the CLI's flags.
pub use tributary_kinesis as kinesis_wire;
pub use writes::ProducerSequence;

/// Wall-clock milliseconds since the Unix epoch (arrival timestamps, iterator issue times).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! Real clusters for tests. [`Cluster`] runs `tributary node` processes on free loopback ports
//! with temporary data dirs; tests kill (SIGKILL), stop (SIGTERM) and restart nodes, wait on
//! conditions with [`wait_until`], and see every node's log when they fail. Processes die with
//! the cluster.

mod cluster;
mod wait;

pub use cluster::{Cluster, ClusterOptions, NodeHandle};
pub use wait::wait_until;

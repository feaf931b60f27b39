//! Real clusters for tests. [`Cluster`] runs `tributary node` processes on free loopback ports
//! with temporary data dirs; tests kill (SIGKILL), stop (SIGTERM) and restart nodes, wait on
//! conditions with [`wait_until`], and see every node's log when they fail. Processes die with
//! the cluster. [`ContainerCluster`] runs the same nodes as containers of a local image.
//! [`ClusterControl`] is the handle fault-injecting tests drive: kill, stop, start,
//! pause, resume, partition and heal.

mod cluster;
mod containers;
mod control;
mod wait;

pub use cluster::{
    ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY, Cluster, ClusterOptions, NodeHandle,
};
pub use containers::{ContainerCluster, ContainerOptions, docker_available};
pub use control::ClusterControl;
pub use wait::wait_until;

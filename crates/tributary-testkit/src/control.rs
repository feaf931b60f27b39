//! What a fault-injecting test needs from a cluster, whichever way its nodes run: the process
//! [`Cluster`](crate::Cluster) and the container cluster offer the same handle.

use std::time::Duration;

use tributary_client::{Client, ClientOptions};

use crate::wait::wait_until;

/// Node ids are 1-based; every method fails with a message naming the node when the operation
/// does not apply (killing a node that is not running, say).
// Not `Send`-bounded futures: a test drives its cluster from one task.
#[allow(async_fn_in_trait)]
pub trait ClusterControl {
    /// Every node's id, in order.
    fn node_ids(&self) -> Vec<u64>;
    /// The availability zone node `id` runs in.
    fn az_of(&self, id: u64) -> String;
    /// The gRPC endpoint clients use for node `id` (reachable from the test's host).
    fn endpoint_of(&self, id: u64) -> String;
    /// Whether node `id` runs and is not frozen.
    fn is_up(&self, id: u64) -> bool;
    /// The last lines of every node's log, for failure reports.
    fn logs(&self) -> String;

    /// How clients connect: TLS with the cluster's CA when the cluster serves TLS.
    fn client_options(&self) -> ClientOptions {
        ClientOptions::default()
    }

    /// A client that fails over between every node.
    fn client(&self) -> Client {
        let endpoints: Vec<String> = self
            .node_ids()
            .into_iter()
            .map(|id| self.endpoint_of(id))
            .collect();
        Client::with_options(&endpoints, &self.client_options()).expect("valid endpoints")
    }

    /// A client that talks to node `id` only.
    fn client_of(&self, id: u64) -> Client {
        Client::with_options(&[self.endpoint_of(id)], &self.client_options())
            .expect("valid endpoint")
    }

    /// The nodes in `az`.
    fn nodes_in(&self, az: &str) -> Vec<u64> {
        self.node_ids()
            .into_iter()
            .filter(|id| self.az_of(*id) == az)
            .collect()
    }

    /// Every AZ, in order.
    fn azs(&self) -> Vec<String> {
        let mut azs: Vec<String> = self
            .node_ids()
            .into_iter()
            .map(|id| self.az_of(id))
            .collect();
        azs.sort();
        azs.dedup();
        azs
    }

    /// Dies at once (SIGKILL), as in a crash; its data stays.
    async fn kill(&mut self, id: u64) -> anyhow::Result<()>;
    /// Stops cleanly (SIGTERM).
    async fn stop(&mut self, id: u64) -> anyhow::Result<()>;
    /// Starts a killed or stopped node again with its data.
    async fn start(&mut self, id: u64) -> anyhow::Result<()>;
    /// Freezes the node: connections stay open, nothing answers.
    async fn pause(&mut self, id: u64) -> anyhow::Result<()>;
    /// Unfreezes a paused node.
    async fn resume(&mut self, id: u64) -> anyhow::Result<()>;
    /// Cuts the nodes in `side` off from the others (on top of earlier partitions).
    async fn partition(&mut self, side: &[u64]) -> anyhow::Result<()>;
    /// Ends every partition.
    async fn heal(&mut self) -> anyhow::Result<()>;
    /// Waits until every running node sees all nodes registered, the running ones alive.
    async fn wait_ready(&self) -> anyhow::Result<()>;
    /// Loses node `id` with its disk and brings up a new node in its AZ under a new id, joined
    /// to the cluster; returns the new id. `id` leaves [`ClusterControl::node_ids`].
    async fn replace(&mut self, id: u64) -> anyhow::Result<u64>;
}

/// Waits until each node in `running` sees every node of the cluster registered, the `running`
/// ones alive, and a metadata leader (each node is asked directly, so none is still catching up).
pub(crate) async fn wait_until_ready<C: ClusterControl + ?Sized>(
    cluster: &C,
    running: &[u64],
    timeout: Duration,
) -> anyhow::Result<()> {
    let total = cluster.node_ids().len();
    for &id in running {
        let client = cluster
            .client_of(id)
            .with_call_timeout(Duration::from_secs(2));
        let what =
            format!("node {id} to see every node registered and alive with a metadata leader");
        wait_until(timeout, &what, || {
            let client = client.clone();
            async move {
                let status = client.cluster_status().await.map_err(|e| e.to_string())?;
                let alive = |id: u64| status.nodes.iter().any(|n| n.id == id && n.alive);
                if status.metadata_leader.is_some()
                    && status.nodes.len() == total
                    && running.iter().all(|id| alive(*id))
                {
                    Ok(())
                } else {
                    Err(format!("{status:?}"))
                }
            }
        })
        .await?;
    }
    Ok(())
}

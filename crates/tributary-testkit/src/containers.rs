//! A cluster of node containers (testcontainers, a local image, nothing pulled), driven through
//! the same [`ClusterControl`] handle as the process cluster.
//!
//! Each container sits on Docker's default bridge, where its gRPC and HTTP ports are published
//! on free host ports (fixed for its life, so a restarted node keeps its address), and on a
//! cluster network where peers find it as `node<N>`. A partition moves nodes onto separate
//! networks: peers on different networks cannot reach each other (Docker isolates bridge
//! networks), while clients on the host still reach every node, as in Jepsen's partitions.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use testcontainers::bollard::query_parameters::KillContainerOptionsBuilder;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::{ContainerPort, IntoContainerPort};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::cluster::free_port;
use crate::control::{ClusterControl, wait_until_ready};

/// The gRPC and HTTP ports inside every container.
const GRPC_PORT: u16 = 7100;
const HTTP_PORT: u16 = 7200;
/// How long a container may take to stop after SIGTERM before Docker kills it.
const STOP_TIMEOUT_S: i32 = 20;
/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: &str = "150";

/// Tells clusters of one test process apart.
static CLUSTER_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// The node image, e.g. `tributary:dev` from `cluster/build-image.sh`.
    pub image: String,
    pub nodes: u64,
    pub azs: u64,
    /// How many of the first nodes are initial metadata voters (all when `None`).
    pub metadata_voters_opt: Option<u64>,
    /// Extra `tributary node` flags for every node.
    pub node_args: Vec<String>,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        ContainerOptions {
            image: "tributary:dev".to_string(),
            nodes: 3,
            azs: 3,
            metadata_voters_opt: None,
            node_args: Vec::new(),
        }
    }
}

struct ContainerNode {
    id: u64,
    az: String,
    container: ContainerAsync<GenericImage>,
    grpc_port: u16,
    running: bool,
    paused: bool,
    /// The cluster network it is on now (the main one unless partitioned).
    network: String,
    /// Which side of each partition since the last heal it is on ("1" inside, "0" outside).
    sides: String,
    /// Lost with its disk and replaced ([`ClusterControl::replace`]): never started again.
    retired: bool,
}

pub struct ContainerCluster {
    docker: Docker,
    main_network: String,
    /// Networks created for partitions, removed at heal.
    partition_networks: BTreeSet<String>,
    nodes: Vec<ContainerNode>,
    image: String,
    node_args: Vec<String>,
}

/// Whether a Docker engine answers; `Err` says why not (tests print it when they skip).
pub async fn docker_available() -> Result<(), String> {
    let docker = docker_client_instance()
        .await
        .map_err(|e| format!("no Docker client: {e}"))?;
    docker
        .ping()
        .await
        .map(drop)
        .map_err(|e| format!("the Docker engine does not answer: {e}"))
}

fn split_image(image: &str) -> (&str, &str) {
    image.rsplit_once(':').unwrap_or((image, "latest"))
}

impl ContainerCluster {
    /// Creates the cluster network and starts every node, then waits until all are registered
    /// and alive. The image must exist locally (nothing is pulled).
    pub async fn start(options: ContainerOptions) -> anyhow::Result<ContainerCluster> {
        let docker = docker_client_instance()
            .await
            .context("connecting to the Docker engine")?;
        docker
            .inspect_image(&options.image)
            .await
            .with_context(|| {
                format!(
                    "image {} is missing: build it with cluster/build-image.sh (nothing is pulled)",
                    options.image
                )
            })?;
        let main_network = format!(
            "tributary-test-{}-{}",
            std::process::id(),
            CLUSTER_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        docker
            .create_network(NetworkCreateRequest {
                name: main_network.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating network {main_network}"))?;
        let mut cluster = ContainerCluster {
            docker,
            main_network: main_network.clone(),
            partition_networks: BTreeSet::new(),
            nodes: Vec::new(),
            image: options.image.clone(),
            node_args: options.node_args.clone(),
        };
        let voters = options.metadata_voters_opt.unwrap_or(options.nodes);
        let peers = (1..=voters)
            .map(|id| format!("{id}=node{id}:{GRPC_PORT}"))
            .collect::<Vec<_>>()
            .join(",");
        for index in 0..options.nodes {
            let id = index + 1;
            let az = format!("az-{}", index % options.azs + 1);
            let node = cluster.launch(id, az, format!("--peers={peers}")).await?;
            cluster.nodes.push(node);
        }
        if let Err(error) = cluster.wait_ready().await {
            bail!("{error}\n{}", cluster.logs());
        }
        Ok(cluster)
    }

    /// Starts node `id`'s container (`contact` is its `--peers` or `--join` flag) and puts it on
    /// the cluster network.
    async fn launch(&self, id: u64, az: String, contact: String) -> anyhow::Result<ContainerNode> {
        let (name, tag) = split_image(&self.image);
        let grpc_port = free_port()?;
        let http_port = free_port()?;
        let mut command = vec![
            "node".to_string(),
            format!("--id={id}"),
            format!("--az={az}"),
            format!("--listen=0.0.0.0:{GRPC_PORT}"),
            format!("--advertise=node{id}:{GRPC_PORT}"),
            format!("--http-listen=0.0.0.0:{HTTP_PORT}"),
            "--data-dir=/data".to_string(),
            contact,
        ];
        command.extend(self.node_args.iter().cloned());
        let container = GenericImage::new(name, tag)
            .with_exposed_port(GRPC_PORT.tcp())
            .with_exposed_port(HTTP_PORT.tcp())
            .with_cmd(command)
            .with_env_var("RUST_LOG", "info,openraft=warn")
            .with_mapped_port(grpc_port, ContainerPort::Tcp(GRPC_PORT))
            .with_mapped_port(http_port, ContainerPort::Tcp(HTTP_PORT))
            .start()
            .await
            .with_context(|| format!("starting node {id}'s container"))?;
        let node = ContainerNode {
            id,
            az,
            container,
            grpc_port,
            running: true,
            paused: false,
            network: self.main_network.clone(),
            sides: String::new(),
            retired: false,
        };
        self.connect(&node, &self.main_network).await?;
        Ok(node)
    }

    fn node(&self, id: u64) -> anyhow::Result<&ContainerNode> {
        self.nodes
            .get((id as usize).wrapping_sub(1))
            .with_context(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut ContainerNode> {
        self.nodes
            .get_mut((id as usize).wrapping_sub(1))
            .with_context(|| format!("no node {id}"))
    }

    /// Puts `node` on `network`, reachable there as `node<N>`.
    async fn connect(&self, node: &ContainerNode, network: &str) -> anyhow::Result<()> {
        let request = NetworkConnectRequest {
            container: node.container.id().to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![format!("node{}", node.id)]),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, request)
            .await
            .with_context(|| format!("connecting node {} to {network}", node.id))
    }

    async fn disconnect(&self, node: &ContainerNode, network: &str) -> anyhow::Result<()> {
        let request = NetworkDisconnectRequest {
            container: node.container.id().to_string(),
            force: Some(true),
        };
        self.docker
            .disconnect_network(network, request)
            .await
            .with_context(|| format!("disconnecting node {} from {network}", node.id))
    }

    /// Moves every node to the network its partition sides name.
    async fn apply_networks(&mut self) -> anyhow::Result<()> {
        for index in 0..self.nodes.len() {
            if self.nodes[index].retired {
                continue;
            }
            let wanted = if self.nodes[index].sides.is_empty() {
                self.main_network.clone()
            } else {
                format!("{}-{}", self.main_network, self.nodes[index].sides)
            };
            if wanted == self.nodes[index].network {
                continue;
            }
            if wanted != self.main_network && self.partition_networks.insert(wanted.clone()) {
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: wanted.clone(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("creating network {wanted}"))?;
            }
            let node = &self.nodes[index];
            self.connect(node, &wanted).await?;
            self.disconnect(node, &node.network.clone()).await?;
            self.nodes[index].network = wanted;
        }
        Ok(())
    }
}

impl ClusterControl for ContainerCluster {
    fn node_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.retired)
            .map(|n| n.id)
            .collect()
    }

    fn az_of(&self, id: u64) -> String {
        self.node(id).map(|n| n.az.clone()).unwrap_or_default()
    }

    fn endpoint_of(&self, id: u64) -> String {
        let port = self.node(id).map(|n| n.grpc_port).unwrap_or_default();
        format!("127.0.0.1:{port}")
    }

    fn is_up(&self, id: u64) -> bool {
        self.node(id).is_ok_and(|n| n.running && !n.paused)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let logs = Command::new("docker")
                .args(["logs", "--tail", LOG_TAIL_LINES, node.container.id()])
                .output();
            out.push_str(&format!(
                "===== node {} ({}) container log =====\n",
                node.id, node.az
            ));
            match logs {
                Ok(output) => {
                    out.push_str(&String::from_utf8_lossy(&output.stdout));
                    out.push_str(&String::from_utf8_lossy(&output.stderr));
                }
                Err(error) => out.push_str(&format!("(docker logs failed: {error})\n")),
            }
        }
        out
    }

    async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if !node.running {
            bail!("node {id} is not running");
        }
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        self.docker
            .kill_container(node.container.id(), Some(options))
            .await
            .with_context(|| format!("killing node {id}"))?;
        let node = self.node_mut(id)?;
        node.running = false;
        node.paused = false;
        Ok(())
    }

    async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if !node.running {
            bail!("node {id} is not running");
        }
        node.container
            .stop_with_timeout(Some(STOP_TIMEOUT_S))
            .await
            .with_context(|| format!("stopping node {id}"))?;
        self.node_mut(id)?.running = false;
        Ok(())
    }

    async fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if node.running {
            bail!("node {id} is already running");
        }
        node.container
            .start()
            .await
            .with_context(|| format!("starting node {id}"))?;
        self.node_mut(id)?.running = true;
        Ok(())
    }

    async fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?
            .container
            .pause()
            .await
            .with_context(|| format!("pausing node {id}"))?;
        self.node_mut(id)?.paused = true;
        Ok(())
    }

    async fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?
            .container
            .unpause()
            .await
            .with_context(|| format!("unpausing node {id}"))?;
        self.node_mut(id)?.paused = false;
        Ok(())
    }

    async fn partition(&mut self, side: &[u64]) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.sides
                .push(if side.contains(&node.id) { '1' } else { '0' });
        }
        self.apply_networks().await
    }

    async fn heal(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.sides.clear();
        }
        self.apply_networks().await?;
        for network in std::mem::take(&mut self.partition_networks) {
            self.docker
                .remove_network(&network)
                .await
                .with_context(|| format!("removing network {network}"))?;
        }
        Ok(())
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let running: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.running && !n.retired)
            .map(|n| n.id)
            .collect();
        wait_until_ready(self, &running, Duration::from_secs(60)).await
    }

    /// Kills node `id`'s container for good (its filesystem, the node's data, goes with it at
    /// teardown) and starts a new container in its AZ that joins through a running node.
    async fn replace(&mut self, id: u64) -> anyhow::Result<u64> {
        if self.node(id)?.running {
            ClusterControl::kill(self, id).await?;
        }
        self.node_mut(id)?.retired = true;
        let az = self.node(id)?.az.clone();
        let contact = self
            .nodes
            .iter()
            .find(|n| n.running && !n.paused && !n.retired)
            .map(|n| n.id)
            .context("no running node to join through")?;
        let new_id = self.nodes.len() as u64 + 1;
        let node = self
            .launch(new_id, az, format!("--join=node{contact}:{GRPC_PORT}"))
            .await?;
        self.nodes.push(node);
        Ok(new_id)
    }
}

impl Drop for ContainerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // Containers are removed as their handles drop; then their networks can go.
        let networks: Vec<String> = std::iter::once(self.main_network.clone())
            .chain(std::mem::take(&mut self.partition_networks))
            .collect();
        self.nodes.clear();
        for network in networks {
            let _ = Command::new("docker")
                .args(["network", "rm", &network])
                .output();
        }
    }
}

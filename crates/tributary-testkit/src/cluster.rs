//! A cluster of node processes.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tributary_client::Client;

use crate::wait::wait_until;

/// How long a cluster may take to elect a metadata leader and register every node.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 150;

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: u64,
    pub azs: u64,
    /// How many of the first nodes are initial metadata voters (all when `None`).
    pub metadata_voters_opt: Option<u64>,
    /// Extra `tributary node` flags for every node, e.g. `--retention-hour-ms 100`.
    pub node_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            azs: 3,
            metadata_voters_opt: None,
            node_args: Vec::new(),
        }
    }
}

pub struct NodeHandle {
    pub id: u64,
    pub az: String,
    pub address: String,
    pub http_address: String,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child_opt: Option<Child>,
}

impl NodeHandle {
    pub fn is_running(&self) -> bool {
        self.child_opt.is_some()
    }
}

pub struct Cluster {
    binary: PathBuf,
    peers: String,
    nodes: Vec<NodeHandle>,
    node_args: Vec<String>,
    dir: TempDir,
}

/// A free loopback port (probed: bound, read and released).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Cluster {
    /// Starts `options.nodes` nodes spread round-robin over `options.azs` AZs and waits until
    /// every node is registered and alive.
    pub async fn start(
        binary: impl AsRef<Path>,
        options: ClusterOptions,
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("tributary-test-")
            .tempdir()?;
        let mut nodes = Vec::new();
        for index in 0..options.nodes {
            let id = index + 1;
            nodes.push(NodeHandle {
                id,
                az: format!("az-{}", index % options.azs + 1),
                address: format!("127.0.0.1:{}", free_port()?),
                http_address: format!("127.0.0.1:{}", free_port()?),
                data_dir: dir.path().join(format!("node-{id}")),
                log_path: dir.path().join(format!("node-{id}.log")),
                child_opt: None,
            });
        }
        let voters = options.metadata_voters_opt.unwrap_or(options.nodes);
        let peers = nodes
            .iter()
            .take(voters as usize)
            .map(|n| format!("{}={}", n.id, n.address))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            binary: binary.as_ref().to_path_buf(),
            peers,
            nodes,
            node_args: options.node_args.clone(),
            dir,
        };
        for id in 1..=options.nodes {
            cluster.start_node(id)?;
        }
        if let Err(error) = cluster.wait_ready().await {
            bail!("{error}\n{}", cluster.logs());
        }
        Ok(cluster)
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn node(&self, id: u64) -> &NodeHandle {
        &self.nodes[(id - 1) as usize]
    }

    pub fn nodes(&self) -> &[NodeHandle] {
        &self.nodes
    }

    /// All endpoints, comma-separated (the `--endpoint` form).
    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.address.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Endpoints of the nodes currently running.
    pub fn running_endpoints(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.address.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that fails over between every node.
    pub fn client(&self) -> Client {
        Client::from_list(&self.endpoints()).expect("valid endpoints")
    }

    /// A client that talks to one node only.
    pub fn client_of(&self, id: u64) -> Client {
        Client::new(&[self.node(id).address.as_str()]).expect("valid endpoint")
    }

    /// The `tributary` command with `--endpoint` pointing at the running nodes.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("TRIBUTARY_ENDPOINT", self.running_endpoints())
            .env_remove("RUST_LOG");
        command
    }

    /// Starts (or restarts, with the same data dir and ports) node `id`.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let peers = self.peers.clone();
        let binary = self.binary.clone();
        let node_args = self.node_args.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        if node.child_opt.is_some() {
            bail!("node {id} is already running");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log_path)?;
        let child = Command::new(binary)
            .args([
                "node",
                "--id",
                &id.to_string(),
                "--az",
                &node.az,
                "--listen",
                &node.address,
            ])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--peers", &peers, "--http-listen", &node.http_address])
            .args(&node_args)
            .env(
                "RUST_LOG",
                std::env::var("TRIBUTARY_TEST_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        node.child_opt = Some(child);
        Ok(())
    }

    /// SIGKILL: the node dies at once, as in a crash.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[(id - 1) as usize];
        let mut child = node
            .child_opt
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub async fn stop(&mut self, id: u64) -> anyhow::Result<std::process::ExitStatus> {
        let node = &mut self.nodes[(id - 1) as usize];
        let mut child = node
            .child_opt
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                bail!("node {id} did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node sees every node registered and alive and a metadata
    /// leader (each node is asked directly, so none is still catching up).
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let running: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect();
        let total = self.nodes.len();
        for id in running.clone() {
            let client = self.client_of(id).with_call_timeout(Duration::from_secs(2));
            let what =
                format!("node {id} to see every node registered and alive with a metadata leader");
            wait_until(READY_TIMEOUT, &what, || {
                let client = client.clone();
                let running = running.clone();
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

    /// One node's whole log.
    pub fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log_path).unwrap_or_default()
    }

    /// Every node's log, for failure reports.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "===== node {} ({}) log, last {} lines =====\n",
                node.id,
                node.az,
                tail.len()
            ));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn data_root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child_opt.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

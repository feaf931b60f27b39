//! A cluster of node processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_client::{AccessKey, Client, ClientOptions};

use crate::control::{ClusterControl, wait_until_ready};

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
    /// Start nodes with `--fault-injection`, which [`Cluster::partition`] needs.
    pub fault_injection: bool,
    /// Serve the Kinesis HTTP API on every node (`--kinesis-listen` on a free port); its
    /// authentication flags go in `node_args`.
    pub kinesis: bool,
    /// TLS on every node: certificates from `tributary certs create` in the cluster's temp dir
    /// ([`Cluster::certs_dir`]); clients from [`Cluster::client`] and [`Cluster::cli`] trust its
    /// CA.
    pub tls: bool,
    /// `--auth required` on every node (needs `tls`): a key ring and an admin key file in the
    /// cluster's temp dir; [`Cluster::client`] and [`Cluster::cli`] sign as the admin
    /// ([`ADMIN_ACCESS_KEY_ID`]).
    pub auth: bool,
}

/// The administrator of an `auth` cluster.
pub const ADMIN_ACCESS_KEY_ID: &str = "TRIBTESTADMIN0000001";
pub const ADMIN_SECRET_ACCESS_KEY: &str = "test-admin-secret-0123456789abcdefghijkl";

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            azs: 3,
            metadata_voters_opt: None,
            node_args: Vec::new(),
            fault_injection: false,
            kinesis: false,
            tls: false,
            auth: false,
        }
    }
}

pub struct NodeHandle {
    pub id: u64,
    pub az: String,
    pub address: String,
    pub http_address: String,
    /// The Kinesis HTTP API's address, served when the cluster was started with `kinesis`.
    pub kinesis_address: String,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child_opt: Option<Child>,
    paused: bool,
    /// Started with `--join` this address instead of `--peers` (see [`Cluster::join_node`]).
    join_opt: Option<String>,
    /// Wiped and replaced by [`Cluster::replace_node`]: gone for good.
    retired: bool,
}

impl NodeHandle {
    pub fn is_running(&self) -> bool {
        self.child_opt.is_some()
    }

    /// Running but frozen by [`Cluster::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Wiped and replaced by [`Cluster::replace_node`].
    pub fn is_retired(&self) -> bool {
        self.retired
    }
}

pub struct Cluster {
    binary: PathBuf,
    peers: String,
    nodes: Vec<NodeHandle>,
    node_args: Vec<String>,
    fault_injection: bool,
    kinesis: bool,
    /// Where the CA and node certificates are, on a TLS cluster.
    certs_opt: Option<PathBuf>,
    /// `--auth required`: every node's key ring and admin key file flags.
    auth_args: Vec<String>,
    /// For each node, the peers it is cut off from (see [`Cluster::partition`]).
    cuts: BTreeMap<u64, BTreeSet<u64>>,
    dir: TempDir,
}

fn join_ids(ids: &BTreeSet<u64>) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// How long a node may take to answer `PUT /faults`.
const FAULTS_TIMEOUT: Duration = Duration::from_secs(5);

/// `PUT /faults` on a node's HTTP port (HTTP/1.0: the server closes after answering).
async fn put_faults(http_address: &str, body: &str) -> anyhow::Result<()> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(http_address).await?;
        let request = format!(
            "PUT /faults HTTP/1.0\r\nHost: tributary\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(FAULTS_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{http_address} did not answer PUT /faults"))??;
    let status = response.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("PUT /faults on {http_address} answered {response}");
    }
    Ok(())
}

/// `tributary certs create`: a CA and certificates for nodes 1..=`nodes` in `dir`.
fn make_certs(binary: &Path, dir: &Path, nodes: u64) -> anyhow::Result<()> {
    run_certs(
        Command::new(binary)
            .args(["certs", "create", "--nodes", &nodes.to_string(), "--out"])
            .arg(dir),
    )
}

/// `tributary certs node`: a certificate for a node added later.
fn issue_node_cert(binary: &Path, dir: &Path, id: u64) -> anyhow::Result<()> {
    run_certs(
        Command::new(binary)
            .args(["certs", "node", "--id", &id.to_string(), "--dir"])
            .arg(dir),
    )
}

fn run_certs(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .env_remove("RUST_LOG")
        .output()
        .context("running tributary certs")?;
    if !output.status.success() {
        bail!(
            "tributary certs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A free loopback port (probed: bound, read and released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
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
                kinesis_address: format!("127.0.0.1:{}", free_port()?),
                data_dir: dir.path().join(format!("node-{id}")),
                log_path: dir.path().join(format!("node-{id}.log")),
                child_opt: None,
                paused: false,
                join_opt: None,
                retired: false,
            });
        }
        let certs_opt = if options.tls {
            let certs = dir.path().join("certs");
            make_certs(binary.as_ref(), &certs, options.nodes)?;
            Some(certs)
        } else {
            None
        };
        let auth_args = if options.auth {
            if !options.tls {
                bail!("ClusterOptions::auth needs tls (nodes refuse --auth required without it)");
            }
            let key_ring = dir.path().join("keys.toml");
            run_certs(
                Command::new(binary.as_ref())
                    .args(["keys", "create", "--out"])
                    .arg(&key_ring),
            )?;
            let admin_key = dir.path().join("admin-key");
            std::fs::write(
                &admin_key,
                format!("{ADMIN_ACCESS_KEY_ID}:{ADMIN_SECRET_ACCESS_KEY}\n"),
            )?;
            vec![
                "--auth=required".to_string(),
                format!("--key-ring={}", key_ring.display()),
                format!("--admin-key-file={}", admin_key.display()),
            ]
        } else {
            Vec::new()
        };
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
            fault_injection: options.fault_injection,
            kinesis: options.kinesis,
            certs_opt,
            auth_args,
            cuts: BTreeMap::new(),
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
        Client::from_list_with(&self.endpoints(), &ClusterControl::client_options(self))
            .expect("valid endpoints")
    }

    /// A client that talks to one node only.
    pub fn client_of(&self, id: u64) -> Client {
        Client::with_options(
            &[self.node(id).address.as_str()],
            &ClusterControl::client_options(self),
        )
        .expect("valid endpoint")
    }

    /// The CA and node certificates of a TLS cluster (`ca.pem`, `node-<id>.pem`, ...).
    pub fn certs_dir(&self) -> Option<&Path> {
        self.certs_opt.as_deref()
    }

    /// The `tributary` command with `--endpoint` pointing at the running nodes (and
    /// `TRIBUTARY_TLS_CA` at the cluster's CA on a TLS cluster).
    pub fn cli(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("TRIBUTARY_ENDPOINT", self.running_endpoints())
            .env_remove("RUST_LOG")
            .env_remove("TRIBUTARY_CLIENT_CERT")
            .env_remove("TRIBUTARY_CLIENT_KEY");
        match &self.certs_opt {
            Some(certs) => command.env("TRIBUTARY_TLS_CA", certs.join("ca.pem")),
            None => command.env_remove("TRIBUTARY_TLS_CA"),
        };
        if self.auth_args.is_empty() {
            command
                .env_remove("TRIBUTARY_ACCESS_KEY_ID")
                .env_remove("TRIBUTARY_SECRET_ACCESS_KEY");
        } else {
            command
                .env("TRIBUTARY_ACCESS_KEY_ID", ADMIN_ACCESS_KEY_ID)
                .env("TRIBUTARY_SECRET_ACCESS_KEY", ADMIN_SECRET_ACCESS_KEY);
        }
        command
    }

    /// Starts (or restarts, with the same data dir and ports) node `id`.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let peers = self.peers.clone();
        let binary = self.binary.clone();
        let mut node_args = self.node_args.clone();
        if self.fault_injection {
            node_args.push("--fault-injection".to_string());
            // A partition outlives a restart, as a real one would.
            if let Some(cut) = self.cuts.get(&id).filter(|cut| !cut.is_empty()) {
                node_args.push(format!("--fault-cut={}", join_ids(cut)));
            }
        }
        let node = &mut self.nodes[(id - 1) as usize];
        if self.kinesis {
            node_args.push(format!("--kinesis-listen={}", node.kinesis_address));
        }
        node_args.extend(self.auth_args.iter().cloned());
        if let Some(certs) = &self.certs_opt {
            if !certs.join(format!("node-{id}.pem")).exists() {
                issue_node_cert(&self.binary, certs, id)?;
            }
            node_args.extend([
                format!(
                    "--tls-cert={}",
                    certs.join(format!("node-{id}.pem")).display()
                ),
                format!(
                    "--tls-key={}",
                    certs.join(format!("node-{id}.key")).display()
                ),
                format!("--tls-ca={}", certs.join("ca.pem").display()),
            ]);
        }
        if node.child_opt.is_some() {
            bail!("node {id} is already running");
        }
        let contact = match &node.join_opt {
            Some(address) => ["--join", address.as_str()],
            None => ["--peers", peers.as_str()],
        };
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
            .args(contact)
            .args(["--http-listen", &node.http_address])
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

    /// Starts a new node in `az` with the next free id that joins the running cluster through
    /// node `contact` (`--join`); returns its id.
    pub fn join_node(&mut self, az: &str, contact: u64) -> anyhow::Result<u64> {
        let id = self.nodes.len() as u64 + 1;
        let join = self.node(contact).address.clone();
        self.nodes.push(NodeHandle {
            id,
            az: az.to_string(),
            address: format!("127.0.0.1:{}", free_port()?),
            http_address: format!("127.0.0.1:{}", free_port()?),
            kinesis_address: format!("127.0.0.1:{}", free_port()?),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log_path: self.dir.path().join(format!("node-{id}.log")),
            child_opt: None,
            paused: false,
            join_opt: Some(join),
            retired: false,
        });
        self.start_node(id)?;
        Ok(id)
    }

    /// A machine lost with its disk: kills node `id` (when it runs), deletes its data dir, and
    /// starts a new node in its AZ under the next free id, joining through a running node. The
    /// old id is retired: [`ClusterControl::node_ids`] leaves it out. Removing the old node from
    /// the cluster (`cluster remove-node`) is the caller's part.
    pub fn replace_node(&mut self, id: u64) -> anyhow::Result<u64> {
        if self.node(id).is_running() {
            self.kill(id)?;
        }
        let node = &mut self.nodes[(id - 1) as usize];
        node.retired = true;
        std::fs::remove_dir_all(&node.data_dir)
            .with_context(|| format!("wiping node {id}'s data"))?;
        let az = node.az.clone();
        let contact = self
            .nodes
            .iter()
            .find(|n| n.is_running() && !n.paused)
            .map(|n| n.id)
            .context("no running node to join through")?;
        self.join_node(&az, contact)
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
        node.paused = false;
        Ok(())
    }

    /// SIGSTOP: the node freezes (its connections stay open, nothing answers) until
    /// [`Cluster::resume`].
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[(id - 1) as usize];
        let child = node
            .child_opt
            .as_ref()
            .with_context(|| format!("node {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP)?;
        node.paused = true;
        Ok(())
    }

    /// SIGCONT: a paused node carries on where it stopped, then learns of any partition
    /// changed while it was frozen.
    pub async fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[(id - 1) as usize];
        let child = node
            .child_opt
            .as_ref()
            .with_context(|| format!("node {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT)?;
        node.paused = false;
        self.push_cut(id).await
    }

    /// Cuts the nodes in `side` off from every other node, both ways (on top of any earlier
    /// partition). Clients still reach every node, as in Jepsen's partitions: a node in a
    /// minority keeps answering, and must not acknowledge what it cannot commit. Needs
    /// [`ClusterOptions::fault_injection`].
    pub async fn partition(&mut self, side: &[u64]) -> anyhow::Result<()> {
        if !self.fault_injection {
            bail!("partitions need ClusterOptions::fault_injection");
        }
        let all: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for &inside in side {
            for &outside in all.iter().filter(|id| !side.contains(id)) {
                self.cuts.entry(inside).or_default().insert(outside);
                self.cuts.entry(outside).or_default().insert(inside);
            }
        }
        self.push_cuts().await
    }

    /// Ends every partition.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        self.cuts.clear();
        if !self.fault_injection {
            return Ok(());
        }
        self.push_cuts().await
    }

    async fn push_cuts(&self) -> anyhow::Result<()> {
        for node in &self.nodes {
            self.push_cut(node.id).await?;
        }
        Ok(())
    }

    /// Tells a running, unfrozen node its cut set (a paused one learns it on resume, a stopped
    /// one at start).
    async fn push_cut(&self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id);
        if !self.fault_injection || !node.is_running() || node.paused {
            return Ok(());
        }
        let cut = self.cuts.get(&id).cloned().unwrap_or_default();
        let body = format!("{{\"cut\": [{}]}}", join_ids(&cut));
        put_faults(&node.http_address, &body)
            .await
            .with_context(|| format!("setting node {id}'s partition"))
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
            .filter(|n| n.is_running() && !n.retired)
            .map(|n| n.id)
            .collect();
        wait_until_ready(self, &running, READY_TIMEOUT).await
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

impl ClusterControl for Cluster {
    fn client_options(&self) -> ClientOptions {
        let mut options = match &self.certs_opt {
            Some(certs) => {
                ClientOptions::tls_ca_file(certs.join("ca.pem")).expect("the cluster's CA")
            }
            None => ClientOptions::default(),
        };
        if !self.auth_args.is_empty() {
            options.access_key_opt = Some(AccessKey {
                access_key_id: ADMIN_ACCESS_KEY_ID.to_string(),
                secret_access_key: ADMIN_SECRET_ACCESS_KEY.to_string(),
            });
        }
        options
    }

    fn node_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.retired)
            .map(|n| n.id)
            .collect()
    }

    fn az_of(&self, id: u64) -> String {
        self.node(id).az.clone()
    }

    fn endpoint_of(&self, id: u64) -> String {
        self.node(id).address.clone()
    }

    fn is_up(&self, id: u64) -> bool {
        let node = self.node(id);
        node.is_running() && !node.is_paused()
    }

    fn logs(&self) -> String {
        Cluster::logs(self)
    }

    async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        Cluster::kill(self, id)
    }

    async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        Cluster::stop(self, id).await.map(drop)
    }

    async fn start(&mut self, id: u64) -> anyhow::Result<()> {
        self.start_node(id)
    }

    async fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        Cluster::pause(self, id)
    }

    async fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        Cluster::resume(self, id).await
    }

    async fn partition(&mut self, side: &[u64]) -> anyhow::Result<()> {
        Cluster::partition(self, side).await
    }

    async fn heal(&mut self) -> anyhow::Result<()> {
        Cluster::heal(self).await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        Cluster::wait_ready(self).await
    }

    async fn replace(&mut self, id: u64) -> anyhow::Result<u64> {
        self.replace_node(id)
    }
}

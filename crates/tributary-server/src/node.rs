//! A node's life: open storage, start the metadata group, serve gRPC and HTTP, keep the shard
//! groups this node replicates in step with the catalogue, and stop cleanly on SIGTERM.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, ClientTlsConfig};
use tributary_proto::v1::tributary_client::TributaryClient;
use tributary_raft::meta::MetaCommand;
use tributary_raft::network::peer_endpoint;
use tributary_raft::{NetworkFactory, PeerRouter, config::raft_config};
use tributary_storage::{LogStore, Store};
use tributary_types::{Error, GroupId, METADATA_GROUP, NodeId};

use crate::config::NodeConfig;
use crate::groups::{Groups, ShardGroup};
use crate::meta::{MetaMachine, MetaRaft, MetaView, ShardMeta};
use crate::shard::{ShardMachine, ShardRaft};
use crate::tls::NodeTls;
use crate::{http, service, telemetry};

/// Public API messages carry up to 5 MiB of records (10 MiB of reads) plus framing.
pub const MAX_PUBLIC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How long a replica waits for a new shard group's preferred leader before forming it itself.
const INITIALIZE_FALLBACK_AFTER: Duration = Duration::from_secs(3);
/// How often the reconciler re-checks the shard groups even without catalogue changes.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);
/// How long SIGTERM waits for shard leadership to move to another replica.
const LEADERSHIP_HANDOFF_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Node {
    pub config: NodeConfig,
    pub store: Store,
    pub router: PeerRouter,
    pub meta_raft: MetaRaft,
    pub meta: MetaView,
    pub(crate) groups: Groups,
    /// Leaders learned from NOT_LEADER answers, for groups this node does not replicate.
    pub(crate) leader_hints: Mutex<HashMap<GroupId, NodeId>>,
    public_clients: Mutex<HashMap<String, TributaryClient<Channel>>>,
    /// Enhanced fan-out subscriptions served here.
    pub(crate) subscriptions: crate::fanout::Subscriptions,
    serving: AtomicBool,
    stop_tx: watch::Sender<bool>,
    /// `--auth`, the key ring and the audit log.
    pub(crate) auth: crate::auth::Auth,
    /// The key ring (`--key-ring`): sealed access keys and encrypted streams.
    pub(crate) keys: crate::keyring::Keys,
    /// Connections and subscriptions each client holds, within `config.client_limits`.
    pub(crate) client_limits: crate::clients::ClientLimits,
    /// Whether the gRPC port and the Kinesis endpoint serve TLS.
    pub(crate) tls_on: bool,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    node_id: NodeId,
    az: String,
}

/// How long a stopping node waits for in-flight Kinesis requests (subscriptions end at once).
const KINESIS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A started node and the tasks serving it.
pub struct RunningNode {
    pub node: Arc<Node>,
    pub grpc_address: std::net::SocketAddr,
    pub http_address_opt: Option<std::net::SocketAddr>,
    pub kinesis_address_opt: Option<std::net::SocketAddr>,
    grpc_task: JoinHandle<()>,
    kinesis_task_opt: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Node {
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    /// The public-API client for another node (used to forward reads).
    pub(crate) fn public_client(&self, address: &str) -> Result<TributaryClient<Channel>, Error> {
        let cut_opt = self.meta.read(|state| {
            state
                .nodes
                .iter()
                .find(|(id, info)| info.address == address && self.router.is_cut(**id))
                .map(|(id, _)| *id)
        });
        if let Some(node) = cut_opt {
            return Err(Error::internal(format!(
                "node {node} is cut off from this node (fault injection)"
            )));
        }
        let mut clients = self
            .public_clients
            .lock()
            .expect("client map lock poisoned");
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let endpoint =
            peer_endpoint(address, self.router.tls().as_ref()).map_err(Error::internal)?;
        let client = TributaryClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_PUBLIC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PUBLIC_MESSAGE_BYTES);
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// Calls to other nodes use `tls_opt` from now on (certificate rotation): open connections
    /// are dropped and made again with it.
    pub(crate) fn use_client_tls(&self, tls_opt: Option<ClientTlsConfig>) {
        self.router.set_tls(tls_opt);
        self.public_clients
            .lock()
            .expect("client map lock poisoned")
            .clear();
    }

    pub(crate) fn node_address(&self, node: NodeId) -> Option<String> {
        self.meta
            .read(|state| state.nodes.get(&node).map(|info| info.address.clone()))
    }

    pub(crate) fn shard_group(&self, group: GroupId) -> Option<Arc<ShardGroup>> {
        self.groups.get(group)
    }

    /// Starts a node: storage, metadata group, gRPC and HTTP listeners, background tasks.
    pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
        config.validate()?;
        let mut config = config;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let tls_opt = match &config.tls_opt {
            Some(paths) => Some(Arc::new(
                NodeTls::load(paths.clone()).context("loading the TLS certificates")?,
            )),
            None => None,
        };
        let client_tls_opt = tls_opt.as_ref().map(|tls| tls.current().client.clone());
        let new_data_dir = !config.data_dir.join(IDENTITY_FILE).exists();
        if new_data_dir && let Some(contact) = config.join_opt.clone() {
            config.peers = join_contacts(&contact, config.id, client_tls_opt.as_ref()).await?;
        }
        let fresh = check_identity(&config)?;
        let keys = crate::keyring::Keys::load(config.key_ring_opt.as_deref())?;
        if let Some(ring) = keys.current()
            && !ring.contains(crate::keyring::DEFAULT_KEY)
            && config.auth_mode == crate::auth::AuthMode::Required
        {
            bail!(
                "the key ring has no key named '{}', which seals access keys",
                crate::keyring::DEFAULT_KEY
            );
        }
        let auth = crate::auth::Auth::new(config.auth_mode, &config.data_dir)?;
        let store = Store::open(&config.data_dir.join("db")).context("opening RocksDB")?;
        let router = PeerRouter::default();
        router.set_tls(client_tls_opt);
        if let Some(faults) = &config.faults_opt {
            tracing::warn!(
                cut = ?faults.cut,
                ack_before_commit = faults.ack_before_commit,
                "FAULT INJECTION IS ON: this node is for chaos tests only"
            );
            router.set_cut(faults.cut.clone());
        }
        let (meta_machine, meta_view) = MetaMachine::open(store.clone())?;
        let meta_raft = MetaRaft::new(
            config.id,
            raft_config(&config.cluster_name),
            NetworkFactory {
                router: router.clone(),
                group: METADATA_GROUP,
            },
            LogStore::new(store.clone(), METADATA_GROUP),
            meta_machine,
        )
        .await
        .context("starting the metadata group")?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let grpc_address = listener.local_addr()?;
        let http_listener_opt = match config.http_listen_opt {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding {address}"))?,
            ),
            None => None,
        };
        let kinesis_listener_opt = match &config.kinesis_opt {
            Some(kinesis) => Some((
                TcpListener::bind(kinesis.listen)
                    .await
                    .with_context(|| format!("binding the Kinesis endpoint {}", kinesis.listen))?,
                kinesis.auth.clone(),
            )),
            None => None,
        };
        let (stop_tx, _) = watch::channel(false);
        let client_limits = crate::clients::ClientLimits::new(config.client_limits);
        let node = Arc::new(Node {
            config,
            store,
            router,
            meta_raft,
            meta: meta_view,
            groups: Groups::default(),
            leader_hints: Mutex::new(HashMap::new()),
            public_clients: Mutex::new(HashMap::new()),
            subscriptions: crate::fanout::Subscriptions::default(),
            serving: AtomicBool::new(false),
            stop_tx,
            auth,
            keys,
            client_limits,
            tls_on: tls_opt.is_some(),
        });

        let grpc_task = tokio::spawn(service::serve(node.clone(), listener, tls_opt.clone()));
        let mut background = Vec::new();
        match &tls_opt {
            Some(tls) => {
                tracing::info!(cert = %tls.paths().cert.display(), ca = %tls.paths().ca.display(), "TLS on: clients verify this node, nodes verify each other (mutual TLS)");
                background.push(tokio::spawn(crate::tls::reload(node.clone(), tls.clone())));
            }
            None => tracing::warn!(
                "TLS is OFF: clients and nodes talk in plain text (give --tls-cert, --tls-key and --tls-ca)"
            ),
        }
        let http_address_opt = match http_listener_opt {
            Some(listener) => {
                let address = listener.local_addr()?;
                background.push(tokio::spawn(http::serve(
                    node.clone(),
                    listener,
                    telemetry::prometheus(),
                )));
                Some(address)
            }
            None => None,
        };
        if let Some(ring) = node.keys.current() {
            tracing::info!(keys = ?ring, "key ring loaded; re-read when its file changes");
            crate::telemetry::record_key_ring(&ring);
            background.push(tokio::spawn(crate::keyring::reload(node.clone())));
        }

        let mut kinesis_task_opt = None;
        let kinesis_address_opt = match kinesis_listener_opt {
            Some((listener, auth)) => {
                let address = listener.local_addr()?;
                if matches!(auth, crate::kinesis::KinesisAuth::None) {
                    tracing::warn!(%address, "the Kinesis endpoint accepts UNAUTHENTICATED requests (--kinesis-auth none)");
                }
                tracing::info!(%address, region = %node.config.arns.region, account = %node.config.arns.account_id, "serving the Kinesis API");
                kinesis_task_opt = Some(tokio::spawn(crate::kinesis::serve(
                    node.clone(),
                    listener,
                    auth,
                    tls_opt.clone(),
                )));
                Some(address)
            }
            None => None,
        };

        match node.config.auth_mode {
            crate::auth::AuthMode::None => tracing::warn!(
                "AUTH IS OFF (--auth none): anyone who reaches this node may read, write and delete anything"
            ),
            crate::auth::AuthMode::Required => {
                tracing::info!(
                    "auth required: every call is signed and allowed by the caller's policies"
                );
                if let Some((access_key_id, secret)) = node.config.admin_key_opt.clone() {
                    background.push(tokio::spawn(crate::auth::admin::bootstrap_admin(
                        node.clone(),
                        access_key_id,
                        secret,
                    )));
                }
            }
        }

        // Initial voters form group 0; any other node joins it as a learner once registered.
        if fresh && node.config.peers.contains_key(&node.id()) {
            initialize_metadata_group(&node).await?;
        }
        background.push(tokio::spawn(register_self(node.clone())));
        background.push(tokio::spawn(reconcile_groups(node.clone())));
        background.push(tokio::spawn(add_metadata_learners(node.clone())));
        background.push(tokio::spawn(crate::lifecycle::drive_streams(node.clone())));
        background.push(tokio::spawn(crate::moves::drive_removals(node.clone())));
        background.push(tokio::spawn(crate::moves::carry_out_moves(node.clone())));
        background.push(tokio::spawn(crate::retention::trim_expired_records(
            node.clone(),
        )));
        background.push(tokio::spawn(crate::autoscale::scale_on_demand_streams(
            node.clone(),
        )));
        background.push(tokio::spawn(telemetry::export_raft_metrics(node.clone())));
        node.serving.store(true, Ordering::Release);
        tracing::info!(node_id = node.id(), az = %node.config.az, address = %grpc_address, "node serving");
        Ok(RunningNode {
            node,
            grpc_address,
            http_address_opt,
            kinesis_address_opt,
            grpc_task,
            kinesis_task_opt,
            background,
        })
    }
}

impl RunningNode {
    /// Clean stop: hand shard leadership to healthy replicas, answer in-flight requests, stop
    /// every group and flush storage.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let node = self.node;
        tracing::info!(
            node_id = node.id(),
            "stopping: handing off shard leadership"
        );
        hand_off_leadership(&node).await;
        node.serving.store(false, Ordering::Release);
        node.stop_tx.send_replace(true);
        if let Err(error) = self.grpc_task.await {
            tracing::warn!(%error, "gRPC server task failed");
        }
        if let Some(mut task) = self.kinesis_task_opt {
            // In-flight Kinesis requests are answered too; a stuck connection is cut.
            if tokio::time::timeout(KINESIS_DRAIN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    "Kinesis connections still open after {KINESIS_DRAIN_TIMEOUT:?}; closing them"
                );
                task.abort();
            }
        }
        for task in self.background {
            task.abort();
        }
        for group in node.groups.all() {
            if let Err(error) = group.raft.shutdown().await {
                tracing::warn!(group = %group.group, %error, "shard group did not stop cleanly");
            }
        }
        if let Err(error) = node.meta_raft.shutdown().await {
            tracing::warn!(%error, "metadata group did not stop cleanly");
        }
        node.store.flush_all().context("flushing storage")?;
        tracing::info!(node_id = node.id(), "stopped");
        Ok(())
    }
}

/// Records which node owns the data dir; returns whether it is new.
fn check_identity(config: &NodeConfig) -> anyhow::Result<bool> {
    let path = config.data_dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let identity: Identity =
                serde_json::from_slice(&bytes).context("reading identity.json")?;
            if identity.node_id != config.id {
                bail!(
                    "data dir {} belongs to node {}, not node {}; a node whose data was wiped must join under a new id",
                    config.data_dir.display(),
                    identity.node_id,
                    config.id
                );
            }
            Ok(false)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity {
                node_id: config.id,
                az: config.az.clone(),
            };
            std::fs::write(&path, serde_json::to_vec_pretty(&identity)?)?;
            Ok(true)
        }
        Err(error) => Err(error).context("reading identity.json"),
    }
}

/// Where a data dir records whose it is.
const IDENTITY_FILE: &str = "identity.json";
/// How long a joining node keeps asking its contact for the cluster's members.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A joining node's contacts: every registered node, learned from `contact`'s cluster status
/// once it sees a metadata leader. Refuses an id the cluster already knows: a node whose data
/// was wiped (or that was removed) comes back under a new id.
async fn join_contacts(
    contact: &str,
    id: NodeId,
    tls_opt: Option<&ClientTlsConfig>,
) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let endpoint =
        peer_endpoint(contact, tls_opt).map_err(|e| anyhow::anyhow!("--join {contact}: {e}"))?;
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut client = TributaryClient::new(endpoint.connect_lazy());
    let status = loop {
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.cluster_status(tributary_proto::v1::ClusterStatusRequest {}),
        )
        .await;
        let last = match answer {
            Ok(Ok(reply)) if reply.get_ref().metadata_leader.is_some() => break reply.into_inner(),
            Ok(Ok(_)) => "it sees no metadata leader".to_string(),
            Ok(Err(status)) => tributary_proto::describe_status(&status),
            Err(_) => "no answer within 2 s".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("could not join through {contact} within {JOIN_TIMEOUT:?}: {last}");
        }
        tracing::info!(%contact, %last, "waiting to join the cluster");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(known) = status.nodes.iter().find(|n| n.id == id) {
        bail!(
            "node id {id} is already known to the cluster (at {}, {}); a new or wiped node joins under an id the cluster has never seen",
            known.address,
            known.az
        );
    }
    if status.removed_node_ids.contains(&id) {
        bail!(
            "node id {id} was removed from the cluster; a node joins under an id the cluster has never seen"
        );
    }
    tracing::info!(%contact, nodes = status.nodes.len(), "joining the cluster");
    Ok(status
        .nodes
        .into_iter()
        .map(|node| (node.id, node.address))
        .collect())
}

/// Every initial voter initializes group 0 with the same membership; Raft elects one leader.
async fn initialize_metadata_group(node: &Node) -> anyhow::Result<()> {
    if node.meta_raft.is_initialized().await? {
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> = node
        .config
        .peers
        .iter()
        .map(|(id, address)| {
            (
                *id,
                BasicNode {
                    addr: address.clone(),
                },
            )
        })
        .collect();
    match node.meta_raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%error, "metadata group already initialized");
            Ok(())
        }
    }
}

/// Announces this node's AZ and address to the catalogue, retrying until the metadata group
/// accepts it.
async fn register_self(node: Arc<Node>) {
    let command = MetaCommand::RegisterNode {
        node_id: node.id(),
        az: node.config.az.clone(),
        address: node.config.advertise.clone(),
    };
    loop {
        let registered = node.meta.read(|state| {
            state.nodes.get(&node.id()).is_some_and(|info| {
                info.az == node.config.az && info.address == node.config.advertise
            })
        });
        if registered {
            return;
        }
        match node.meta_write(command.clone()).await {
            Ok(()) => tracing::info!(node_id = node.id(), "registered with the cluster"),
            Err(error) if error.code == tributary_types::ErrorCode::ResourceInUse => {
                tracing::error!(%error, "this node may not register; stop it and join under a new id");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "registration not accepted yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// On the metadata leader: every registered node that is not a member of group 0 joins it as a
/// learner, so every node keeps a replica of the catalogue and routes without a round trip. A
/// node being removed is not added back (the removal driver takes it out).
async fn add_metadata_learners(node: Arc<Node>) {
    let mut changes = node.meta.changes();
    let mut leader_changes = node.meta_raft.metrics();
    loop {
        let is_leader = node.meta_raft.metrics().borrow_watched().current_leader == Some(node.id());
        if is_leader {
            let membership = node
                .meta_raft
                .metrics()
                .borrow_watched()
                .membership_config
                .clone();
            let members: Vec<NodeId> = membership.membership().nodes().map(|(id, _)| *id).collect();
            let missing: Vec<(NodeId, String)> = node.meta.read(|state| {
                state
                    .nodes
                    .iter()
                    .filter(|(id, info)| !members.contains(id) && !info.removing)
                    .map(|(id, info)| (*id, info.address.clone()))
                    .collect()
            });
            for (id, address) in missing {
                match node
                    .meta_raft
                    .add_learner(id, BasicNode { addr: address }, false)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(learner = id, "node joined the metadata group as a learner")
                    }
                    Err(error) => {
                        tracing::debug!(learner = id, %error, "adding metadata learner failed")
                    }
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            changed = leader_changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Starts the shard groups the catalogue places on this node and removes the ones it dropped.
async fn reconcile_groups(node: Arc<Node>) {
    let mut changes = node.meta.changes();
    if let Err(error) = remove_deleted_groups(&node).await {
        tracing::error!(%error, "removing data of deleted streams failed");
    }
    loop {
        if let Err(error) = reconcile_once(&node).await {
            tracing::error!(%error, "reconciling shard groups failed");
        }
        // Also retry now and then: a group that failed to start is not left down until the
        // catalogue next changes.
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
        }
    }
}

/// Deletes what this node still stores of streams deleted while it was down.
async fn remove_deleted_groups(node: &Arc<Node>) -> anyhow::Result<()> {
    let store = node.store.clone();
    let on_disk = tokio::task::spawn_blocking(move || store.groups_on_disk()).await??;
    for group in node.meta.read(|state| state.deleted_groups(on_disk)) {
        tracing::info!(%group, "removing the data of a deleted stream's shard");
        let store = node.store.clone();
        tokio::task::spawn_blocking(move || store.delete_group(group)).await??;
    }
    Ok(())
}

async fn reconcile_once(node: &Arc<Node>) -> anyhow::Result<()> {
    let state = node.meta.snapshot();
    let wanted: HashMap<GroupId, (tributary_types::StreamName, ShardMeta)> = state
        .groups_of(node.id())
        .map(|(stream, shard)| (shard.group, (stream.name.clone(), shard.clone())))
        .collect();
    for (group, (stream, shard)) in &wanted {
        if node.groups.get(*group).is_some() {
            continue;
        }
        let members: BTreeMap<NodeId, BasicNode> = shard
            .replicas
            .iter()
            .filter_map(|id| {
                state.nodes.get(id).map(|info| {
                    (
                        *id,
                        BasicNode {
                            addr: info.address.clone(),
                        },
                    )
                })
            })
            .collect();
        start_group(node, stream.clone(), shard, members).await?;
    }
    for group in node.groups.ids() {
        if wanted.contains_key(&group) {
            continue;
        }
        if let Some(removed) = node.groups.remove(group) {
            let stream_lives = state
                .streams
                .get(&removed.stream)
                .is_some_and(|stream| stream.status != crate::meta::StreamStatus::Deleting);
            if stream_lives {
                tracing::info!(group = %group, stream = %removed.stream, shard = %removed.shard, "removing the data of an expired shard");
            } else {
                tracing::info!(group = %group, stream = %removed.stream, shard = %removed.shard, "removing the data of a deleted stream's shard");
            }
            removed.raft.shutdown().await.ok();
            let store = node.store.clone();
            tokio::task::spawn_blocking(move || store.delete_group(group)).await??;
        }
    }
    Ok(())
}

async fn start_group(
    node: &Arc<Node>,
    stream: tributary_types::StreamName,
    shard: &ShardMeta,
    members: BTreeMap<NodeId, BasicNode>,
) -> anyhow::Result<()> {
    let (machine, tip) = ShardMachine::open(node.store.clone(), shard.group, shard.shard_id)?;
    let raft = ShardRaft::new(
        node.id(),
        raft_config(&node.config.cluster_name),
        NetworkFactory {
            router: node.router.clone(),
            group: shard.group,
        },
        LogStore::new(node.store.clone(), shard.group),
        machine,
    )
    .await?;
    // The preferred leader alone initializes the group, so it wins the first election and leaders
    // stay spread the way placement chose.
    // A replica being moved here is a learner: the shard's leader adds it; it never initializes.
    let voter = shard.replicas.contains(&node.id());
    if voter && members.len() == shard.replicas.len() && !raft.is_initialized().await? {
        if shard.replicas.first() == Some(&node.id()) {
            initialize_group(&raft, shard.group, members).await;
        } else {
            // Were the preferred leader down when the stream was created, nobody would form the
            // group. A replica that has heard from no leader after a grace period initializes it
            // with the same membership (safe: identical initial configurations, one election).
            let (raft, group) = (raft.clone(), shard.group);
            tokio::spawn(async move {
                tokio::time::sleep(INITIALIZE_FALLBACK_AFTER).await;
                if matches!(raft.is_initialized().await, Ok(false)) {
                    tracing::info!(%group, "preferred leader silent: initializing the shard group here");
                    initialize_group(&raft, group, members).await;
                }
            });
        }
    }
    tracing::info!(group = %shard.group, %stream, shard = %shard.shard_id, "shard group started");
    node.groups.insert(Arc::new(ShardGroup {
        group: shard.group,
        stream,
        shard: shard.shard_id,
        raft,
        tip,
        limiter: crate::limits::ShardLimiter::new(node.config.shard_limits),
        meter: crate::meter::WriteMeter::new(node.config.scaling_window),
    }));
    Ok(())
}

/// Initializes a new shard group and campaigns at once rather than after an election timeout,
/// so a new stream takes writes sooner. The campaign starts with a pre-vote: a replica that comes
/// back to a group formed without it must not depose the working leader.
async fn initialize_group(raft: &ShardRaft, group: GroupId, members: BTreeMap<NodeId, BasicNode>) {
    match raft.initialize(members).await {
        Ok(()) => {
            if let Err(error) = raft.trigger().elect(true).await {
                tracing::warn!(%group, %error, "could not start the first election");
            }
        }
        Err(error) => tracing::debug!(%group, %error, "shard group already initialized"),
    }
}

/// The other voter whose log matches the leader's furthest, the one that can take over at once.
pub(crate) fn most_caught_up_voter<C, SM>(
    raft: &openraft::Raft<C, SM>,
    me: NodeId,
) -> Option<NodeId>
where
    C: openraft::RaftTypeConfig<NodeId = NodeId>,
    SM: openraft::storage::RaftStateMachine<C>,
{
    let metrics = raft.metrics().borrow_watched().clone();
    let matched = |id: &NodeId| {
        metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|log_id| log_id.index())
    };
    raft.voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| matched(id))
}

/// Moves leadership of every shard this node leads to another voter, waiting a bounded time.
async fn hand_off_leadership(node: &Arc<Node>) {
    let deadline = tokio::time::Instant::now() + LEADERSHIP_HANDOFF_TIMEOUT;
    let led = node.groups.led_by(node.id());
    for group in &led {
        if let Some(target) = most_caught_up_voter(&group.raft, node.id())
            && let Err(error) = group.raft.trigger().transfer_leader(target).await
        {
            tracing::warn!(group = %group.group, %error, "leadership transfer failed");
        }
    }
    if node.meta_raft.metrics().borrow_watched().current_leader == Some(node.id())
        && let Some(target) = most_caught_up_voter(&node.meta_raft, node.id())
    {
        node.meta_raft.trigger().transfer_leader(target).await.ok();
    }
    for group in &led {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = group.raft.wait(Some(remaining));
        let moved = wait
            .metrics(|m| m.current_leader != Some(node.id()), "leadership moved")
            .await;
        if moved.is_err() {
            tracing::warn!(group = %group.group, "leadership did not move before the shutdown deadline");
        }
    }
}

//! `tributary node`: run one node until SIGTERM or Ctrl-C, then stop cleanly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tributary_server::auth::AuthMode;
use tributary_server::auth::admin::read_admin_key_file;
use tributary_server::clients::{
    ClientLimitsConfig, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT,
};
use tributary_server::config::{
    DEFAULT_ADMIN_TIMEOUT_MS, DEFAULT_RETENTION_HOUR_MS, DEFAULT_SCALING_WINDOW_MS,
    DEFAULT_WRITE_TIMEOUT_MS, FaultConfig, FileConfig, KinesisAuthMode, ShardLimits, parse_peers,
    tls_paths,
};
use tributary_server::kinesis::{KinesisAuth, KinesisConfig};
use tributary_server::kinesis_wire::Arns;
use tributary_server::kinesis_wire::arn::{DEFAULT_ACCOUNT_ID, DEFAULT_REGION};
use tributary_server::kinesis_wire::sigv4::Credentials;
use tributary_server::{Node, NodeConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// This node's id (never reuse the id of a node whose data was wiped).
    #[arg(long, env = "TRIBUTARY_ID")]
    id: Option<u64>,
    /// The availability zone this node runs in.
    #[arg(long, env = "TRIBUTARY_AZ")]
    az: Option<String>,
    /// gRPC listen address (public and node-to-node API).
    #[arg(long, env = "TRIBUTARY_LISTEN")]
    listen: Option<String>,
    /// Address other nodes and clients use for this node (default: --listen).
    #[arg(long, env = "TRIBUTARY_ADVERTISE")]
    advertise: Option<String>,
    /// Where this node keeps its data.
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The initial metadata voters, id=host:port,... (ignored once the data dir is initialized).
    #[arg(long, env = "TRIBUTARY_PEERS")]
    peers: Option<String>,
    /// Join a running cluster through any of its nodes (host:port) instead of --peers. The
    /// node id must be new to the cluster (never the id of a removed or wiped node).
    #[arg(long, env = "TRIBUTARY_JOIN")]
    join: Option<String>,
    /// Serve GET /health and GET /metrics here.
    #[arg(long, env = "TRIBUTARY_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Per-shard throughput limits: kinesis (default; writes 1 MiB/s or 1,000 records/s, reads
    /// 2 MiB/s and 5 GetRecords/s per shard) or off (benchmarks). Give every node the same value.
    #[arg(long, env = "TRIBUTARY_SHARD_LIMITS", value_enum)]
    shard_limits: Option<ShardLimits>,
    /// FOR TESTS ONLY: the length of one retention hour in milliseconds (default 3600000), so
    /// retention can be exercised in seconds. Retention bounds stay 24..8760 "hours".
    #[arg(long, env = "TRIBUTARY_RETENTION_HOUR_MS")]
    retention_hour_ms: Option<u64>,
    /// How long an ON_DEMAND shard must stay above 50% of its write limit before it is split, and
    /// an adjacent pair below 25% together before it is merged (default 60000; at least 1000).
    #[arg(long, env = "TRIBUTARY_SCALING_WINDOW_MS")]
    scaling_window_ms: Option<u64>,
    /// The AWS region this cluster's stream ARNs name and SigV4 signatures must be scoped to
    /// (default us-east-1). Give every node the same value.
    #[arg(long, env = "TRIBUTARY_REGION")]
    region: Option<String>,
    /// The 12-digit account id stream ARNs name (default 000000000000). Give every node the same.
    #[arg(long, env = "TRIBUTARY_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Serve the Kinesis-compatible HTTP API (AWS SDKs, AWS CLI, KCL) here. Default: off.
    #[arg(long, env = "TRIBUTARY_KINESIS_LISTEN")]
    kinesis_listen: Option<String>,
    /// How the Kinesis API authenticates requests: sigv4 (default; needs access keys) or none
    /// (local development only: anyone who reaches the port may do anything).
    #[arg(long, env = "TRIBUTARY_KINESIS_AUTH", value_enum)]
    kinesis_auth: Option<KinesisAuthMode>,
    /// An access key the Kinesis API accepts, as ACCESS_KEY_ID:SECRET_ACCESS_KEY (repeat the
    /// flag, or separate keys with commas in the variable).
    #[arg(
        long = "kinesis-access-key",
        env = "TRIBUTARY_KINESIS_ACCESS_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    kinesis_access_keys: Vec<String>,
    /// A file of access keys: AWS shared-credentials format (`~/.aws/credentials` works) or one
    /// ACCESS_KEY_ID:SECRET_ACCESS_KEY per line.
    #[arg(long, env = "TRIBUTARY_KINESIS_CREDENTIALS_FILE")]
    kinesis_credentials_file: Option<PathBuf>,
    /// This node's certificate (PEM; `tributary certs create` makes one per node). With
    /// --tls-key and --tls-ca, the gRPC port and the Kinesis endpoint serve TLS only and nodes
    /// authenticate each other with their certificates. Changed files are picked up within 5 s.
    #[arg(long, env = "TRIBUTARY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "TRIBUTARY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): other nodes' certificates must be signed by it.
    #[arg(long, env = "TRIBUTARY_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// none (default: anyone who reaches the node may do anything) or required (every call is
    /// signed with an access key and allowed by the caller's policies; needs TLS and
    /// --key-ring). Give every node the same value.
    #[arg(long, env = "TRIBUTARY_AUTH", value_enum)]
    auth: Option<AuthMode>,
    /// The key ring (named AES-256 keys; `tributary keys create` makes one), the same file on
    /// every node. Access keys' secrets and encrypted streams' records are stored sealed with
    /// it. Re-read within 5 s when the file changes (`tributary keys rotate`).
    #[arg(long, env = "TRIBUTARY_KEY_RING")]
    key_ring: Option<PathBuf>,
    /// The first administrator's access key, ACCESS_KEY_ID:SECRET (or the AWS credentials
    /// format): with --auth required, the user `admin` with the AdministratorAccess policy is
    /// made with it unless a user `admin` exists.
    #[arg(long, env = "TRIBUTARY_ADMIN_KEY_FILE")]
    admin_key_file: Option<PathBuf>,
    /// Connections this node accepts in all, on the gRPC port and the Kinesis endpoint together
    /// (default 10000); those over it are closed at once.
    #[arg(long, env = "TRIBUTARY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections one client (remote IP address) may hold on this node (default 1000).
    #[arg(long, env = "TRIBUTARY_MAX_CONNECTIONS_PER_CLIENT")]
    max_connections_per_client: Option<usize>,
    /// Live SubscribeToShard subscriptions one client (remote IP address) may hold on this node
    /// (default 1000); more get LIMIT_EXCEEDED.
    #[arg(long, env = "TRIBUTARY_MAX_SUBSCRIPTIONS_PER_CLIENT")]
    max_subscriptions_per_client: Option<usize>,
    /// A TOML file with any of these settings (flags and TRIBUTARY_* variables win).
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    config: Option<PathBuf>,
    /// FOR CHAOS TESTS ONLY: accept `PUT /faults` on the HTTP port, which cuts this node off
    /// from chosen peers (a network partition) until healed.
    #[arg(long)]
    fault_injection: bool,
    /// FOR CHAOS TESTS ONLY (with --fault-injection): peer ids cut off from the start, e.g. 2,3.
    #[arg(long, value_delimiter = ',', requires = "fault_injection")]
    fault_cut: Vec<u64>,
    /// FOR CHAOS TESTS ONLY, BREAKS DURABILITY (with --fault-injection): leaders acknowledge puts
    /// before they commit. Shows that the chaos checker catches lost writes.
    #[arg(long, requires = "fault_injection")]
    fault_ack_before_commit: bool,
}

fn build_config(args: NodeArgs) -> anyhow::Result<NodeConfig> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let id = args.id.or(file.id).context("--id is required")?;
    let az = args.az.or(file.az).context("--az is required")?;
    let listen_text = args
        .listen
        .or(file.listen)
        .context("--listen is required")?;
    let listen = listen_text
        .parse()
        .with_context(|| format!("--listen {listen_text} is not host:port"))?;
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("--data-dir is required")?;
    let peers = parse_peers(&args.peers.or(file.peers).unwrap_or_default())?;
    let http_listen_opt = match args.http_listen.or(file.http_listen) {
        Some(text) => Some(
            text.parse()
                .with_context(|| format!("--http-listen {text} is not host:port"))?,
        ),
        None => None,
    };
    let kinesis_opt = match args.kinesis_listen.or(file.kinesis_listen) {
        Some(text) => {
            let listen = text
                .parse()
                .with_context(|| format!("--kinesis-listen {text} is not host:port"))?;
            let auth = match args
                .kinesis_auth
                .or(file.kinesis_auth)
                .unwrap_or(KinesisAuthMode::Sigv4)
            {
                KinesisAuthMode::None => KinesisAuth::None,
                KinesisAuthMode::Sigv4 => {
                    let mut credentials = Credentials::default();
                    for pair in &args.kinesis_access_keys {
                        credentials
                            .insert_pair(pair)
                            .map_err(|e| anyhow::anyhow!("--kinesis-access-key: {e}"))?;
                    }
                    if let Some(path) = args
                        .kinesis_credentials_file
                        .or(file.kinesis_credentials_file)
                    {
                        credentials
                            .load_file(&path)
                            .map_err(|e| anyhow::anyhow!("--kinesis-credentials-file {e}"))?;
                    }
                    KinesisAuth::SigV4(credentials)
                }
            };
            Some(KinesisConfig { listen, auth })
        }
        None => None,
    };
    let arns = Arns {
        region: args
            .region
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_string()),
        account_id: args
            .account_id
            .or(file.account_id)
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string()),
    };
    let config = NodeConfig {
        id,
        az,
        listen,
        advertise: args.advertise.or(file.advertise).unwrap_or(listen_text),
        data_dir,
        peers,
        join_opt: args.join.or(file.join),
        http_listen_opt,
        cluster_name: file.cluster_name.unwrap_or_else(|| "tributary".to_string()),
        write_timeout: Duration::from_millis(
            file.write_timeout_ms.unwrap_or(DEFAULT_WRITE_TIMEOUT_MS),
        ),
        admin_timeout: Duration::from_millis(
            file.admin_timeout_ms.unwrap_or(DEFAULT_ADMIN_TIMEOUT_MS),
        ),
        shard_limits: args
            .shard_limits
            .or(file.shard_limits)
            .unwrap_or(ShardLimits::Kinesis),
        retention_hour_ms: args
            .retention_hour_ms
            .or(file.retention_hour_ms)
            .unwrap_or(DEFAULT_RETENTION_HOUR_MS),
        scaling_window: Duration::from_millis(
            args.scaling_window_ms
                .or(file.scaling_window_ms)
                .unwrap_or(DEFAULT_SCALING_WINDOW_MS),
        ),
        faults_opt: args.fault_injection.then(|| FaultConfig {
            cut: args.fault_cut.iter().copied().collect(),
            ack_before_commit: args.fault_ack_before_commit,
        }),
        arns,
        kinesis_opt,
        auth_mode: args.auth.or(file.auth).unwrap_or(AuthMode::None),
        key_ring_opt: args.key_ring.or(file.key_ring),
        admin_key_opt: match args.admin_key_file.or(file.admin_key_file) {
            Some(path) => Some(read_admin_key_file(&path)?),
            None => None,
        },
        tls_opt: tls_paths(
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
            args.tls_ca.or(file.tls_ca),
        )?,
        client_limits: ClientLimitsConfig {
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_connections_per_client: args
                .max_connections_per_client
                .or(file.max_connections_per_client)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
            max_subscriptions_per_client: args
                .max_subscriptions_per_client
                .or(file.max_subscriptions_per_client)
                .unwrap_or(DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT),
        },
    };
    config.validate()?;
    Ok(config)
}

pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = build_config(args)?;
    let running = Node::start(config).await?;
    if let Some(address) = running.http_address_opt {
        tracing::info!(%address, "serving /health and /metrics");
    }
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

//! Node configuration: flags, an optional TOML file (`--config`) and `TRIBUTARY_` environment
//! variables, validated into one typed [`NodeConfig`]. Every key and its default is documented in
//! `cluster/node.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tributary_types::NodeId;

/// How long a put may wait for a shard's quorum (including a leader election) before it fails
/// with WRITE_QUORUM_UNAVAILABLE.
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 3_000;
/// How long an admin operation may wait for the metadata group's quorum.
pub const DEFAULT_ADMIN_TIMEOUT_MS: u64 = 3_000;
/// The length of one retention hour: an hour, unless a test shortens time (`--retention-hour-ms`).
pub const DEFAULT_RETENTION_HOUR_MS: u64 = 3_600_000;

/// How long an ON_DEMAND shard must stay hot (or a pair cold) before it is split (merged).
pub const DEFAULT_SCALING_WINDOW_MS: u64 = 60_000;

/// Per-shard throughput limits, enforced by each shard's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShardLimits {
    /// Kinesis' limits: writes 1 MiB/s or 1,000 records/s; reads 2 MiB/s and 5 GetRecords/s.
    Kinesis,
    /// No limits (benchmarks).
    Off,
}

/// How the Kinesis endpoint authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KinesisAuthMode {
    /// AWS Signature Version 4 against the configured access keys (the default).
    Sigv4,
    /// No authentication, for local development only.
    None,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub az: String,
    pub listen: SocketAddr,
    /// The address peers and clients use to reach this node (defaults to `listen`).
    pub advertise: String,
    pub data_dir: PathBuf,
    /// The initial metadata voters, used only when the data dir is new.
    pub peers: BTreeMap<NodeId, String>,
    /// Any node of a running cluster, for a new node joining it (instead of `peers`): the node
    /// learns the cluster's members from it when its data dir is new.
    pub join_opt: Option<String>,
    pub http_listen_opt: Option<SocketAddr>,
    pub cluster_name: String,
    pub write_timeout: Duration,
    pub admin_timeout: Duration,
    pub shard_limits: ShardLimits,
    /// How long a "retention hour" lasts; shortened only by tests, never by users.
    pub retention_hour_ms: u64,
    /// The on-demand scaling window.
    pub scaling_window: Duration,
    /// Fault injection for the chaos suite (`--fault-injection`); `None` in every real deployment.
    pub faults_opt: Option<FaultConfig>,
    /// The region and account stream ARNs name (`--region`, `--account-id`).
    pub arns: tributary_kinesis::Arns,
    /// The Kinesis-compatible HTTP endpoint (`--kinesis-listen`), when served.
    pub kinesis_opt: Option<crate::kinesis::KinesisConfig>,
    /// TLS on the gRPC port and the Kinesis endpoint, mutual TLS between nodes
    /// (`--tls-cert`, `--tls-key`, `--tls-ca`); `None` serves plain text.
    pub tls_opt: Option<crate::tls::TlsPaths>,
    /// Whether calls must carry credentials allowed by the caller's policies (`--auth`).
    pub auth_mode: crate::auth::AuthMode,
    /// The key ring file (`--key-ring`): seals access keys' secrets and encrypted streams' records.
    pub key_ring_opt: Option<PathBuf>,
    /// The first administrator's access key (`--admin-key-file`): id and secret.
    pub admin_key_opt: Option<(String, String)>,
    /// What one client may hold of this node (`--max-connections`, ...).
    pub client_limits: crate::clients::ClientLimitsConfig,
}

/// Faults a chaos test may inject into a node. Flags only, never in the config file.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Peers cut off from this node from the start (a partition that outlived a restart).
    pub cut: BTreeSet<NodeId>,
    /// DELIBERATELY BROKEN: a leader acknowledges puts before they commit, with numbers it
    /// guesses. Exists only so the chaos checker can show that it catches lost writes.
    pub ack_before_commit: bool,
}

/// The optional TOML file; every field may be omitted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<NodeId>,
    pub az: Option<String>,
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub peers: Option<String>,
    pub join: Option<String>,
    pub http_listen: Option<String>,
    pub cluster_name: Option<String>,
    pub write_timeout_ms: Option<u64>,
    pub admin_timeout_ms: Option<u64>,
    pub shard_limits: Option<ShardLimits>,
    pub retention_hour_ms: Option<u64>,
    pub scaling_window_ms: Option<u64>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub kinesis_listen: Option<String>,
    pub kinesis_auth: Option<KinesisAuthMode>,
    pub kinesis_credentials_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub auth: Option<crate::auth::AuthMode>,
    pub key_ring: Option<PathBuf>,
    pub admin_key_file: Option<PathBuf>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub max_subscriptions_per_client: Option<usize>,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The TLS files, given all three or none.
pub fn tls_paths(
    cert_opt: Option<PathBuf>,
    key_opt: Option<PathBuf>,
    ca_opt: Option<PathBuf>,
) -> anyhow::Result<Option<crate::tls::TlsPaths>> {
    match (cert_opt, key_opt, ca_opt) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(crate::tls::TlsPaths { cert, key, ca })),
        (None, None, None) => Ok(None),
        _ => bail!(
            "TLS needs all three of --tls-cert, --tls-key and --tls-ca (`tributary certs create` \
             makes them)"
        ),
    }
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(text: &str) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let mut peers = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let Some((id, address)) = item.split_once('=') else {
            bail!("peer '{item}' is not of the form ID=HOST:PORT");
        };
        let id: NodeId = id
            .trim()
            .parse()
            .with_context(|| format!("peer id in '{item}'"))?;
        if address.trim().is_empty() {
            bail!("peer '{item}' has no address");
        }
        if peers.insert(id, address.trim().to_string()).is_some() {
            bail!("peer id {id} is listed twice");
        }
    }
    Ok(peers)
}

impl NodeConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.az.trim().is_empty() {
            bail!("--az must name an availability zone");
        }
        if self.write_timeout.is_zero() || self.admin_timeout.is_zero() {
            bail!("timeouts must be positive");
        }
        if self.scaling_window < Duration::from_secs(1) {
            bail!("--scaling-window-ms must be at least 1000");
        }
        if self.join_opt.is_some() && !self.peers.is_empty() {
            bail!("--join and --peers exclude each other: a joining node learns its peers");
        }
        if self.retention_hour_ms == 0 {
            bail!("--retention-hour-ms must be positive");
        }
        let limits = &self.client_limits;
        if limits.max_connections == 0
            || limits.max_connections_per_client == 0
            || limits.max_subscriptions_per_client == 0
        {
            bail!(
                "--max-connections, --max-connections-per-client and --max-subscriptions-per-client must be positive"
            );
        }
        validate_arns(&self.arns)?;
        if self.auth_mode == crate::auth::AuthMode::Required {
            if self.tls_opt.is_none() {
                bail!(
                    "--auth required needs TLS (--tls-cert, --tls-key, --tls-ca): signatures, \
                     secrets and node identities depend on it"
                );
            }
            if self.key_ring_opt.is_none() {
                bail!(
                    "--auth required needs a key ring (--key-ring FILE, the same on every node; \
                     `tributary keys create` makes one): access keys are stored sealed with it"
                );
            }
            if let Some(kinesis) = &self.kinesis_opt
                && let crate::kinesis::KinesisAuth::SigV4(credentials) = &kinesis.auth
                && !credentials.is_empty()
            {
                bail!(
                    "with --auth required the Kinesis endpoint checks the cluster's users: \
                     drop --kinesis-access-key/--kinesis-credentials-file and use `tributary user create`"
                );
            }
            if let Some(kinesis) = &self.kinesis_opt
                && matches!(kinesis.auth, crate::kinesis::KinesisAuth::None)
            {
                bail!("--auth required and --kinesis-auth none contradict each other");
            }
        }
        if let Some(kinesis) = &self.kinesis_opt
            && let crate::kinesis::KinesisAuth::SigV4(credentials) = &kinesis.auth
            && credentials.is_empty()
            && self.auth_mode == crate::auth::AuthMode::None
        {
            bail!(
                "the Kinesis endpoint verifies SigV4 signatures but no access key is configured: \
                 give --kinesis-access-key ACCESS_KEY_ID:SECRET or --kinesis-credentials-file FILE, \
                 or --kinesis-auth none for local development"
            );
        }
        Ok(())
    }
}

/// Regions look like `us-east-1`; accounts are 12 digits, as in AWS ARNs.
fn validate_arns(arns: &tributary_kinesis::Arns) -> anyhow::Result<()> {
    let region_ok = !arns.region.is_empty()
        && arns.region.len() <= 32
        && arns
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        bail!(
            "--region '{}' must be lower-case letters, digits and '-', like us-east-1",
            arns.region
        );
    }
    if arns.account_id.len() != 12 || !arns.account_id.chars().all(|c| c.is_ascii_digit()) {
        bail!("--account-id '{}' must be 12 digits", arns.account_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cluster/node.toml documents every setting: each `# key = value` line, uncommented,
    /// must be a key this file format knows (and of the right type).
    #[test]
    fn the_documented_config_file_parses() {
        let text = include_str!("../../../cluster/node.toml");
        let uncommented: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let file: FileConfig = toml::from_str(&uncommented).expect("every documented key parses");
        assert_eq!(file.id, Some(1));
        assert!(file.tls_ca.is_some() && file.join.is_some() && file.kinesis_auth.is_some());
    }

    #[test]
    fn peers_parse_and_reject_garbage() {
        let peers = parse_peers("1=127.0.0.1:7101, 2=127.0.0.1:7102").unwrap();
        assert_eq!(peers[&2], "127.0.0.1:7102");
        assert!(parse_peers("1").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("1=a:1,1=b:2").is_err());
    }
}

//! `tributary dev`: a local cluster of child `tributary node` processes spread over AZs, ready
//! when every node is alive and the metadata group has a leader; Ctrl-C or SIGTERM stops them all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tributary_client::{AccessKey, Client, ClientOptions};
use tributary_server::config::KinesisAuthMode;
use tributary_server::keyring::DEFAULT_KEY;
use tributary_server::kinesis_wire::arn::DEFAULT_REGION;
use tributary_server::meta::auth::ADMIN_USER;

use crate::certs;

/// How long to wait for the cluster to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// With --secure: the key ring and the admin's access key, in the data dir.
const KEY_RING_FILE: &str = "keys.toml";
const ADMIN_KEY_FILE: &str = "admin-key";
/// HTTP (health/metrics) ports are the gRPC ports plus this offset.
const HTTP_PORT_OFFSET: u16 = 100;

#[derive(clap::Args)]
pub struct DevArgs {
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    #[arg(long, default_value_t = 3)]
    azs: u16,
    /// Node i listens on base-port + i - 1 (gRPC) and base-port + 100 + i - 1 (HTTP).
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
    #[arg(long, default_value = "./tributary-data")]
    data_dir: PathBuf,
    /// Per-shard throughput limits of every node: kinesis or off (benchmarks).
    #[arg(long, value_enum, default_value = "kinesis")]
    shard_limits: tributary_server::config::ShardLimits,
    /// Node i serves the Kinesis-compatible HTTP API on kinesis-port + i - 1 (0 turns it off).
    #[arg(long, default_value_t = tributary_server::kinesis::DEV_PORT)]
    kinesis_port: u16,
    /// How the Kinesis API authenticates: none (the default here, for local development) or
    /// sigv4 (then give --kinesis-access-key).
    #[arg(long, value_enum, default_value = "none")]
    kinesis_auth: KinesisAuthMode,
    /// An access key for --kinesis-auth sigv4, as ACCESS_KEY_ID:SECRET_ACCESS_KEY.
    #[arg(long = "kinesis-access-key")]
    kinesis_access_keys: Vec<String>,
    /// TLS and auth: a CA and node certificates in DATA_DIR/certs, a key ring and an admin
    /// access key in DATA_DIR (all made on first use, kept after); TLS on the gRPC ports and
    /// Kinesis endpoints, mutual TLS between the nodes, --auth required (SigV4 on the Kinesis
    /// endpoint). Prints the admin's access key.
    #[arg(long)]
    secure: bool,
}

pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    if args.nodes == 0 || args.azs == 0 {
        bail!("--nodes and --azs must be at least 1");
    }
    let binary = std::env::current_exe().context("locating the tributary binary")?;
    let endpoints: Vec<String> = (0..args.nodes)
        .map(|i| format!("127.0.0.1:{}", args.base_port + i))
        .collect();
    let peers: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{}={e}", i + 1))
        .collect();
    let certs_opt = if args.secure {
        Some(ensure_certs(
            &args.data_dir.join("certs"),
            u64::from(args.nodes),
        )?)
    } else {
        None
    };
    let admin_opt = if args.secure {
        Some(ensure_auth_files(&args.data_dir)?)
    } else {
        None
    };
    let mut children: Vec<Child> = Vec::new();
    for i in 0..args.nodes {
        let id = u64::from(i) + 1;
        let az = format!("az-{}", i % args.azs + 1);
        let data_dir = args.data_dir.join(format!("node-{id}"));
        let http = format!("127.0.0.1:{}", args.base_port + HTTP_PORT_OFFSET + i);
        let mut command = Command::new(&binary);
        // A client's TRIBUTARY_TLS_CA in this shell is not meant for the nodes: TLS comes from
        // --secure alone.
        for variable in [
            "TRIBUTARY_TLS_CA",
            "TRIBUTARY_TLS_CERT",
            "TRIBUTARY_TLS_KEY",
        ] {
            command.env_remove(variable);
        }
        if !args.kinesis_access_keys.is_empty() {
            // Secrets go through the environment, not the command line `ps` shows.
            command.env(
                "TRIBUTARY_KINESIS_ACCESS_KEYS",
                args.kinesis_access_keys.join(","),
            );
        }
        let child = command
            .args([
                "node",
                "--id",
                &id.to_string(),
                "--az",
                &az,
                "--listen",
                &endpoints[i as usize],
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--peers", &peers.join(","), "--http-listen", &http])
            .args(["--shard-limits", limits_flag(args.shard_limits)])
            .args(kinesis_flags(&args, i))
            .args(tls_flags(certs_opt.as_deref(), id))
            .args(auth_flags(&args.data_dir, admin_opt.is_some()))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        println!(
            "node {id}: az {az}, grpc {}, http {http}, data {}",
            endpoints[i as usize],
            data_dir.display()
        );
        children.push(child);
    }

    let mut options = match &certs_opt {
        Some(dir) => ClientOptions::tls_ca_file(dir.join(certs::CA_CERT_FILE))?,
        None => ClientOptions::default(),
    };
    options.access_key_opt = admin_opt.clone();
    let client = Client::with_options(&endpoints, &options)?;
    let scheme = if args.secure { "https" } else { "http" };
    wait_until_ready(&client, usize::from(args.nodes)).await?;
    println!("endpoints: {}", endpoints.join(","));
    if args.kinesis_port != 0 {
        let auth = match (args.kinesis_auth, args.secure) {
            (_, true) => "SigV4 against the cluster's users",
            (KinesisAuthMode::None, false) => "no authentication",
            (KinesisAuthMode::Sigv4, false) => "SigV4",
        };
        println!(
            "kinesis endpoint: {scheme}://127.0.0.1:{} (every node: ports {}..{}; region {DEFAULT_REGION}, {auth})",
            args.kinesis_port,
            args.kinesis_port,
            args.kinesis_port + args.nodes - 1
        );
        println!(
            "  aws kinesis list-streams --endpoint-url {scheme}://127.0.0.1:{} --region {DEFAULT_REGION}{}",
            args.kinesis_port,
            match &certs_opt {
                Some(dir) => format!(" --ca-bundle {}", dir.join(certs::CA_CERT_FILE).display()),
                None => String::new(),
            }
        );
    }
    println!("export TRIBUTARY_ENDPOINT={}", endpoints.join(","));
    if let Some(dir) = &certs_opt {
        println!(
            "export TRIBUTARY_TLS_CA={}",
            dir.join(certs::CA_CERT_FILE).display()
        );
    }
    if let Some(admin) = &admin_opt {
        println!(
            "export TRIBUTARY_ACCESS_KEY_ID={} TRIBUTARY_SECRET_ACCESS_KEY={}",
            admin.access_key_id, admin.secret_access_key
        );
        println!(
            "  (the admin; AWS tools: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY with the same values)"
        );
    }
    if let (Some(dir), Some(_)) = (&certs_opt, &admin_opt) {
        println!(
            "  or, instead of the access key: export TRIBUTARY_CLIENT_CERT={} TRIBUTARY_CLIENT_KEY={}",
            dir.join(certs::client_cert_file(ADMIN_USER)).display(),
            dir.join(certs::client_key_file(ADMIN_USER)).display()
        );
    }
    println!(
        "tributary dev ready: {} nodes in {} AZs (Ctrl-C to stop)",
        args.nodes,
        args.azs.min(args.nodes)
    );

    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("stopping {} nodes", children.len());
    for child in &children {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for mut child in children {
        if tokio::time::timeout(STOP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `tributary node` flags of node `index` (from 0) for the Kinesis endpoint.
fn kinesis_flags(args: &DevArgs, index: u16) -> Vec<String> {
    if args.kinesis_port == 0 {
        return Vec::new();
    }
    vec![
        "--kinesis-listen".to_string(),
        format!("127.0.0.1:{}", args.kinesis_port + index),
        "--kinesis-auth".to_string(),
        // --secure: SigV4 against the cluster's users.
        match (args.kinesis_auth, args.secure) {
            (KinesisAuthMode::None, false) => "none".to_string(),
            _ => "sigv4".to_string(),
        },
    ]
}

/// The CA and node certificates in `dir`: made when there is no CA yet; node certificates
/// missing (more --nodes than last time) are added.
fn ensure_certs(dir: &Path, nodes: u64) -> anyhow::Result<PathBuf> {
    if !dir.join(certs::CA_KEY_FILE).exists() {
        certs::create(
            dir,
            nodes,
            &[],
            &[ADMIN_USER.to_string()],
            certs::DEFAULT_NODE_DAYS,
        )?;
        println!(
            "made a CA, {nodes} node certificates and a client certificate for {ADMIN_USER} in {}",
            dir.display()
        );
        return Ok(dir.to_path_buf());
    }
    let ca = certs::Ca::load(dir)?;
    for id in 1..=nodes {
        if !dir.join(certs::node_cert_file(id)).exists() {
            certs::issue_node(&ca, dir, id, &[], certs::DEFAULT_NODE_DAYS, false)?;
        }
    }
    if !dir.join(certs::client_cert_file(ADMIN_USER)).exists() {
        certs::issue_client(&ca, dir, ADMIN_USER, certs::DEFAULT_CLIENT_DAYS, false)?;
    }
    Ok(dir.to_path_buf())
}

/// The key ring and the admin's access key in `data_dir`, made when missing. Returns the key.
fn ensure_auth_files(data_dir: &Path) -> anyhow::Result<AccessKey> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key_ring = data_dir.join(KEY_RING_FILE);
    if !key_ring.exists() {
        tributary_server::keyring::create_file(&key_ring, &[DEFAULT_KEY.to_string()])?;
    }
    let admin_file = data_dir.join(ADMIN_KEY_FILE);
    if !admin_file.exists() {
        let key = tributary_server::auth::admin::new_key()?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&admin_file)
            .with_context(|| format!("writing {}", admin_file.display()))?;
        writeln!(file, "{}:{}", key.access_key_id, key.secret_access_key)?;
    }
    let (access_key_id, secret_access_key) =
        tributary_server::auth::admin::read_admin_key_file(&admin_file)?;
    Ok(AccessKey {
        access_key_id,
        secret_access_key,
    })
}

/// `--auth required` with the key ring and admin key of `data_dir`.
fn auth_flags(data_dir: &Path, secure: bool) -> Vec<String> {
    if !secure {
        return Vec::new();
    }
    vec![
        "--auth".to_string(),
        "required".to_string(),
        "--key-ring".to_string(),
        data_dir.join(KEY_RING_FILE).display().to_string(),
        "--admin-key-file".to_string(),
        data_dir.join(ADMIN_KEY_FILE).display().to_string(),
    ]
}

/// The `tributary node` flags of node `id` for TLS.
fn tls_flags(certs_opt: Option<&Path>, id: u64) -> Vec<String> {
    let Some(dir) = certs_opt else {
        return Vec::new();
    };
    let path = |name: String| dir.join(name).display().to_string();
    vec![
        "--tls-cert".to_string(),
        path(certs::node_cert_file(id)),
        "--tls-key".to_string(),
        path(certs::node_key_file(id)),
        "--tls-ca".to_string(),
        path(certs::CA_CERT_FILE.to_string()),
    ]
}

fn limits_flag(limits: tributary_server::config::ShardLimits) -> &'static str {
    match limits {
        tributary_server::config::ShardLimits::Kinesis => "kinesis",
        tributary_server::config::ShardLimits::Off => "off",
    }
}

async fn wait_until_ready(client: &Client, nodes: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match client.cluster_status().await {
            Ok(status)
                if status.metadata_leader.is_some()
                    && status.nodes.len() == nodes
                    && status.nodes.iter().all(|n| n.alive) =>
            {
                return Ok(());
            }
            Ok(status) => {
                last = format!(
                    "{} of {nodes} nodes registered, metadata leader {:?}",
                    status.nodes.len(),
                    status.metadata_leader
                )
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the cluster did not become ready within {READY_TIMEOUT:?}: {last}")
}

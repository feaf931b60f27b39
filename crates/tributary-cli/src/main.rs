//! `tributary`: run a node (`node`) or a local cluster (`dev`), and talk to a cluster (`cluster`,
//! `stream`, `shards`, `consumer`, `put`, `get`).

mod access;
mod certs;
mod consume;
mod consumer;
mod dev;
mod get;
mod health;
mod node;
mod output;
mod put;
mod stream;
mod subscribe;
mod table;
mod time;

use clap::{Parser, Subcommand};
use tributary_client::{
    AccessKey, Client, ClientError, ClientOptions, DEFAULT_ENDPOINT, TlsIdentity,
};

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "A Raft-replicated streaming ingestion cluster with Kinesis semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags every client command takes.
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// Node endpoints to try in order: host:port[,host:port...]
    #[arg(long, env = "TRIBUTARY_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    endpoint: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Talk TLS to the nodes and verify them against this CA certificate (PEM), e.g. the
    /// ca.pem of `tributary certs create`.
    #[arg(long, env = "TRIBUTARY_TLS_CA", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Check node certificates against this name instead of the host dialled (a node reached
    /// through a tunnel); `tributary-node` matches every node certificate `certs` makes.
    #[arg(
        long,
        env = "TRIBUTARY_TLS_SERVER_NAME",
        global = true,
        requires = "tls_ca"
    )]
    tls_server_name: Option<String>,
    /// Present this client certificate (PEM, from `tributary certs client`): under
    /// --auth required it authenticates its user, instead of an access key. (Not
    /// TRIBUTARY_TLS_CERT: that is a node's own certificate.)
    #[arg(
        long,
        env = "TRIBUTARY_CLIENT_CERT",
        global = true,
        requires_all = ["tls_ca", "tls_key"]
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "TRIBUTARY_CLIENT_KEY",
        global = true,
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,
    /// The access key id calls are signed with (clusters run with --auth required).
    #[arg(
        long,
        env = "TRIBUTARY_ACCESS_KEY_ID",
        global = true,
        requires = "secret_access_key"
    )]
    access_key_id: Option<String>,
    /// The secret access key that signs calls; it is never sent.
    #[arg(
        long,
        env = "TRIBUTARY_SECRET_ACCESS_KEY",
        global = true,
        hide_env_values = true,
        requires = "access_key_id"
    )]
    secret_access_key: Option<String>,
}

impl ClientArgs {
    pub fn client(&self) -> Result<Client, ClientError> {
        let mut options = match &self.tls_ca {
            Some(path) => ClientOptions::tls_ca_file(path)?,
            None => ClientOptions::default(),
        };
        options.tls_server_name_opt = self.tls_server_name.clone();
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options.tls_identity_opt = Some(TlsIdentity::from_files(cert, key)?);
        }
        options.access_key_opt = self
            .access_key_id
            .clone()
            .zip(self.secret_access_key.clone())
            .map(|(access_key_id, secret_access_key)| AccessKey {
                access_key_id,
                secret_access_key,
            });
        Client::from_list_with(&self.endpoint, &options)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Node(Box<node::NodeArgs>),
    /// Start a local cluster of child node processes and stop it on Ctrl-C.
    Dev(dev::DevArgs),
    /// Make a cluster CA and node certificates for TLS.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Make or rotate the key ring (the keys that seal secrets).
    Keys {
        #[command(subcommand)]
        command: access::KeysCommand,
    },
    /// Users and their access keys (--auth required clusters).
    User {
        #[command(subcommand)]
        command: access::UserCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// IAM-like policies: put, attach to users, detach, list.
    Policy {
        #[command(subcommand)]
        command: access::PolicyCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect the cluster.
    Cluster {
        #[command(subcommand)]
        command: stream::ClusterCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create, list, describe and delete streams.
    Stream {
        #[command(subcommand)]
        command: stream::StreamCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a stream's shards (ListShards), optionally filtered.
    Shards(stream::ShardsArgs),
    /// Register, deregister, describe and list enhanced fan-out consumers.
    Consumer {
        #[command(subcommand)]
        command: consumer::ConsumerCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lease tables: create, list, describe, scan, get, put, delete.
    Table {
        #[command(subcommand)]
        command: table::TableCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Put records: one from the arguments, or one per stdin line as PARTITION_KEY<TAB>DATA.
    Put(put::PutArgs),
    /// Read records as JSON lines.
    Get(get::GetArgs),
    /// Enhanced fan-out: records pushed to a registered consumer, as JSON lines.
    Subscribe(subscribe::SubscribeArgs),
    /// Run a consumer worker (lease tables): prints what it processes, checkpoints, shares
    /// shards with the other workers of its --app.
    Consume(consume::ConsumeArgs),
    /// Ask a node's operations port whether it serves (GET /health): exit 0 if so, for health
    /// checks.
    Health(health::HealthArgs),
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("INTERNAL_FAILURE: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => {
                init_tracing("info,openraft=warn");
                node::run(*args).await
            }
            Command::Dev(args) => {
                init_tracing("info,openraft=warn");
                dev::run(args).await
            }
            Command::Certs { command } => {
                init_tracing("warn");
                certs::run(command)
            }
            Command::Keys { command } => {
                init_tracing("warn");
                access::run_keys(command)
            }
            Command::User { command, client } => {
                init_tracing("warn");
                access::run_user(command, &client).await
            }
            Command::Policy { command, client } => {
                init_tracing("warn");
                access::run_policy(command, &client).await
            }
            Command::Cluster { command, client } => {
                init_tracing("warn");
                stream::run_cluster(command, &client).await
            }
            Command::Stream { command, client } => {
                init_tracing("warn");
                stream::run_stream(command, &client).await
            }
            Command::Shards(args) => {
                init_tracing("warn");
                stream::run_shards(args).await
            }
            Command::Consumer { command, client } => {
                init_tracing("warn");
                consumer::run(command, &client).await
            }
            Command::Table { command, client } => {
                init_tracing("warn");
                table::run(command, &client).await
            }
            Command::Put(args) => {
                init_tracing("warn");
                put::run(args).await
            }
            Command::Get(args) => {
                init_tracing("warn");
                get::run(args).await
            }
            Command::Consume(args) => {
                init_tracing("warn");
                consume::run(args).await
            }
            Command::Subscribe(args) => {
                init_tracing("warn");
                subscribe::run(args).await
            }
            Command::Health(args) => {
                init_tracing("warn");
                health::run(args).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            match error.downcast_ref::<ClientError>() {
                Some(client_error) => {
                    eprintln!("{}: {}", client_error.code(), client_error.message())
                }
                None => eprintln!("error: {error:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

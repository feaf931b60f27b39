//! TLS on a node's gRPC port and Kinesis endpoint (rustls, ring).
//!
//! - A node presents its certificate (`--tls-cert`, `--tls-key`) on both ports.
//! - The gRPC port asks every peer for a certificate signed by the cluster's CA (`--tls-ca`) but
//!   lets clients without one in: SDKs and the CLI only verify the node. The node-to-node service
//!   ([`require_node_certificate`]) then refuses any call that came without a verified
//!   certificate, so a process without one can neither join nor speak Raft.
//! - Nodes dial each other with their own certificate and check the peer's against the CA under
//!   the name [`NODE_SERVER_NAME`], which every node certificate carries: node addresses (IPs,
//!   pod names) need not be in the certificates.
//! - Who a verified certificate stands for is [`certificate_holder`]: a node when it names
//!   [`NODE_SERVER_NAME`], otherwise the user its common name gives (`tributary certs client`).
//!   Only a node certificate opens the node-to-node API; a client certificate authenticates its
//!   user under `--auth required`, like an access key.
//! - The files are read again when they change ([`NodeTls::reload_if_changed`], every
//!   [`RELOAD_INTERVAL`]): new connections use the new certificate, open ones keep theirs.
//! - The operations port (`--http-listen`: /health, /metrics) stays plain HTTP for probes and
//!   scrapers on the node's network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::ClientTlsConfig;

use crate::clients::Counted;
use crate::telemetry;

pub use tributary_raft::network::NODE_SERVER_NAME;

/// How often a node looks at its certificate files for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How long a client may take to complete its TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 128;

/// Where a node's certificate, key and cluster CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Which listener a server configuration is for.
#[derive(Debug, Clone, Copy)]
pub enum Port {
    /// gRPC: HTTP/2 only; a client certificate is asked for and verified when given.
    Grpc,
    /// The Kinesis endpoint: HTTP/2 or HTTP/1.1; no client certificates (AWS SDKs send none).
    Kinesis,
}

impl Port {
    /// The port's name in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Port::Grpc => "grpc",
            Port::Kinesis => "kinesis",
        }
    }
}

/// One generation of TLS material, loaded and checked.
pub struct Material {
    stamp: Vec<FileStamp>,
    grpc: Arc<ServerConfig>,
    kinesis: Arc<ServerConfig>,
    /// For this node's calls to other nodes: its certificate, the CA, the nodes' name.
    pub client: ClientTlsConfig,
}

impl Material {
    pub fn server_config(&self, port: Port) -> Arc<ServerConfig> {
        match port {
            Port::Grpc => self.grpc.clone(),
            Port::Kinesis => self.kinesis.clone(),
        }
    }
}

/// A file's length and modification time: what tells a reload that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let metadata = std::fs::metadata(path)?;
    Ok(FileStamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
    })
}

/// A node's TLS set-up: the files and the material loaded from them last.
pub struct NodeTls {
    paths: TlsPaths,
    current: RwLock<Arc<Material>>,
}

impl NodeTls {
    /// Loads and checks the files: the key matches the certificate, the certificate is signed by
    /// the CA and names [`NODE_SERVER_NAME`].
    pub fn load(paths: TlsPaths) -> anyhow::Result<NodeTls> {
        let material = load_material(&paths)?;
        Ok(NodeTls {
            paths,
            current: RwLock::new(Arc::new(material)),
        })
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The material in use now.
    pub fn current(&self) -> Arc<Material> {
        self.current.read().expect("TLS lock poisoned").clone()
    }

    /// Loads the files again if any changed since the last load. A change that does not load
    /// (a half-written file, a key that does not match) leaves the old material in use and is
    /// reported, so a botched rotation never takes a node off the network.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let stamps = stamps(&self.paths)?;
        if stamps == self.current().stamp {
            return Ok(false);
        }
        let material = load_material(&self.paths)?;
        *self.current.write().expect("TLS lock poisoned") = Arc::new(material);
        Ok(true)
    }
}

fn stamps(paths: &TlsPaths) -> anyhow::Result<Vec<FileStamp>> {
    [&paths.cert, &paths.key, &paths.ca]
        .into_iter()
        .map(|path| stamp(path).with_context(|| format!("reading {}", path.display())))
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

fn load_material(paths: &TlsPaths) -> anyhow::Result<Material> {
    // Stamps first: a file replaced while it is read is loaded again at the next look.
    let stamp = stamps(paths)?;
    let cert_pem = read(&paths.cert, "certificate (--tls-cert)")?;
    let key_pem = read(&paths.key, "private key (--tls-key)")?;
    let ca_pem = read(&paths.ca, "CA certificate (--tls-ca)")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate", paths.cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", paths.cert.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("{} is not a PEM private key", paths.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&ca_pem) {
        let ca = ca.with_context(|| format!("{} is not a PEM certificate", paths.ca.display()))?;
        roots
            .add(ca)
            .with_context(|| format!("{} is not a usable CA certificate", paths.ca.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no CA certificate", paths.ca.display());
    }
    let roots = Arc::new(roots);
    let provider = provider();

    // The certificate must work both ways between nodes: as a server under the nodes' name, and
    // as a client. Checked here so a wrong file fails at start with a reason, not as a node that
    // silently never joins.
    let now = UnixTime::now();
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("building the certificate verifier")?;
    server_verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(NODE_SERVER_NAME).expect("a valid DNS name"),
            &[],
            now,
        )
        .map_err(|error| {
            anyhow::anyhow!(
                "{} does not verify against the CA {} under the name {NODE_SERVER_NAME}: {error} \
                 (`tributary certs create` and `tributary certs node` make certificates that do)",
                paths.cert.display(),
                paths.ca.display()
            )
        })?;
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    client_verifier
        .verify_client_cert(&chain[0], &chain[1..], now)
        .map_err(|error| {
            anyhow::anyhow!(
                "{} cannot authenticate this node to other nodes: {error} (it needs the \
                 clientAuth extended key usage)",
                paths.cert.display()
            )
        })?;

    let mut grpc = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .with_context(|| {
            format!(
                "the key {} does not match the certificate {}",
                paths.key.display(),
                paths.cert.display()
            )
        })?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    let mut kinesis = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    kinesis.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let client = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
        .identity(tonic::transport::Identity::from_pem(&cert_pem, &key_pem))
        .domain_name(NODE_SERVER_NAME);
    Ok(Material {
        stamp,
        grpc: Arc::new(grpc),
        kinesis: Arc::new(kinesis),
        client,
    })
}

/// Accepts TCP connections on `listener` and completes their TLS handshakes concurrently (a slow
/// or silent client holds up no one), with the material current at each accept. Connections
/// that fail their handshake are logged and counted; the others come out of the receiver. Ends
/// when the receiver is dropped.
pub fn accept(
    listener: TcpListener,
    tls: Arc<NodeTls>,
    port: Port,
    node: Arc<crate::Node>,
) -> mpsc::Receiver<(TlsConnection, SocketAddr)> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            // Admitted by the client limits before the handshake, so a client cannot hold more
            // handshakes than connections.
            let (tcp, peer) = tokio::select! {
                accepted = crate::clients::accept(&listener, &node.client_limits, port) => accepted,
                () = tx.closed() => return,
            };
            let acceptor = TlsAcceptor::from(tls.current().server_config(port));
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(error)) => {
                        telemetry::record_tls_handshake_failure();
                        tracing::warn!(%peer, ?port, %error, "refused a TLS connection");
                    }
                    Err(_) => {
                        telemetry::record_tls_handshake_failure();
                        tracing::info!(%peer, ?port, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    rx
}

/// An accepted TLS connection, holding its client's connection slot.
pub type TlsConnection = TlsStream<Counted<TcpStream>>;

/// A TLS listener for axum: connections come out already handshaken (see [`accept`]).
pub struct TlsListener {
    connections: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        tls: Arc<NodeTls>,
        port: Port,
        node: Arc<crate::Node>,
    ) -> TlsListener {
        let local = listener.local_addr();
        TlsListener {
            connections: accept(listener, tls, port, node),
            local,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(address) => Ok(*address),
            Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
        }
    }
}

/// Who a client certificate stands for. rustls has verified it against the CA before anyone
/// asks: this only reads the names in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateHolder {
    /// A node of the cluster: the certificate names [`NODE_SERVER_NAME`] (a DNS subject
    /// alternative name), as every certificate of `tributary certs node` does.
    Node,
    /// A user, by the certificate's common name (`tributary certs client --user NAME`).
    User(String),
    /// A certificate that names neither (no DNS name of the nodes, no common name), or that
    /// does not parse.
    Unnamed,
}

/// Who the certificate `der` stands for (see [`CertificateHolder`]).
pub fn certificate_holder(der: &[u8]) -> CertificateHolder {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertificateHolder::Unnamed;
    };
    let names_node = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|names| {
            names.value.general_names.iter().any(|name| {
                matches!(name, x509_parser::extensions::GeneralName::DNSName(dns)
                    if dns.eq_ignore_ascii_case(NODE_SERVER_NAME))
            })
        });
    if names_node {
        return CertificateHolder::Node;
    }
    match cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok())
    {
        Some(name) if !name.is_empty() => CertificateHolder::User(name.to_string()),
        _ => CertificateHolder::Unnamed,
    }
}

/// Who the leaf certificate of a verified connection stands for; `None` when the peer gave no
/// certificate.
pub fn peer_holder(certs_opt: Option<&[CertificateDer<'static>]>) -> Option<CertificateHolder> {
    certs_opt
        .and_then(|certs| certs.first())
        .map(|leaf| certificate_holder(leaf.as_ref()))
}

/// The interceptor of the node-to-node service: with TLS on, a call must come over a connection
/// whose client presented a node certificate the CA signed (rustls has verified the signature by
/// then; [`certificate_holder`] reads the name). A client certificate is not enough.
#[derive(Clone)]
pub struct NodeCertificateCheck {
    pub tls_on: bool,
}

impl tonic::service::Interceptor for NodeCertificateCheck {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        require_node_certificate(self.tls_on, &request)?;
        Ok(request)
    }
}

fn require_node_certificate<T>(
    tls_on: bool,
    request: &tonic::Request<T>,
) -> Result<(), tonic::Status> {
    if !tls_on {
        return Ok(());
    }
    let certs = request.peer_certs();
    let message = match peer_holder(certs.as_deref().map(Vec::as_slice)) {
        Some(CertificateHolder::Node) => return Ok(()),
        Some(CertificateHolder::User(user)) => format!(
            "the node-to-node API needs a node certificate; this one is a client certificate \
             (user {user})"
        ),
        Some(CertificateHolder::Unnamed) => format!(
            "the node-to-node API needs a node certificate; this one does not name \
             {NODE_SERVER_NAME}"
        ),
        None => {
            "the node-to-node API needs a node certificate signed by the cluster's CA".to_string()
        }
    };
    telemetry::record_node_call_refused();
    Err(tributary_proto::status_from_error(
        tributary_types::Error::new(tributary_types::ErrorCode::AccessDenied, message),
    ))
}

/// The background task that applies certificate changes: new material for listeners and for this
/// node's connections to other nodes.
pub(crate) async fn reload(node: Arc<crate::Node>, tls: Arc<NodeTls>) {
    let mut stop = node.stop_signal();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELOAD_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match tls.reload_if_changed() {
            Ok(false) => {}
            Ok(true) => {
                node.use_client_tls(Some(tls.current().client.clone()));
                telemetry::record_tls_reload(true);
                tracing::info!(cert = %tls.paths().cert.display(), "reloaded the TLS certificate");
            }
            Err(error) => {
                telemetry::record_tls_reload(false);
                tracing::error!(
                    error = format!("{error:#}"),
                    "the changed TLS files do not load; the previous certificate stays in use"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn certificate(common_name_opt: Option<&str>, dns_names: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(
            dns_names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "Tributary");
        if let Some(name) = common_name_opt {
            subject.push(DnType::CommonName, name);
        }
        params.distinguished_name = subject;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_naming_the_nodes_is_a_node_whatever_its_common_name() {
        let node = certificate(Some("tributary node 1"), &[NODE_SERVER_NAME, "localhost"]);
        assert_eq!(certificate_holder(&node), CertificateHolder::Node);
        let shouting = certificate(Some("admin"), &["TRIBUTARY-NODE"]);
        assert_eq!(certificate_holder(&shouting), CertificateHolder::Node);
    }

    #[test]
    fn a_client_certificate_stands_for_the_user_in_its_common_name() {
        let client = certificate(Some("reader"), &[]);
        assert_eq!(
            certificate_holder(&client),
            CertificateHolder::User("reader".to_string())
        );
        // A common name that looks like the nodes' name is still only a user's.
        let pretender = certificate(Some(NODE_SERVER_NAME), &["tributary-node.example"]);
        assert_eq!(
            certificate_holder(&pretender),
            CertificateHolder::User(NODE_SERVER_NAME.to_string())
        );
    }

    #[test]
    fn a_certificate_naming_no_one_or_not_a_certificate_is_unnamed() {
        assert_eq!(
            certificate_holder(&certificate(None, &["example.com"])),
            CertificateHolder::Unnamed
        );
        assert_eq!(certificate_holder(b"not DER"), CertificateHolder::Unnamed);
        assert_eq!(certificate_holder(&[]), CertificateHolder::Unnamed);
        assert_eq!(peer_holder(None), None);
        assert_eq!(peer_holder(Some(&[])), None);
    }
}

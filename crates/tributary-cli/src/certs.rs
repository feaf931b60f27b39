//! `tributary certs`: a cluster CA, node and client certificates, so a TLS cluster needs no
//! other tool.
//!
//! - `certs create --out DIR --nodes N [--client USER]...`: `ca.pem`/`ca.key`,
//!   `node-<i>.pem`/`node-<i>.key`, and `client-<user>.pem`/`client-<user>.key` (for `admin`
//!   unless `--client` says otherwise).
//! - `certs node --dir DIR --id I`: one more node certificate from the CA in DIR (a node added
//!   later, or a certificate renewed).
//! - `certs client --dir DIR --user NAME`: a client certificate for a user.
//!
//! Node certificates are for both ends of node-to-node mutual TLS (serverAuth and clientAuth)
//! and name `tributary-node`, which nodes check each other against, plus `localhost`,
//! `127.0.0.1`, `::1` and every `--host`. Client certificates are for clientAuth only, name no
//! host, and carry the user as their common name: under `--auth required` they authenticate that
//! user (who must exist: `tributary user create`) instead of an access key. Keys are ECDSA P-256,
//! written with mode 0600. Clients that only verify the nodes need just `ca.pem` (`--tls-ca`).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use tributary_server::meta::auth::{ADMIN_USER, MAX_USER_NAME, validate_name};
use tributary_server::tls::NODE_SERVER_NAME;

/// How long the CA is valid.
pub const CA_DAYS: i64 = 3650;
/// How long node certificates are valid by default.
pub const DEFAULT_NODE_DAYS: i64 = 397;
/// How long client certificates are valid by default.
pub const DEFAULT_CLIENT_DAYS: i64 = 397;
/// File names inside the certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";

pub fn node_cert_file(id: u64) -> String {
    format!("node-{id}.pem")
}

pub fn node_key_file(id: u64) -> String {
    format!("node-{id}.key")
}

pub fn client_cert_file(user: &str) -> String {
    format!("client-{user}.pem")
}

pub fn client_key_file(user: &str) -> String {
    format!("client-{user}.key")
}

#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// A new CA and certificates for nodes 1..=N, in a new directory or one without a CA.
    Create {
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// How many node certificates to make (node-1 ... node-N).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// A DNS name or IP address clients reach the nodes by, put in every node certificate
        /// (repeatable; localhost, 127.0.0.1 and ::1 are always in).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// How many days node and client certificates are valid.
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: i64,
        /// A user to make a client certificate for (repeatable; `admin`, the user
        /// --admin-key-file makes, when not given).
        #[arg(long = "client", default_values_t = [ADMIN_USER.to_string()])]
        clients: Vec<String>,
    },
    /// A certificate for one more node, signed by the CA in --dir.
    Node {
        /// The directory holding ca.pem and ca.key; the new files go there too.
        #[arg(long)]
        dir: PathBuf,
        /// The node's id.
        #[arg(long)]
        id: u64,
        /// As for `certs create`.
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: i64,
        /// Replace the node's existing certificate and key (renewal).
        #[arg(long)]
        force: bool,
    },
    /// A client certificate for a user, signed by the CA in --dir: under --auth required it
    /// authenticates the user (give it with --tls-cert and --tls-key).
    Client {
        /// The directory holding ca.pem and ca.key; the new files go there too.
        #[arg(long)]
        dir: PathBuf,
        /// The user the certificate is for (its common name).
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = DEFAULT_CLIENT_DAYS)]
        days: i64,
        /// Replace the user's existing certificate and key (renewal).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: CertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Create {
            out,
            nodes,
            hosts,
            days,
            clients,
        } => {
            create(&out, nodes, &hosts, &clients, days)?;
            println!(
                "wrote {} and certificates for nodes 1..={nodes} and users {} to {}",
                CA_CERT_FILE,
                clients.join(", "),
                out.display()
            );
            println!(
                "nodes:   tributary node --tls-cert {0}/node-ID.pem --tls-key {0}/node-ID.key --tls-ca {0}/{CA_CERT_FILE} ...",
                out.display()
            );
            println!(
                "clients: --tls-ca {}/{CA_CERT_FILE} (or TRIBUTARY_TLS_CA)",
                out.display()
            );
            if let Some(user) = clients.first() {
                println!(
                    "  as user {user}: --tls-cert {0}/{1} --tls-key {0}/{2} (or TRIBUTARY_CLIENT_CERT, TRIBUTARY_CLIENT_KEY)",
                    out.display(),
                    client_cert_file(user),
                    client_key_file(user)
                );
            }
            println!(
                "keep {} secret: it signs node and client certificates",
                out.join(CA_KEY_FILE).display()
            );
        }
        CertsCommand::Node {
            dir,
            id,
            hosts,
            days,
            force,
        } => {
            let ca = Ca::load(&dir)?;
            issue_node(&ca, &dir, id, &hosts, days, force)?;
            println!(
                "wrote {} and {}",
                dir.join(node_cert_file(id)).display(),
                dir.join(node_key_file(id)).display()
            );
        }
        CertsCommand::Client {
            dir,
            user,
            days,
            force,
        } => {
            let ca = Ca::load(&dir)?;
            issue_client(&ca, &dir, &user, days, force)?;
            println!(
                "wrote {} and {} (user {user}: tributary user create {user}, if it does not exist)",
                dir.join(client_cert_file(&user)).display(),
                dir.join(client_key_file(&user)).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the CA, node certificates 1..=`nodes` and client certificates for `clients` in `out`.
pub fn create(
    out: &Path,
    nodes: u64,
    hosts: &[String],
    clients: &[String],
    days: i64,
) -> anyhow::Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    // Every argument is checked before the first file is written.
    for user in clients {
        validate_user(user)?;
    }
    check_days(days)?;
    if out.join(CA_KEY_FILE).exists() {
        bail!(
            "{} already holds a CA; use `tributary certs node --dir {}` to add node certificates",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = named_params("Tributary cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial());
    validity(&mut params, CA_DAYS)?;
    let cert = params.self_signed(&key).context("signing the CA")?;
    write_private(&out.join(CA_KEY_FILE), &key.serialize_pem())?;
    write_public(&out.join(CA_CERT_FILE), &cert.pem())?;
    let ca = Ca {
        issuer: Issuer::new(params, key),
    };
    for id in 1..=nodes {
        issue_node(&ca, out, id, hosts, days, false)?;
    }
    for user in clients {
        issue_client(&ca, out, user, days, false)?;
    }
    Ok(())
}

/// A CA that can sign node certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// The CA in `dir` (`ca.pem`, `ca.key`).
    pub fn load(dir: &Path) -> anyhow::Result<Ca> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let key = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        let key = KeyPair::from_pem(&key)
            .with_context(|| format!("{} is not a PEM private key", key_path.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert, key)
            .with_context(|| format!("{} is not a CA certificate", cert_path.display()))?;
        Ok(Ca { issuer })
    }
}

pub fn issue_node(
    ca: &Ca,
    dir: &Path,
    id: u64,
    hosts: &[String],
    days: i64,
    force: bool,
) -> anyhow::Result<()> {
    let cert_path = dir.join(node_cert_file(id));
    if cert_path.exists() && !force {
        bail!("{} exists; give --force to replace it", cert_path.display());
    }
    let mut params = named_params(&format!("tributary node {id}"));
    let mut names = vec![
        NODE_SERVER_NAME.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    params.subject_alt_names = names
        .iter()
        .map(|name| san(name))
        .collect::<anyhow::Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    issue(ca, params, days, &cert_path, &dir.join(node_key_file(id)))
}

/// A client certificate for `user`: clientAuth only, the user as common name, no host names
/// (so it can never pass for a node, whose certificates name `tributary-node`).
pub fn issue_client(ca: &Ca, dir: &Path, user: &str, days: i64, force: bool) -> anyhow::Result<()> {
    validate_user(user)?;
    let cert_path = dir.join(client_cert_file(user));
    if cert_path.exists() && !force {
        bail!("{} exists; give --force to replace it", cert_path.display());
    }
    let mut params = named_params(user);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(
        ca,
        params,
        days,
        &cert_path,
        &dir.join(client_key_file(user)),
    )
}

/// Signs `params` with a new key for `days`, by the CA, and writes the certificate and its key.
fn issue(
    ca: &Ca,
    mut params: CertificateParams,
    days: i64,
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<()> {
    let key = KeyPair::generate().context("generating a key")?;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial());
    validity(&mut params, days)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .with_context(|| format!("signing {}", cert_path.display()))?;
    write_private(key_path, &key.serialize_pem())?;
    write_public(cert_path, &cert.pem())?;
    Ok(())
}

/// A user name as the catalogue takes it: it is also part of a file name here.
fn validate_user(user: &str) -> anyhow::Result<()> {
    validate_name("user", user, MAX_USER_NAME).map_err(|error| anyhow::anyhow!(error.message))
}

/// Certificate parameters with the subject `O=Tributary, CN=<common_name>`.
fn named_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Tributary");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params
}

fn san(name: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = name
        .to_string()
        .try_into()
        .map_err(|e| anyhow::anyhow!("--host {name} is not a DNS name or IP address: {e}"))?;
    Ok(SanType::DnsName(dns))
}

/// From a day ago (clocks disagree) for `days` days.
fn validity(params: &mut CertificateParams, days: i64) -> anyhow::Result<()> {
    check_days(days)?;
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::days(1);
    let end = now + chrono::Duration::days(days);
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    Ok(())
}

fn check_days(days: i64) -> anyhow::Result<()> {
    if days < 1 {
        bail!("--days must be at least 1");
    }
    Ok(())
}

/// A random positive 127-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Keys are readable by their owner only, from the moment they exist.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // A key replaced with --force keeps the file, and mode() only applies to new files.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

//! `tributary certs`: a cluster CA and node certificates, so a TLS cluster needs no other tool.
//!
//! - `certs create --out DIR --nodes N`: `ca.pem`/`ca.key` and `node-<i>.pem`/`node-<i>.key`.
//! - `certs node --dir DIR --id I`: one more node certificate from the CA in DIR (a node added
//!   later, or a certificate renewed).
//!
//! Node certificates are for both ends of node-to-node mutual TLS (serverAuth and clientAuth)
//! and name `tributary-node`, which nodes check each other against, plus `localhost`,
//! `127.0.0.1`, `::1` and every `--host`. Keys are ECDSA P-256, written with mode 0600. Clients
//! need only `ca.pem` (`--tls-ca`).

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
use tributary_server::tls::NODE_SERVER_NAME;

/// How long the CA is valid.
pub const CA_DAYS: i64 = 3650;
/// How long node certificates are valid by default.
pub const DEFAULT_NODE_DAYS: i64 = 397;
/// File names inside the certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";

pub fn node_cert_file(id: u64) -> String {
    format!("node-{id}.pem")
}

pub fn node_key_file(id: u64) -> String {
    format!("node-{id}.key")
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
        /// How many days node certificates are valid.
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: i64,
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
}

pub fn run(command: CertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Create {
            out,
            nodes,
            hosts,
            days,
        } => {
            create(&out, nodes, &hosts, days)?;
            println!(
                "wrote {} and certificates for nodes 1..={nodes} to {}",
                CA_CERT_FILE,
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
            println!(
                "keep {} secret: it signs node certificates",
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
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the CA and node certificates 1..=`nodes` in `out`.
pub fn create(out: &Path, nodes: u64, hosts: &[String], days: i64) -> anyhow::Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
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
    let key = KeyPair::generate().context("generating a node key")?;
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
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial());
    validity(&mut params, days)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .context("signing a node certificate")?;
    write_private(&dir.join(node_key_file(id)), &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(())
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
    if days < 1 {
        bail!("--days must be at least 1");
    }
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::days(1);
    let end = now + chrono::Duration::days(days);
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
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

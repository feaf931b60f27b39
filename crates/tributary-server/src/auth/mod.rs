//! Who may do what (`--auth none|required`).
//!
//! - Authentication: under `required`, every gRPC call is signed with an access key
//!   ([`tributary_proto::signing`]) and every Kinesis request with SigV4, both checked against
//!   the access keys in the metadata catalogue, whose secrets are sealed with the key ring. A
//!   gRPC call without a signature may instead come with a client certificate from the cluster's
//!   CA (`tributary certs client`): its common name is the user, who must be in the catalogue.
//!   A call from another node (a verified node certificate: mutual TLS) acts for a caller that
//!   node already authorized. [`GrpcAuthLayer`] does this for gRPC, before any handler runs.
//! - Authorization: every operation asks [`Node::authorize`] for its action
//!   (`kinesis:PutRecord`, `tables:PutItem`, `iam:CreateUser`, `tributary:RemoveNode`) on its
//!   resource (an ARN); the caller's policies decide ([`policy::evaluate`]): an explicit deny
//!   wins, no allow means deny. A refused call changes nothing and answers ACCESS_DENIED.
//! - Audit: every admin operation allowed and every denial is a JSON line in
//!   `<data dir>/audit.log` and an event of the `tributary::audit` tracing target.
//!
//! Under `none` everyone may do everything (local development), and the node says so at start.

pub mod admin;
/// IAM policy documents live with the other AWS wire formats, where the fuzzers reach them.
pub use tributary_kinesis::policy;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde::Deserialize;
use serde_json::json;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tributary_proto::signing;
use tributary_types::{Error, ErrorCode};

use crate::keyring::Sealed;
use crate::node::Node;
use crate::now_ms;
use crate::tls::CertificateHolder;
use policy::Decision;

/// Whether calls must be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone who reaches the node may do anything (the default; local development).
    None,
    /// Every call carries valid credentials and is allowed by the caller's policies.
    Required,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Required => "required",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `--auth none`: no credentials, everything allowed.
    Anonymous,
    /// Another node of the cluster (verified node certificate), acting for a caller it already
    /// authorized: a forwarded put, a read from a replica, a ping.
    Node,
    /// A user of the catalogue, by name.
    User(String),
}

impl Principal {
    fn describe(&self, arns: &tributary_kinesis::Arns) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_string(),
            Principal::Node => "node".to_string(),
            Principal::User(name) => user_arn(arns, name),
        }
    }
}

pub fn user_arn(arns: &tributary_kinesis::Arns, user: &str) -> String {
    format!("arn:aws:iam::{}:user/{user}", arns.account_id)
}

/// What an operation acts on, turned into an ARN by [`Node::resource_arn`].
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Stream(&'a str),
    /// A consumer of a stream, by name.
    Consumer(&'a str, &'a str),
    /// Every stream (ListStreams).
    AllStreams,
    Table(&'a str),
    AllTables,
    User(&'a str),
    Policy(&'a str),
    /// The cluster itself (status, node removal).
    Cluster,
}

/// The auth settings a node runs with.
pub struct Auth {
    pub mode: AuthMode,
    audit: AuditLog,
}

impl Auth {
    pub fn new(mode: AuthMode, data_dir: &Path) -> anyhow::Result<Auth> {
        Ok(Auth {
            mode,
            audit: AuditLog::open(&data_dir.join(AUDIT_FILE), AUDIT_FILE_MAX_BYTES)?,
        })
    }
}

/// Where a node's audit log is, in its data dir.
pub const AUDIT_FILE: &str = "audit.log";
/// The audit log's previous file: when the log reaches [`AUDIT_FILE_MAX_BYTES`] it is renamed
/// here (replacing the one before), so a flood of denials cannot fill the disk.
pub const AUDIT_FILE_PREVIOUS: &str = "audit.log.1";
/// How large the audit log grows before it is rotated.
pub const AUDIT_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// JSON lines appended to the audit file (and the `tributary::audit` tracing target).
struct AuditLog {
    path: std::path::PathBuf,
    max_bytes: u64,
    file: Mutex<AuditFile>,
}

struct AuditFile {
    file: std::fs::File,
    len: u64,
}

fn open_audit_file(path: &Path) -> std::io::Result<AuditFile> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let len = file.metadata()?.len();
    Ok(AuditFile { file, len })
}

impl AuditLog {
    fn open(path: &Path, max_bytes: u64) -> anyhow::Result<AuditLog> {
        let file = open_audit_file(path)
            .map_err(|e| anyhow::anyhow!("opening the audit log {}: {e}", path.display()))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            max_bytes,
            file: Mutex::new(file),
        })
    }

    fn record(&self, entry: serde_json::Value) {
        tracing::info!(target: "tributary::audit", "{entry}");
        let mut line = entry.to_string();
        line.push('\n');
        let mut current = self.file.lock().expect("audit lock poisoned");
        if current.len > 0 && current.len + line.len() as u64 > self.max_bytes {
            let previous = self.path.with_file_name(AUDIT_FILE_PREVIOUS);
            match std::fs::rename(&self.path, &previous).and_then(|()| open_audit_file(&self.path))
            {
                Ok(file) => *current = file,
                // Keep appending to the file we have: an audit entry is never dropped.
                Err(error) => tracing::error!(%error, "could not rotate the audit log"),
            }
        }
        match current.file.write_all(line.as_bytes()) {
            Ok(()) => current.len += line.len() as u64,
            Err(error) => tracing::error!(%error, "could not write the audit log"),
        }
    }
}

/// Reads and writes of data, and descriptions, are not admin operations: they are audited only
/// when denied.
fn is_admin_action(action: &str) -> bool {
    let (service, operation) = action.split_once(':').unwrap_or(("", action));
    let read = operation.starts_with("Describe")
        || operation.starts_with("List")
        || operation == "ClusterStatus";
    let data = match service {
        "kinesis" => matches!(
            operation,
            "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "SubscribeToShard"
        ),
        "tables" => matches!(
            operation,
            "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" | "Scan"
        ),
        _ => false,
    };
    !(read || data)
}

impl Node {
    pub fn auth_mode(&self) -> AuthMode {
        self.auth.mode
    }

    /// The ARN of `resource` in this cluster's region and account.
    pub fn resource_arn(&self, resource: Resource<'_>) -> String {
        let arns = &self.config.arns;
        let prefix =
            |service: &str| format!("arn:aws:{service}:{}:{}", arns.region, arns.account_id);
        match resource {
            Resource::Stream(name) => format!("{}:stream/{name}", prefix("kinesis")),
            Resource::Consumer(stream, consumer) => {
                let created_opt = stream.parse().ok().zip(consumer.parse().ok()).and_then(
                    |(stream, consumer)| {
                        self.meta.read(|state| {
                            state
                                .streams
                                .get(&stream)
                                .and_then(|s| s.consumers.get(&consumer))
                                .map(|c| c.created_at_ms / 1000)
                        })
                    },
                );
                let created = created_opt.map_or("*".to_string(), |secs| secs.to_string());
                format!(
                    "{}:stream/{stream}/consumer/{consumer}:{created}",
                    prefix("kinesis")
                )
            }
            Resource::AllStreams => format!("{}:stream/*", prefix("kinesis")),
            Resource::Table(name) => format!("{}:table/{name}", prefix("tables")),
            Resource::AllTables => format!("{}:table/*", prefix("tables")),
            Resource::User(name) => user_arn(arns, name),
            Resource::Policy(name) => format!("arn:aws:iam::{}:policy/{name}", arns.account_id),
            Resource::Cluster => format!(
                "arn:aws:tributary:{}:{}:cluster",
                arns.region, arns.account_id
            ),
        }
    }

    /// Whether `principal` may perform `action` on `resource`. A denial is audited and answers
    /// ACCESS_DENIED in IAM's words; an allowed admin operation is audited.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: Resource<'_>,
    ) -> Result<(), Error> {
        let user = match principal {
            Principal::Node => return Ok(()),
            Principal::Anonymous => {
                if is_admin_action(action) {
                    self.audit(
                        principal,
                        action,
                        &self.resource_arn(resource),
                        "allowed",
                        None,
                    );
                }
                return Ok(());
            }
            Principal::User(user) => user,
        };
        let resource = self.resource_arn(resource);
        let decision = self.meta.read(|state| {
            let documents = state.auth.users.get(user).into_iter().flat_map(|meta| {
                meta.policies
                    .iter()
                    .filter_map(|name| state.auth.policies.get(name))
                    .map(|policy| &policy.parsed)
            });
            policy::evaluate(documents, action, &resource)
        });
        if decision == Decision::Allow {
            if is_admin_action(action) {
                self.audit(principal, action, &resource, "allowed", None);
            }
            return Ok(());
        }
        let because = match decision {
            Decision::ExplicitDeny => "an explicit deny in an identity-based policy",
            _ => "no identity-based policy allows it",
        };
        self.audit(principal, action, &resource, "denied", Some(because));
        crate::telemetry::record_access_denied(action);
        Err(Error::new(
            ErrorCode::AccessDenied,
            format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} because {because}",
                principal.describe(&self.config.arns)
            ),
        ))
    }

    /// One audit entry.
    pub(crate) fn audit(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        outcome: &str,
        reason_opt: Option<&str>,
    ) {
        let mut entry = json!({
            "at_ms": now_ms(),
            "node": self.id(),
            "principal": principal.describe(&self.config.arns),
            "action": action,
            "resource": resource,
            "outcome": outcome,
        });
        if let Some(reason) = reason_opt {
            entry["reason"] = json!(reason);
        }
        self.auth.audit.record(entry);
    }

    /// The user and secret of an access key, opened with the key ring.
    pub fn access_key_secret(&self, access_key_id: &str) -> Option<(String, String)> {
        let ring = self.keys.current()?;
        let (user, sealed) = self.meta.read(|state| {
            state
                .auth
                .access_key(access_key_id)
                .map(|(user, key)| (user.to_string(), key.sealed_secret.clone()))
        })?;
        let sealed: Sealed = postcard::from_bytes(&sealed).ok()?;
        let secret = ring
            .open(&sealed, secret_aad(access_key_id).as_bytes())
            .ok()?;
        Some((user, String::from_utf8(secret).ok()?))
    }

    /// Seals a secret access key for the catalogue.
    pub(crate) fn seal_secret(&self, access_key_id: &str, secret: &str) -> Result<Vec<u8>, Error> {
        let ring = self.keys.current().ok_or_else(|| {
            Error::invalid_argument("users need a key ring on every node (--key-ring FILE)")
        })?;
        let sealed = ring.seal(
            crate::keyring::DEFAULT_KEY,
            secret_aad(access_key_id).as_bytes(),
            secret.as_bytes(),
        )?;
        postcard::to_stdvec(&sealed)
            .map_err(|e| Error::internal(format!("encoding a sealed secret: {e}")))
    }

    /// Checks a gRPC call's credentials (see [`GrpcAuthLayer`]).
    fn authenticate_grpc<B>(&self, request: &http::Request<B>) -> Result<Principal, Error> {
        if self.auth.mode == AuthMode::None {
            return Ok(Principal::Anonymous);
        }
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        let holder_opt = crate::tls::peer_holder(certs.as_deref().map(Vec::as_slice));
        if holder_opt == Some(CertificateHolder::Node) {
            return Ok(Principal::Node);
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (Some(access_key_id), Some(date), Some(signature)) = (
            header(signing::ACCESS_KEY_ID),
            header(signing::DATE),
            header(signing::SIGNATURE),
        ) else {
            // No signature: a client certificate, if any, says who calls.
            return match holder_opt {
                Some(CertificateHolder::User(user)) => self.certificate_user(user),
                Some(CertificateHolder::Unnamed) => Err(unauthenticated(
                    "the client certificate names no user (its common name is the user): \
                     make one with `tributary certs client --user NAME`",
                )),
                Some(CertificateHolder::Node) | None => Err(unauthenticated(
                    "this cluster requires credentials: give --access-key-id and \
                     --secret-access-key (or TRIBUTARY_ACCESS_KEY_ID and \
                     TRIBUTARY_SECRET_ACCESS_KEY), or a client certificate (--tls-cert and \
                     --tls-key)",
                )),
            };
        };
        let date_ms: u64 = date
            .parse()
            .map_err(|_| unauthenticated("the request date is not milliseconds since the epoch"))?;
        let now = now_ms();
        if date_ms.abs_diff(now) > signing::MAX_SKEW_MS {
            return Err(unauthenticated(format!(
                "the request time is {} s away from the node's clock (at most {} s allowed)",
                date_ms.abs_diff(now) / 1000,
                signing::MAX_SKEW_MS / 1000
            )));
        }
        let Some((user, secret)) = self.access_key_secret(&access_key_id) else {
            return Err(unauthenticated(format!(
                "the access key {access_key_id} is not known to this cluster"
            )));
        };
        if !signing::verify(
            &secret,
            &access_key_id,
            date_ms,
            request.uri().path(),
            &signature,
        ) {
            return Err(unauthenticated(
                "the request signature does not match: check the secret access key",
            ));
        }
        Ok(Principal::User(user))
    }
}

impl Node {
    /// The user a verified client certificate names, if the catalogue has it: deleting the user
    /// turns its certificates away too, with no revocation list to keep.
    fn certificate_user(&self, user: String) -> Result<Principal, Error> {
        if self.meta.read(|state| state.auth.users.contains_key(&user)) {
            Ok(Principal::User(user))
        } else {
            Err(unauthenticated(format!(
                "the client certificate is for user {user}, who is not in this cluster"
            )))
        }
    }
}

fn secret_aad(access_key_id: &str) -> String {
    format!("tributary credential {access_key_id}")
}

fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::Unauthenticated, message)
}

/// The caller of a gRPC request, as [`GrpcAuthLayer`] found it.
pub fn principal<T>(request: &tonic::Request<T>) -> Principal {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        // Not through the layer (cannot happen on a node's server): the least trusted caller.
        .unwrap_or_else(|| Principal::User(String::new()))
}

/// Authorizes a gRPC call for its caller (see [`Node::authorize`]), as a gRPC status.
pub fn authorize_grpc<T>(
    node: &Node,
    request: &tonic::Request<T>,
    action: &str,
    resource: Resource<'_>,
) -> Result<(), tonic::Status> {
    node.authorize(&principal(request), action, resource)
        .map_err(crate::service::status)
}

/// Authenticates every gRPC call before it reaches a service: the caller goes in the request's
/// extensions as a [`Principal`]; a call without valid credentials gets UNAUTHENTICATED.
#[derive(Clone)]
pub struct GrpcAuthLayer {
    pub node: Arc<Node>,
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            node: self.node.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    node: Arc<Node>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, std::future::Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.node.authenticate_grpc(&request) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                futures::future::Either::Left(self.inner.call(request))
            }
            Err(error) => {
                crate::telemetry::record_error(error.code);
                let path = request.uri().path().to_string();
                self.node.audit(
                    &Principal::Anonymous,
                    &path,
                    "-",
                    "unauthenticated",
                    Some(&error.message),
                );
                let response = tributary_proto::status_from_error(error).into_http();
                futures::future::Either::Right(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_log_rotates_at_its_size_limit_and_loses_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let log = AuditLog::open(&path, 200).unwrap();
        for i in 0..10 {
            log.record(json!({ "entry": i, "padding": "x".repeat(40) }));
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let previous = std::fs::read_to_string(dir.path().join(AUDIT_FILE_PREVIOUS)).unwrap();
        assert!(current.len() <= 200, "{current}");
        assert!(previous.len() <= 200, "{previous}");
        // The newest entries are in the current file, the ones before in the previous one, in
        // order; only what two rotations ago held is gone.
        let entries: Vec<u64> = previous
            .lines()
            .chain(current.lines())
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["entry"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(entries.last(), Some(&9));
        assert!(
            entries.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{entries:?}"
        );
        assert!(entries.len() >= 4, "{entries:?}");

        // Reopened, the log counts what the file already holds.
        drop(log);
        let log = AuditLog::open(&path, 200).unwrap();
        log.record(json!({ "entry": 10, "padding": "x".repeat(40) }));
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
    }
}

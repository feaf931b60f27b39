//! The Tributary SDK. [`Client`] speaks the public gRPC API to any node of a cluster and fails
//! over to the next listed endpoint when one is unreachable. Answers are the API's messages
//! (`tributary_client::v1`); failures are typed ([`ClientError`]).

pub mod aggregation;
pub mod consumer;
pub mod producer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tributary_proto::signing;
pub use tributary_proto::table as table_proto;
pub use tributary_proto::v1;
use tributary_proto::v1::access_client::AccessClient;
use tributary_proto::v1::tables_client::TablesClient;
use tributary_proto::v1::tributary_client::TributaryClient;
pub use tributary_proto::{describe_status, error_from_status};
pub use tributary_types::table::{AttributeValue, Comparator, Condition, Item, Update};
pub use tributary_types::{Error, ErrorCode};

/// The default endpoint when none is given (the first node of `tributary dev`).
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7101";
/// Requests carry up to 5 MiB of records; reads return up to 10 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How long one call may take before the client gives up on that endpoint.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`Client::create_stream`] waits for the new stream to turn ACTIVE.
pub const DEFAULT_ACTIVE_WAIT: Duration = Duration::from_secs(30);
/// Pause between polls while waiting for a stream's status.
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often [`Client::wait_for_removed`] asks for cluster status (which pings every node).
const REMOVAL_POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The cluster answered with a typed error.
    #[error("{0}")]
    Api(#[from] Error),
    /// No listed endpoint could be reached.
    #[error("ENDPOINT_UNREACHABLE: no endpoint answered ({0})")]
    Unreachable(String),
    #[error("INVALID_ARGUMENT: {0}")]
    BadEndpoint(String),
    /// A wait (for a stream to turn ACTIVE) ran out of time.
    #[error("TIMED_OUT: {0}")]
    TimedOut(String),
}

impl ClientError {
    /// The stable code to print or match on.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Api(error) => error.code.as_str(),
            ClientError::Unreachable(_) => "ENDPOINT_UNREACHABLE",
            ClientError::BadEndpoint(_) => "INVALID_ARGUMENT",
            ClientError::TimedOut(_) => "TIMED_OUT",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ClientError::Api(error) => error.message.clone(),
            ClientError::Unreachable(why) => format!("no endpoint answered ({why})"),
            ClientError::BadEndpoint(why) => why.clone(),
            ClientError::TimedOut(why) => why.clone(),
        }
    }
}

/// An access key: its id, and the secret that signs calls (never sent).
#[derive(Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Signs every call with the access key, when there is one (`--auth required` clusters).
#[derive(Clone, Debug, Default)]
pub struct Signer {
    key_opt: Option<Arc<AccessKey>>,
}

impl tonic::service::Interceptor for Signer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(key) = &self.key_opt else {
            return Ok(request);
        };
        let path = request
            .extensions()
            .get::<tonic::GrpcMethod>()
            .map(|method| format!("/{}/{}", method.service(), method.method()))
            .ok_or_else(|| tonic::Status::internal("a call without its method cannot be signed"))?;
        let date_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let signature = signing::sign(&key.secret_access_key, &key.access_key_id, date_ms, &path);
        let metadata = request.metadata_mut();
        let value = |text: &str| {
            text.parse()
                .map_err(|_| tonic::Status::invalid_argument("the access key id is not ASCII"))
        };
        metadata.insert(signing::ACCESS_KEY_ID, value(&key.access_key_id)?);
        metadata.insert(signing::DATE, value(&date_ms.to_string())?);
        metadata.insert(signing::SIGNATURE, value(&signature)?);
        Ok(request)
    }
}

/// Every call goes through the [`Signer`].
pub type Transport = tonic::service::interceptor::InterceptedService<Channel, Signer>;

/// How a [`Client`] connects: plain text (the default) or TLS, and with which access key.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Sign calls with this access key (clusters run with `--auth required`).
    pub access_key_opt: Option<AccessKey>,
    /// Verify nodes against this CA certificate (PEM) and talk TLS to them.
    pub tls_ca_pem_opt: Option<Vec<u8>>,
    /// The name node certificates are checked against, when it is not the host dialled (a node
    /// reached through a tunnel or by an address its certificate does not list).
    pub tls_server_name_opt: Option<String>,
    /// A client certificate and its key (PEM) to present: under `--auth required` it
    /// authenticates its user when calls are not signed with an access key.
    pub tls_identity_opt: Option<TlsIdentity>,
}

/// A client certificate and its private key, PEM (`tributary certs client`).
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// The certificate in `cert` and the key in `key`.
    pub fn from_files(
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<TlsIdentity, ClientError> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                ClientError::BadEndpoint(format!("cannot read the {what} {}: {e}", path.display()))
            })
        };
        Ok(TlsIdentity {
            cert_pem: read(cert.as_ref(), "client certificate")?,
            key_pem: read(key.as_ref(), "client key")?,
        })
    }
}

impl ClientOptions {
    /// TLS, trusting the CA certificate in `path` (PEM).
    pub fn tls_ca_file(path: impl AsRef<std::path::Path>) -> Result<ClientOptions, ClientError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            ClientError::BadEndpoint(format!(
                "cannot read the CA certificate {}: {e}",
                path.display()
            ))
        })?;
        Ok(ClientOptions {
            tls_ca_pem_opt: Some(pem),
            ..ClientOptions::default()
        })
    }

    fn endpoint(&self, address: &str) -> Result<Endpoint, ClientError> {
        let uri = match (address.contains("://"), &self.tls_ca_pem_opt) {
            (true, _) => address.to_string(),
            (false, Some(_)) => format!("https://{address}"),
            (false, None) => format!("http://{address}"),
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| ClientError::BadEndpoint(format!("{address}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(ca) = &self.tls_ca_pem_opt {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some(name) = &self.tls_server_name_opt {
                tls = tls.domain_name(name.clone());
            }
            if let Some(identity) = &self.tls_identity_opt {
                tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| ClientError::BadEndpoint(format!("TLS set-up for {address}: {e}")))?;
        }
        Ok(endpoint)
    }
}

#[derive(Clone)]
pub struct Client {
    endpoints: Arc<Vec<(String, TributaryClient<Transport>)>>,
    /// The lease-table service on the same endpoints and channels.
    tables: Arc<Vec<TablesClient<Transport>>>,
    /// Users and policies, on the same endpoints and channels.
    access: Arc<Vec<AccessClient<Transport>>>,
    current: Arc<AtomicUsize>,
    pub(crate) call_timeout: Duration,
}

impl Client {
    /// A plain-text client for the given `host:port` endpoints; connections are made on first
    /// use.
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Result<Client, ClientError> {
        Client::with_options(endpoints, &ClientOptions::default())
    }

    /// A client for the given `host:port` endpoints, connecting as `options` say.
    pub fn with_options<S: AsRef<str>>(
        endpoints: &[S],
        options: &ClientOptions,
    ) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::BadEndpoint(
                "at least one endpoint is needed".to_string(),
            ));
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        let mut tables = Vec::with_capacity(endpoints.len());
        let mut access = Vec::with_capacity(endpoints.len());
        let signer = Signer {
            key_opt: options.access_key_opt.clone().map(Arc::new),
        };
        for address in endpoints {
            let address = address.as_ref().trim().to_string();
            let endpoint = options.endpoint(&address)?;
            let channel = endpoint.connect_lazy();
            let transport = Transport::new(channel, signer.clone());
            tables.push(TablesClient::new(transport.clone()));
            access.push(AccessClient::new(transport.clone()));
            let client = TributaryClient::new(transport)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            clients.push((address, client));
        }
        Ok(Client {
            endpoints: Arc::new(clients),
            tables: Arc::new(tables),
            access: Arc::new(access),
            current: Arc::new(AtomicUsize::new(0)),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Parses a comma-separated endpoint list (`host:port,host:port`).
    pub fn from_list(list: &str) -> Result<Client, ClientError> {
        Client::from_list_with(list, &ClientOptions::default())
    }

    /// [`Client::from_list`] connecting as `options` say.
    pub fn from_list_with(list: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        let endpoints: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        Client::with_options(&endpoints, options)
    }

    pub fn with_call_timeout(mut self, timeout: Duration) -> Client {
        self.call_timeout = timeout;
        self
    }

    /// Runs `call` on the current endpoint, moving on to the next one when it is unreachable.
    /// A call the cluster answered (even with an error) is never repeated.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(TributaryClient<Transport>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.failover(|index| call(self.endpoints[index].1.clone()))
            .await
    }

    /// Runs `call(endpoint index)` from the current endpoint on, moving to the next while one is
    /// unreachable or silent; an endpoint that answers (even with an error) becomes current,
    /// unless it answered WRITE_QUORUM_UNAVAILABLE: then the next one does.
    async fn failover<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.endpoints.len() {
            let index = (start + step) % self.endpoints.len();
            let address = &self.endpoints[index].0;
            match tokio::time::timeout(self.call_timeout, call(index)).await {
                Ok(Ok(response)) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) if is_transport_failure(&status) => {
                    failures.push(format!("{address}: {}", describe_failure(&status)))
                }
                Ok(Err(status)) => {
                    let error = error_from_status(&status);
                    // A node cut off from the rest answers every write with
                    // WRITE_QUORUM_UNAVAILABLE: the next call starts at the next endpoint, so
                    // a caller's retry reaches the majority side. (Where the majority is truly
                    // down, every endpoint answers the same.)
                    let next = if error.code == ErrorCode::WriteQuorumUnavailable {
                        (index + 1) % self.endpoints.len()
                    } else {
                        index
                    };
                    self.current.store(next, Ordering::Relaxed);
                    return Err(ClientError::Api(error));
                }
                Err(_) => failures.push(format!(
                    "{address}: no answer within {:?}",
                    self.call_timeout
                )),
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    /// A users-and-policies call, failing over like [`Client::call`].
    async fn access_call<R, T, F, Fut>(&self, request: R, call: F) -> Result<T, ClientError>
    where
        R: Clone,
        F: Fn(AccessClient<Transport>, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.failover(|index| call(self.access[index].clone(), request.clone()))
            .await
    }

    /// A user with a new access key (its secret is answered this once), with `policies`.
    pub async fn create_user(
        &self,
        user: &str,
        policies: Vec<String>,
    ) -> Result<v1::CreateUserResponse, ClientError> {
        let request = v1::CreateUserRequest {
            user_name: user.to_string(),
            policy_names: policies,
        };
        self.access_call(request, |mut c, r| async move { c.create_user(r).await })
            .await
    }

    pub async fn delete_user(&self, user: &str) -> Result<(), ClientError> {
        let request = v1::DeleteUserRequest {
            user_name: user.to_string(),
        };
        self.access_call(request, |mut c, r| async move { c.delete_user(r).await })
            .await
            .map(drop)
    }

    pub async fn list_users(&self) -> Result<Vec<v1::User>, ClientError> {
        self.access_call(v1::ListUsersRequest {}, |mut c, r| async move {
            c.list_users(r).await
        })
        .await
        .map(|response| response.users)
    }

    /// Creates or replaces a policy (an IAM-like JSON document).
    pub async fn put_policy(&self, policy: &str, document: &str) -> Result<(), ClientError> {
        let request = v1::PutPolicyRequest {
            policy_name: policy.to_string(),
            policy_document: document.to_string(),
        };
        self.access_call(request, |mut c, r| async move { c.put_policy(r).await })
            .await
            .map(drop)
    }

    pub async fn delete_policy(&self, policy: &str) -> Result<(), ClientError> {
        let request = v1::DeletePolicyRequest {
            policy_name: policy.to_string(),
        };
        self.access_call(request, |mut c, r| async move { c.delete_policy(r).await })
            .await
            .map(drop)
    }

    pub async fn attach_policy(&self, policy: &str, user: &str) -> Result<(), ClientError> {
        let request = v1::AttachPolicyRequest {
            policy_name: policy.to_string(),
            user_name: user.to_string(),
        };
        self.access_call(request, |mut c, r| async move { c.attach_policy(r).await })
            .await
            .map(drop)
    }

    pub async fn detach_policy(&self, policy: &str, user: &str) -> Result<(), ClientError> {
        let request = v1::DetachPolicyRequest {
            policy_name: policy.to_string(),
            user_name: user.to_string(),
        };
        self.access_call(request, |mut c, r| async move { c.detach_policy(r).await })
            .await
            .map(drop)
    }

    pub async fn list_policies(&self) -> Result<Vec<v1::Policy>, ClientError> {
        self.access_call(v1::ListPoliciesRequest {}, |mut c, r| async move {
            c.list_policies(r).await
        })
        .await
        .map(|response| response.policies)
    }

    /// A lease-table call, failing over like [`Client::call`].
    async fn table_call<R, T, F, Fut>(&self, request: R, call: F) -> Result<T, ClientError>
    where
        R: Clone,
        F: Fn(TablesClient<Transport>, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.failover(|index| call(self.tables[index].clone(), request.clone()))
            .await
    }

    pub async fn create_table(
        &self,
        table: &str,
        key_attribute_opt: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = v1::CreateTableRequest {
            table_name: table.to_string(),
            key_attribute: key_attribute_opt.map(str::to_string),
        };
        self.table_call(request, |mut c, r| async move { c.create_table(r).await })
            .await
            .map(|_| ())
    }

    pub async fn delete_table(&self, table: &str) -> Result<(), ClientError> {
        let request = v1::DeleteTableRequest {
            table_name: table.to_string(),
        };
        self.table_call(request, |mut c, r| async move { c.delete_table(r).await })
            .await
            .map(|_| ())
    }

    pub async fn list_tables(&self) -> Result<Vec<String>, ClientError> {
        self.table_call(v1::ListTablesRequest {}, |mut c, r| async move {
            c.list_tables(r).await
        })
        .await
        .map(|response| response.table_names)
    }

    pub async fn describe_table(
        &self,
        table: &str,
    ) -> Result<v1::DescribeTableResponse, ClientError> {
        let request = v1::DescribeTableRequest {
            table_name: table.to_string(),
        };
        self.table_call(request, |mut c, r| async move { c.describe_table(r).await })
            .await
    }

    /// PutItem; a failed condition is `CONDITIONAL_CHECK_FAILED` with the current item in
    /// `Error::current_item_opt`.
    pub async fn put_item(
        &self,
        table: &str,
        item: &Item,
        condition_opt: Option<&Condition>,
    ) -> Result<(), ClientError> {
        let request = v1::PutItemRequest {
            table_name: table.to_string(),
            item: Some(table_proto::item_to_proto(item)),
            condition: condition_opt.map(table_proto::condition_to_proto),
        };
        self.table_call(request, |mut c, r| async move { c.put_item(r).await })
            .await
            .map(|_| ())
    }

    /// GetItem, strongly consistent.
    pub async fn get_item(&self, table: &str, key: &str) -> Result<Option<Item>, ClientError> {
        let request = v1::GetItemRequest {
            table_name: table.to_string(),
            key: key.to_string(),
        };
        let response = self
            .table_call(request, |mut c, r| async move { c.get_item(r).await })
            .await?;
        response
            .item
            .map(table_proto::item_from_proto)
            .transpose()
            .map_err(ClientError::Api)
    }

    /// UpdateItem (creating the item when missing); answers the item as written.
    pub async fn update_item(
        &self,
        table: &str,
        key: &str,
        updates: &[Update],
        condition_opt: Option<&Condition>,
    ) -> Result<Item, ClientError> {
        let request = v1::UpdateItemRequest {
            table_name: table.to_string(),
            key: key.to_string(),
            updates: updates.iter().map(table_proto::update_to_proto).collect(),
            condition: condition_opt.map(table_proto::condition_to_proto),
        };
        let response = self
            .table_call(request, |mut c, r| async move { c.update_item(r).await })
            .await?;
        let item = response
            .item
            .ok_or_else(|| ClientError::Api(Error::internal("UpdateItem answered no item")))?;
        table_proto::item_from_proto(item).map_err(ClientError::Api)
    }

    pub async fn delete_item(
        &self,
        table: &str,
        key: &str,
        condition_opt: Option<&Condition>,
    ) -> Result<(), ClientError> {
        let request = v1::DeleteItemRequest {
            table_name: table.to_string(),
            key: key.to_string(),
            condition: condition_opt.map(table_proto::condition_to_proto),
        };
        self.table_call(request, |mut c, r| async move { c.delete_item(r).await })
            .await
            .map(|_| ())
    }

    /// Every item of a table in key order, following Scan's pages.
    pub async fn scan(&self, table: &str) -> Result<Vec<Item>, ClientError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let request = v1::ScanRequest {
                table_name: table.to_string(),
                limit: None,
                exclusive_start_key: start.take(),
            };
            let page = self
                .table_call(request, |mut c, r| async move { c.scan(r).await })
                .await?;
            for item in page.items {
                items.push(table_proto::item_from_proto(item).map_err(ClientError::Api)?);
            }
            match page.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(items),
            }
        }
    }

    /// Sends one request (cloned per attempt) through [`Client::call`].
    async fn unary<R, T, F, Fut>(&self, request: R, call: F) -> Result<T, ClientError>
    where
        R: Clone,
        F: Fn(TributaryClient<Transport>, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(|client| call(client, request.clone())).await
    }

    pub async fn cluster_status(&self) -> Result<v1::ClusterStatusResponse, ClientError> {
        self.unary(v1::ClusterStatusRequest {}, |mut c, r| async move {
            c.cluster_status(r).await
        })
        .await
    }

    /// Decommissions a node (RemoveNode): its replicas move to other nodes, then it leaves the
    /// cluster. Returns at once with how many replicas will move; [`Client::wait_for_removed`]
    /// waits for the rest.
    pub async fn remove_node(&self, node_id: u64) -> Result<u32, ClientError> {
        self.unary(v1::RemoveNodeRequest { node_id }, |mut c, r| async move {
            c.remove_node(r).await
        })
        .await
        .map(|reply| reply.replicas_to_move)
    }

    /// Polls cluster status until `node_id` has left the cluster; `progress` sees every status
    /// on the way (moves under way, replicas left).
    pub async fn wait_for_removed(
        &self,
        node_id: u64,
        timeout: Duration,
        mut progress: impl FnMut(&v1::ClusterStatusResponse),
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(status) = self.cluster_status().await {
                if status.removed_node_ids.contains(&node_id) {
                    return Ok(());
                }
                progress(&status);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::TimedOut(format!(
                    "node {node_id} was still being removed after {timeout:?}"
                )));
            }
            tokio::time::sleep(REMOVAL_POLL_INTERVAL).await;
        }
    }

    /// Creates a PROVISIONED stream and waits (up to [`DEFAULT_ACTIVE_WAIT`]) until it is ACTIVE,
    /// so records can be put right after. [`Client::create_stream_request`] returns at once.
    pub async fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
        retention_hours_opt: Option<u32>,
    ) -> Result<(), ClientError> {
        let request = v1::CreateStreamRequest {
            stream_name: name.to_string(),
            shard_count,
            retention_period_hours: retention_hours_opt,
            ..Default::default()
        };
        self.create_stream_request(request).await?;
        self.wait_for_active(name, DEFAULT_ACTIVE_WAIT).await
    }

    /// CreateStream as Kinesis has it: returns once accepted, with the stream CREATING.
    pub async fn create_stream_request(
        &self,
        request: v1::CreateStreamRequest,
    ) -> Result<(), ClientError> {
        self.unary(request, |mut c, r| async move { c.create_stream(r).await })
            .await
            .map(|_| ())
    }

    /// Polls the stream until it is ACTIVE.
    pub async fn wait_for_active(&self, name: &str, timeout: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let summary = self.describe_stream_summary(name).await?;
            if summary.stream_status == "ACTIVE" {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::TimedOut(format!(
                    "stream {name} is still {} after {timeout:?}",
                    summary.stream_status
                )));
            }
            tokio::time::sleep(STATUS_POLL_INTERVAL).await;
        }
    }

    pub async fn delete_stream(
        &self,
        name: &str,
        enforce_consumer_deletion: bool,
    ) -> Result<(), ClientError> {
        let request = v1::DeleteStreamRequest {
            stream_name: name.to_string(),
            enforce_consumer_deletion,
        };
        self.unary(request, |mut c, r| async move { c.delete_stream(r).await })
            .await
            .map(|_| ())
    }

    /// Polls until the stream has left the catalogue (DeleteStream returns with it DELETING).
    pub async fn wait_for_deleted(&self, name: &str, timeout: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.describe_stream_summary(name).await {
                Err(ClientError::Api(error)) if error.code == ErrorCode::ResourceNotFound => {
                    return Ok(());
                }
                Err(other) => return Err(other),
                Ok(summary) if tokio::time::Instant::now() >= deadline => {
                    return Err(ClientError::TimedOut(format!(
                        "stream {name} is still {} after {timeout:?}",
                        summary.stream_status
                    )));
                }
                Ok(_) => tokio::time::sleep(STATUS_POLL_INTERVAL).await,
            }
        }
    }

    /// Every stream name, following pagination.
    pub async fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        let mut names = Vec::new();
        let mut next_token = None;
        loop {
            let request = v1::ListStreamsRequest {
                next_token: next_token.take(),
                ..Default::default()
            };
            let page = self.list_streams_page(request).await?;
            names.extend(page.stream_names);
            match page.next_token {
                Some(token) if page.has_more_streams => next_token = Some(token),
                _ => return Ok(names),
            }
        }
    }

    pub async fn list_streams_page(
        &self,
        request: v1::ListStreamsRequest,
    ) -> Result<v1::ListStreamsResponse, ClientError> {
        self.unary(request, |mut c, r| async move { c.list_streams(r).await })
            .await
    }

    /// One DescribeStream page (at most 100 shards).
    pub async fn describe_stream_page(
        &self,
        request: v1::DescribeStreamRequest,
    ) -> Result<v1::StreamDescription, ClientError> {
        self.unary(
            request,
            |mut c, r| async move { c.describe_stream(r).await },
        )
        .await?
        .stream_description
        .ok_or_else(|| ClientError::Api(Error::internal("empty stream description")))
    }

    /// The stream with every shard, following DescribeStream's pages of 100.
    pub async fn describe_stream(&self, name: &str) -> Result<v1::StreamDescription, ClientError> {
        let mut request = v1::DescribeStreamRequest {
            stream_name: name.to_string(),
            ..Default::default()
        };
        let mut whole: Option<v1::StreamDescription> = None;
        loop {
            let page = self
                .unary(request.clone(), |mut c, r| async move {
                    c.describe_stream(r).await
                })
                .await?
                .stream_description
                .ok_or_else(|| ClientError::Api(Error::internal("empty stream description")))?;
            let more = page.has_more_shards;
            request.exclusive_start_shard_id = page.shards.last().map(|s| s.shard_id.clone());
            match &mut whole {
                Some(whole) => whole.shards.extend(page.shards),
                None => whole = Some(page),
            }
            if !more || request.exclusive_start_shard_id.is_none() {
                let mut whole = whole.expect("at least one page");
                whole.has_more_shards = false;
                return Ok(whole);
            }
        }
    }

    pub async fn describe_stream_summary(
        &self,
        name: &str,
    ) -> Result<v1::StreamDescriptionSummary, ClientError> {
        let request = v1::DescribeStreamSummaryRequest {
            stream_name: name.to_string(),
        };
        let response = self
            .unary(request, |mut c, r| async move {
                c.describe_stream_summary(r).await
            })
            .await?;
        response
            .stream_description_summary
            .ok_or_else(|| ClientError::Api(Error::internal("empty stream summary")))
    }

    /// One page of ListShards.
    pub async fn list_shards_page(
        &self,
        request: v1::ListShardsRequest,
    ) -> Result<v1::ListShardsResponse, ClientError> {
        self.unary(request, |mut c, r| async move { c.list_shards(r).await })
            .await
    }

    /// Every shard the filter selects, following pagination.
    pub async fn list_shards(
        &self,
        stream: &str,
        filter_opt: Option<v1::ShardFilter>,
    ) -> Result<Vec<v1::Shard>, ClientError> {
        let mut shards = Vec::new();
        let mut request = v1::ListShardsRequest {
            stream_name: Some(stream.to_string()),
            shard_filter: filter_opt.clone(),
            ..Default::default()
        };
        loop {
            let page = self.list_shards_page(request).await?;
            shards.extend(page.shards);
            match page.next_token {
                Some(token) => {
                    request = v1::ListShardsRequest {
                        next_token: Some(token),
                        shard_filter: filter_opt.clone(),
                        ..Default::default()
                    }
                }
                None => return Ok(shards),
            }
        }
    }

    /// Sets the retention period, calling Increase- or DecreaseStreamRetentionPeriod as needed.
    pub async fn set_retention(&self, name: &str, hours: u32) -> Result<(), ClientError> {
        let current = self
            .describe_stream_summary(name)
            .await?
            .retention_period_hours;
        let request = v1::UpdateRetentionRequest {
            stream_name: name.to_string(),
            retention_period_hours: hours,
        };
        if hours >= current {
            self.unary(request, |mut c, r| async move {
                c.increase_stream_retention_period(r).await
            })
            .await?;
        } else {
            self.unary(request, |mut c, r| async move {
                c.decrease_stream_retention_period(r).await
            })
            .await?;
        }
        Ok(())
    }

    /// SplitShard; the stream is UPDATING until the reshard completes.
    pub async fn split_shard(
        &self,
        stream: &str,
        shard: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), ClientError> {
        let request = v1::SplitShardRequest {
            stream_name: stream.to_string(),
            shard_to_split: shard.to_string(),
            new_starting_hash_key: new_starting_hash_key.to_string(),
        };
        self.unary(request, |mut c, r| async move { c.split_shard(r).await })
            .await
            .map(|_| ())
    }

    pub async fn merge_shards(
        &self,
        stream: &str,
        shard: &str,
        adjacent_shard: &str,
    ) -> Result<(), ClientError> {
        let request = v1::MergeShardsRequest {
            stream_name: stream.to_string(),
            shard_to_merge: shard.to_string(),
            adjacent_shard_to_merge: adjacent_shard.to_string(),
        };
        self.unary(request, |mut c, r| async move { c.merge_shards(r).await })
            .await
            .map(|_| ())
    }

    /// UpdateShardCount with UNIFORM_SCALING.
    pub async fn update_shard_count(
        &self,
        stream: &str,
        target: u32,
    ) -> Result<v1::UpdateShardCountResponse, ClientError> {
        let request = v1::UpdateShardCountRequest {
            stream_name: stream.to_string(),
            target_shard_count: target,
            scaling_type: None,
        };
        self.unary(
            request,
            |mut c, r| async move { c.update_shard_count(r).await },
        )
        .await
    }

    /// Switches a stream to PROVISIONED or ON_DEMAND.
    pub async fn update_stream_mode(&self, name: &str, mode: &str) -> Result<(), ClientError> {
        let request = v1::UpdateStreamModeRequest {
            stream_name: name.to_string(),
            stream_mode: mode.to_string(),
        };
        self.unary(
            request,
            |mut c, r| async move { c.update_stream_mode(r).await },
        )
        .await
        .map(|_| ())
    }

    /// StartStreamEncryption: later records are stored sealed with the key `key_id` names
    /// (`alias/aws/kinesis` is the key ring's `default` key). The stream is UPDATING briefly.
    pub async fn start_stream_encryption(
        &self,
        name: &str,
        key_id: &str,
    ) -> Result<(), ClientError> {
        let request = encryption_request(name, key_id);
        self.unary(request, |mut c, r| async move {
            c.start_stream_encryption(r).await
        })
        .await
        .map(|_| ())
    }

    /// StopStreamEncryption: later records are stored in clear; sealed ones stay readable.
    pub async fn stop_stream_encryption(
        &self,
        name: &str,
        key_id: &str,
    ) -> Result<(), ClientError> {
        let request = encryption_request(name, key_id);
        self.unary(request, |mut c, r| async move {
            c.stop_stream_encryption(r).await
        })
        .await
        .map(|_| ())
    }

    pub async fn add_tags(
        &self,
        name: &str,
        tags: std::collections::HashMap<String, String>,
    ) -> Result<(), ClientError> {
        let request = v1::AddTagsToStreamRequest {
            stream_name: name.to_string(),
            tags,
        };
        self.unary(
            request,
            |mut c, r| async move { c.add_tags_to_stream(r).await },
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<(), ClientError> {
        let request = v1::RemoveTagsFromStreamRequest {
            stream_name: name.to_string(),
            tag_keys: keys,
        };
        self.unary(request, |mut c, r| async move {
            c.remove_tags_from_stream(r).await
        })
        .await
        .map(|_| ())
    }

    /// Every tag of a stream in key order, following pagination.
    pub async fn list_tags(&self, name: &str) -> Result<Vec<v1::Tag>, ClientError> {
        let mut tags: Vec<v1::Tag> = Vec::new();
        loop {
            let request = v1::ListTagsForStreamRequest {
                stream_name: name.to_string(),
                exclusive_start_tag_key: tags.last().map(|tag| tag.key.clone()),
                limit: None,
            };
            let page = self
                .unary(request, |mut c, r| async move {
                    c.list_tags_for_stream(r).await
                })
                .await?;
            tags.extend(page.tags);
            if !page.has_more_tags {
                return Ok(tags);
            }
        }
    }

    pub async fn register_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<v1::Consumer, ClientError> {
        let request = v1::RegisterStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer.to_string(),
        };
        let response = self
            .unary(request, |mut c, r| async move {
                c.register_stream_consumer(r).await
            })
            .await?;
        response
            .consumer
            .ok_or_else(|| ClientError::Api(Error::internal("empty consumer")))
    }

    pub async fn deregister_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<(), ClientError> {
        let request = v1::DeregisterStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer.to_string(),
        };
        self.unary(request, |mut c, r| async move {
            c.deregister_stream_consumer(r).await
        })
        .await
        .map(|_| ())
    }

    pub async fn describe_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<v1::Consumer, ClientError> {
        let request = v1::DescribeStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer.to_string(),
        };
        let response = self
            .unary(request, |mut c, r| async move {
                c.describe_stream_consumer(r).await
            })
            .await?;
        response
            .consumer
            .ok_or_else(|| ClientError::Api(Error::internal("empty consumer")))
    }

    pub async fn list_consumers(&self, stream: &str) -> Result<Vec<v1::Consumer>, ClientError> {
        let request = v1::ListStreamConsumersRequest {
            stream_name: stream.to_string(),
        };
        let response = self
            .unary(request, |mut c, r| async move {
                c.list_stream_consumers(r).await
            })
            .await?;
        Ok(response.consumers)
    }

    /// SubscribeToShard: a stream of events pushed as records commit. It ends after at most 5
    /// minutes, or early (leader change, node stop); resubscribe from the last event's
    /// continuation sequence number with AT_SEQUENCE_NUMBER.
    pub async fn subscribe_to_shard(
        &self,
        request: v1::SubscribeToShardRequest,
    ) -> Result<tonic::Streaming<v1::SubscribeToShardEvent>, ClientError> {
        // The call timeout bounds opening the stream only; the stream itself lives for minutes.
        self.failover(|index| {
            let mut client = self.endpoints[index].1.clone();
            let request = request.clone();
            async move { client.subscribe_to_shard(request).await }
        })
        .await
    }

    /// Puts one record; fails as a whole.
    pub async fn put_record(
        &self,
        request: v1::PutRecordRequest,
    ) -> Result<v1::PutRecordResponse, ClientError> {
        self.unary(request, |mut c, r| async move { c.put_record(r).await })
            .await
    }

    /// Puts up to 500 records; the answer has one entry per record, in order.
    pub async fn put_records(
        &self,
        stream: &str,
        records: Vec<v1::PutRecordsRequestEntry>,
    ) -> Result<v1::PutRecordsResponse, ClientError> {
        let request = v1::PutRecordsRequest {
            stream_name: stream.to_string(),
            records,
            ..Default::default()
        };
        self.put_records_request(request).await
    }

    /// PutRecords with every field of the request (an idempotent put sets `producer_id` and
    /// `producer_sequence`).
    pub async fn put_records_request(
        &self,
        request: v1::PutRecordsRequest,
    ) -> Result<v1::PutRecordsResponse, ClientError> {
        let response = self
            .unary(request, |mut c, r| async move { c.put_records(r).await })
            .await?;
        // Records refused for want of a quorum: as for a whole call refused so, the next call
        // starts at the next endpoint (the answering node may be the one cut off).
        let quorum = ErrorCode::WriteQuorumUnavailable.as_str();
        if response
            .records
            .iter()
            .any(|r| r.error_code.as_deref() == Some(quorum))
        {
            self.move_past_current();
        }
        Ok(response)
    }

    /// Makes the endpoint after the current one current.
    fn move_past_current(&self) {
        let count = self.endpoints.len();
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                Some((current + 1) % count)
            });
    }

    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        iterator_type: &str,
        starting_sequence_number_opt: Option<&str>,
    ) -> Result<String, ClientError> {
        let request = v1::GetShardIteratorRequest {
            stream_name: stream.to_string(),
            shard_id: shard_id.to_string(),
            shard_iterator_type: iterator_type.to_string(),
            starting_sequence_number: starting_sequence_number_opt.map(str::to_string),
            timestamp_ms: None,
        };
        self.shard_iterator(request).await
    }

    /// GetShardIterator with every field (AT_TIMESTAMP needs `timestamp_ms`).
    pub async fn shard_iterator(
        &self,
        request: v1::GetShardIteratorRequest,
    ) -> Result<String, ClientError> {
        let response = self
            .unary(
                request,
                |mut c, r| async move { c.get_shard_iterator(r).await },
            )
            .await?;
        Ok(response.shard_iterator)
    }

    pub async fn get_records(
        &self,
        shard_iterator: &str,
        limit_opt: Option<u32>,
    ) -> Result<v1::GetRecordsResponse, ClientError> {
        let request = v1::GetRecordsRequest {
            shard_iterator: shard_iterator.to_string(),
            limit: limit_opt,
        };
        self.unary(request, |mut c, r| async move { c.get_records(r).await })
            .await
    }
}

/// A status that says nothing about the request itself: the endpoint could not be reached or
/// dropped the connection.
fn is_transport_failure(status: &tonic::Status) -> bool {
    status.details().is_empty()
        && (matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ) || is_protocol_mismatch(status))
}

/// A plain-text client at a TLS port gets its HTTP/2 preface answered with a TLS alert, which
/// h2 reports as a protocol error: no node answered in a language the client speaks.
fn is_protocol_mismatch(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Internal && status.message().contains("h2 protocol error")
}

/// What a failed endpoint reports: the transport's reasons, and a hint where they point at TLS.
fn describe_failure(status: &tonic::Status) -> String {
    let text = describe_status(status);
    if is_protocol_mismatch(status) {
        format!("{text} (does the node serve TLS? give --tls-ca or TRIBUTARY_TLS_CA)")
    } else {
        text
    }
}

/// Start/StopStreamEncryption's request: KMS is the only encryption type.
fn encryption_request(name: &str, key_id: &str) -> v1::StreamEncryptionRequest {
    v1::StreamEncryptionRequest {
        stream_name: name.to_string(),
        encryption_type: "KMS".to_string(),
        key_id: key_id.to_string(),
    }
}

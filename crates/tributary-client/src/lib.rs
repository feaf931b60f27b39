//! The Tributary SDK. [`Client`] speaks the public gRPC API to any node of a cluster and fails
//! over to the next listed endpoint when one is unreachable. Answers are the API's messages
//! (`tributary_client::v1`); failures are typed ([`ClientError`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tributary_proto::error_from_status;
pub use tributary_proto::v1;
use tributary_proto::v1::tributary_client::TributaryClient;
pub use tributary_types::{Error, ErrorCode};

/// The default endpoint when none is given (the first node of `tributary dev`).
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7101";
/// Requests carry up to 5 MiB of records; reads return up to 10 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How long one call may take before the client gives up on that endpoint.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
}

impl ClientError {
    /// The stable code to print or match on.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Api(error) => error.code.as_str(),
            ClientError::Unreachable(_) => "ENDPOINT_UNREACHABLE",
            ClientError::BadEndpoint(_) => "INVALID_ARGUMENT",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ClientError::Api(error) => error.message.clone(),
            ClientError::Unreachable(why) => format!("no endpoint answered ({why})"),
            ClientError::BadEndpoint(why) => why.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    endpoints: Arc<Vec<(String, TributaryClient<Channel>)>>,
    current: Arc<AtomicUsize>,
    call_timeout: Duration,
}

impl Client {
    /// A client for the given `host:port` endpoints; connections are made on first use.
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::BadEndpoint(
                "at least one endpoint is needed".to_string(),
            ));
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        for address in endpoints {
            let address = address.as_ref().trim().to_string();
            let uri = if address.contains("://") {
                address.clone()
            } else {
                format!("http://{address}")
            };
            let endpoint = Endpoint::from_shared(uri)
                .map_err(|e| ClientError::BadEndpoint(format!("{address}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            let client = TributaryClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            clients.push((address, client));
        }
        Ok(Client {
            endpoints: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Parses a comma-separated endpoint list (`host:port,host:port`).
    pub fn from_list(list: &str) -> Result<Client, ClientError> {
        let endpoints: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        Client::new(&endpoints)
    }

    pub fn with_call_timeout(mut self, timeout: Duration) -> Client {
        self.call_timeout = timeout;
        self
    }

    /// Runs `call` on the current endpoint, moving on to the next one when it is unreachable.
    /// A call the cluster answered (even with an error) is never repeated.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(TributaryClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.endpoints.len() {
            let index = (start + step) % self.endpoints.len();
            let (address, client) = &self.endpoints[index];
            match tokio::time::timeout(self.call_timeout, call(client.clone())).await {
                Ok(Ok(response)) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) if is_transport_failure(&status) => {
                    failures.push(format!("{address}: {}", status.message()))
                }
                Ok(Err(status)) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Err(ClientError::Api(error_from_status(&status)));
                }
                Err(_) => failures.push(format!(
                    "{address}: no answer within {:?}",
                    self.call_timeout
                )),
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    pub async fn cluster_status(&self) -> Result<v1::ClusterStatusResponse, ClientError> {
        self.call(|mut c| async move { c.cluster_status(v1::ClusterStatusRequest {}).await })
            .await
    }

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
        };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.create_stream(request).await }
        })
        .await
        .map(|_| ())
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), ClientError> {
        let request = v1::DeleteStreamRequest {
            stream_name: name.to_string(),
        };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.delete_stream(request).await }
        })
        .await
        .map(|_| ())
    }

    pub async fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        let response = self
            .call(|mut c| async move { c.list_streams(v1::ListStreamsRequest {}).await })
            .await?;
        Ok(response.stream_names)
    }

    pub async fn describe_stream(&self, name: &str) -> Result<v1::StreamDescription, ClientError> {
        let request = v1::DescribeStreamRequest {
            stream_name: name.to_string(),
        };
        let response = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.describe_stream(request).await }
            })
            .await?;
        response
            .stream_description
            .ok_or_else(|| ClientError::Api(Error::internal("empty stream description")))
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
        };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.put_records(request).await }
        })
        .await
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
        };
        let response = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.get_shard_iterator(request).await }
            })
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
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_records(request).await }
        })
        .await
    }
}

/// A status that says nothing about the request itself: the endpoint could not be reached or
/// dropped the connection.
fn is_transport_failure(status: &tonic::Status) -> bool {
    status.details().is_empty()
        && matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        )
}

//! The Kinesis-compatible HTTP endpoint (`--kinesis-listen`): unchanged AWS SDKs, the AWS CLI and
//! Kinesis tools talk to a node as they would to Kinesis. `POST /` with
//! `X-Amz-Target: Kinesis_20131202.<Operation>` and a JSON 1.1 or CBOR 1.1 body; requests are
//! verified with SigV4 unless the node runs with `--kinesis-auth none`. Each operation is a thin
//! adapter over the same [`Node`] methods the gRPC service calls ([`ops`]); the wire format
//! itself lives in `tributary-kinesis`.

mod ops;
mod shapes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tributary_kinesis::sigv4::{self, Credentials, Verifier};
use tributary_kinesis::{Encoding, KinesisError, TARGET_PREFIX, eventstream};

use crate::auth::{AuthMode, Principal, Resource};
use crate::clients::LimitedListener;
use crate::node::Node;
use crate::telemetry;
use crate::tls::{NodeTls, Port, TlsListener};
pub use ops::OPERATIONS;
use ops::{Operations, Reply};

/// The largest request body accepted (a full PutRecords is 5 MiB before base64; kinesalite's
/// bound). Larger bodies get HTTP 413.
pub const MAX_REQUEST_BYTES: usize = 7 * 1024 * 1024;
/// The port `tributary dev` serves the endpoint on (node 1; node i on this + i - 1).
pub const DEV_PORT: u16 = 4567;
/// SubscribeToShard's response type.
const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum KinesisAuth {
    /// AWS Signature Version 4 against these access keys (the default).
    SigV4(Credentials),
    /// No authentication: local development only (`tributary dev`).
    None,
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct KinesisConfig {
    pub listen: std::net::SocketAddr,
    pub auth: KinesisAuth,
}

struct Endpoint {
    operations: Operations,
    verifier_opt: Option<Verifier>,
}

/// Serves the endpoint until the node stops.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    auth: KinesisAuth,
    tls_opt: Option<Arc<NodeTls>>,
) {
    let mut stop = node.stop_signal();
    let arns = node.config.arns.clone();
    let verifier_opt = match auth {
        KinesisAuth::SigV4(credentials) => Some(Verifier {
            region: arns.region.clone(),
            credentials,
        }),
        KinesisAuth::None => None,
    };
    let endpoint = Arc::new(Endpoint {
        operations: Operations {
            node: node.clone(),
            arns,
        },
        verifier_opt,
    });
    let app = Router::new().fallback(handle).with_state(endpoint);
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    // The peer address reaches handlers (SubscribeToShard counts subscriptions per client).
    let result = match tls_opt {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls, Port::Kinesis, node);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<PeerAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        None => {
            let listener = LimitedListener::new(listener, node, Port::Kinesis);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<PeerAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, "Kinesis endpoint failed");
    }
}

/// The cluster's users as SigV4's source of secrets (`--auth required`).
struct ClusterSecrets<'a> {
    node: &'a Node,
}

impl sigv4::SecretSource for ClusterSecrets<'_> {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        self.node
            .access_key_secret(access_key_id)
            .map(|(_, secret)| secret)
    }
}

/// What a Kinesis request acts on, from its body: the stream by name or ARN, a consumer by
/// ARN, the stream an iterator or NextToken names, or every stream.
enum OwnedResource {
    Stream(String),
    Consumer(String, String),
    AllStreams,
}

impl OwnedResource {
    fn as_resource(&self) -> Resource<'_> {
        match self {
            OwnedResource::Stream(name) => Resource::Stream(name),
            OwnedResource::Consumer(stream, consumer) => Resource::Consumer(stream, consumer),
            OwnedResource::AllStreams => Resource::AllStreams,
        }
    }
}

fn resource_of(operation: &str, document: &serde_json::Value) -> OwnedResource {
    let field = |name: &str| document.get(name).and_then(|v| v.as_str());
    let stream_of_arn = |arn: &str| arn.split_once(":stream/").map(|(_, rest)| rest.to_string());
    if let Some(arn) = field("ConsumerARN")
        && let Some(rest) = stream_of_arn(arn)
        && let Some((stream, consumer)) = rest.split_once("/consumer/")
    {
        let consumer = consumer.split(':').next().unwrap_or(consumer);
        return OwnedResource::Consumer(stream.to_string(), consumer.to_string());
    }
    if let Some(name) = field("StreamName") {
        return OwnedResource::Stream(name.to_string());
    }
    if let Some(stream) = field("StreamARN").and_then(stream_of_arn) {
        return OwnedResource::Stream(stream);
    }
    let now = crate::now_ms();
    if let Some(iterator) = field("ShardIterator")
        && let Ok(iterator) = tributary_types::ShardIterator::decode(iterator, now)
    {
        return OwnedResource::Stream(iterator.stream.to_string());
    }
    if operation == "ListShards"
        && let Some(token) = field("NextToken")
        && let Ok(token) = tributary_types::NextToken::decode(token, now)
    {
        return OwnedResource::Stream(token.scope);
    }
    OwnedResource::AllStreams
}

async fn handle(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let encoding = Encoding::from_content_type(
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or("");
    let result = async {
        let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|_| KinesisError::request_too_large(MAX_REQUEST_BYTES))?;
        let node = &endpoint.operations.node;
        let principal = match &endpoint.verifier_opt {
            Some(verifier) => {
                let request = sigv4::Request {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query_opt: parts.uri.query(),
                    headers: &parts.headers,
                    authority_opt: parts.uri.authority().map(|a| a.as_str()),
                    body: &body,
                };
                if node.auth_mode() == AuthMode::Required {
                    let secrets = ClusterSecrets { node };
                    let access_key_id = verifier
                        .verify_with(&request, SystemTime::now(), &secrets)
                        .inspect_err(|error| {
                            node.audit(
                                &Principal::Anonymous,
                                &format!("kinesis:{operation}"),
                                "-",
                                "unauthenticated",
                                Some(&error.message),
                            );
                        })?;
                    match node.access_key_secret(&access_key_id) {
                        Some((user, _)) => Principal::User(user),
                        None => return Err(KinesisError::unrecognized_client()),
                    }
                } else {
                    verifier.verify(&request, SystemTime::now())?;
                    Principal::Anonymous
                }
            }
            None => Principal::Anonymous,
        };
        // Unknown operations are refused before authorization, so actions (and the metric
        // labels of denials) come from the list of operations served.
        if !ops::OPERATIONS.contains(&operation) {
            return Err(KinesisError::unknown_operation(&target));
        }
        let document = encoding.decode(&body)?;
        let resource = resource_of(operation, &document);
        node.authorize(
            &principal,
            &format!("kinesis:{operation}"),
            resource.as_resource(),
        )
        .map_err(KinesisError::from)?;
        let peer_opt = parts
            .extensions
            .get::<ConnectInfo<PeerAddr>>()
            .map(|info| info.0.0);
        endpoint.operations.run(operation, document, peer_opt).await
    }
    .await;
    // Label metrics with known operations only, so no client (signed or not) can grow the
    // label set.
    let label = match ops::OPERATIONS.iter().find(|known| **known == operation) {
        Some(known) => *known,
        None => "Unknown",
    };
    telemetry::record_kinesis_request(
        label,
        result.as_ref().err().map(|e| e.name),
        started.elapsed().as_secs_f64(),
    );
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match result {
        Ok(Reply::Document(document)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            encoding.encode(&document),
        )
            .into_response(),
        Ok(Reply::Events(events)) => event_stream(encoding, events),
        Err(error) => error_response(encoding, &error),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert("x-amzn-requestid", value.clone());
        response.headers_mut().insert("x-amz-id-2", value);
    }
    response
}

fn error_response(encoding: Encoding, error: &KinesisError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        encoding.encode(&error.body()),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error.name));
    response
}

/// The content type of each event's payload.
fn event_content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "application/json",
        Encoding::Cbor => encoding.content_type(),
    }
}

/// The caller's address, as handlers see it.
#[derive(Debug, Clone, Copy)]
struct PeerAddr(SocketAddr);

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

/// SubscribeToShard's body: an `initial-response` event, then one `SubscribeToShardEvent` per
/// event; an error ends the stream as an exception message.
fn event_stream(encoding: Encoding, events: crate::fanout::Events) -> Response {
    let content_type = event_content_type(encoding);
    let initial = eventstream::event(
        "initial-response",
        content_type,
        &encoding.encode(&json!({})),
    );
    let messages = events
        .scan(false, move |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let message = match item {
                Ok(event) => eventstream::event(
                    "SubscribeToShardEvent",
                    content_type,
                    &encoding.encode(&ops::subscribe_event(event)),
                ),
                Err(error) => {
                    *ended = true;
                    let error = KinesisError::from(error);
                    eventstream::exception(
                        error.name,
                        content_type,
                        &encoding.encode(&error.body()),
                    )
                }
            };
            futures::future::ready(Some(message))
        })
        .map(|message| Ok::<_, Infallible>(Bytes::from(message)));
    let body = futures::stream::once(futures::future::ready(Ok::<_, Infallible>(Bytes::from(
        initial,
    ))))
    .chain(messages);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, EVENT_STREAM_CONTENT_TYPE)],
        Body::from_stream(body),
    )
        .into_response()
}

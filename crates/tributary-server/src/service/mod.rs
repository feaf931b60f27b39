//! gRPC services: thin shims that convert messages (in [`convert`]) and call [`Node`]. Every
//! error leaves through [`tributary_proto::status_from_error`].

mod access;
pub mod convert;
pub(crate) use public::status;
mod internal;
mod public;
mod tables;

use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tributary_proto::internal::internal_server::InternalServer;
use tributary_proto::v1::access_server::AccessServer;
use tributary_proto::v1::tables_server::TablesServer;
use tributary_proto::v1::tributary_server::TributaryServer;
use tributary_raft::network::MAX_INTERNAL_MESSAGE_BYTES;

use crate::auth::GrpcAuthLayer;
use crate::node::{MAX_PUBLIC_MESSAGE_BYTES, Node};
use crate::tls::{NodeCertificateCheck, NodeTls, Port};

/// Serves the public and internal APIs on one port until the node stops; in-flight calls finish.
pub async fn serve(node: Arc<Node>, listener: TcpListener, tls_opt: Option<Arc<NodeTls>>) {
    let mut stop = node.stop_signal();
    let public = TributaryServer::new(public::PublicService { node: node.clone() })
        .max_decoding_message_size(MAX_PUBLIC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PUBLIC_MESSAGE_BYTES);
    let tables = TablesServer::new(tables::TablesService { node: node.clone() });
    let internal = InternalServer::new(internal::InternalService { node: node.clone() })
        .max_decoding_message_size(MAX_INTERNAL_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_INTERNAL_MESSAGE_BYTES);
    let internal = InterceptedService::new(
        internal,
        NodeCertificateCheck {
            tls_on: tls_opt.is_some(),
        },
    );
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let access = AccessServer::new(access::AccessService { node: node.clone() });
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(crate::clients::MAX_CONCURRENT_STREAMS))
        // Every call is authenticated before it reaches a service (a no-op under --auth none).
        .layer(GrpcAuthLayer { node: node.clone() })
        .add_service(public)
        .add_service(access)
        .add_service(tables)
        .add_service(internal);
    let result = match tls_opt {
        Some(tls) => {
            let mut connections = crate::tls::accept(listener, tls, Port::Grpc, node.clone());
            let incoming = futures::stream::poll_fn(move |cx| {
                connections
                    .poll_recv(cx)
                    .map(|accepted| accepted.map(|(stream, _)| Ok::<_, std::io::Error>(stream)))
            });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        // Connections within the client limits, with TCP_NODELAY (see `clients::accept`).
        None => {
            let incoming = futures::stream::unfold((listener, node), |(listener, node)| async {
                let (connection, _) =
                    crate::clients::accept(&listener, &node.client_limits, Port::Grpc).await;
                Some((Ok::<_, std::io::Error>(connection), (listener, node)))
            });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, "gRPC server failed");
    }
}

//! The operations HTTP port: `GET /health` (200 while the node serves) and `GET /metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::node::Node;

#[derive(Clone)]
struct HttpState {
    node: Arc<Node>,
    prometheus: PrometheusHandle,
}

pub async fn serve(node: Arc<Node>, listener: TcpListener, prometheus: PrometheusHandle) {
    let mut stop = node.stop_signal();
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(HttpState { node, prometheus });
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

async fn health(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.node.is_serving() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn metrics(State(state): State<HttpState>) -> String {
    state.prometheus.render()
}

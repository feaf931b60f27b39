//! The operations HTTP port: `GET /health` (200 while the node serves) and `GET /metrics`.
//! With `--fault-injection` (chaos tests only) also `GET /faults` and `PUT /faults`, whose JSON
//! body `{"cut": [2, 3]}` names the peers this node is cut off from (`[]` heals).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use tributary_types::NodeId;

use crate::node::Node;

#[derive(Clone)]
struct HttpState {
    node: Arc<Node>,
    prometheus: PrometheusHandle,
}

pub async fn serve(node: Arc<Node>, listener: TcpListener, prometheus: PrometheusHandle) {
    let mut stop = node.stop_signal();
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    if node.config.faults_opt.is_some() {
        app = app.route("/faults", get(get_faults).put(put_faults));
    }
    let app = app.with_state(HttpState { node, prometheus });
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

/// The faults injected into this node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    /// Peers this node is cut off from.
    cut: BTreeSet<NodeId>,
}

async fn get_faults(State(state): State<HttpState>) -> String {
    let faults = Faults {
        cut: state.node.router.cut(),
    };
    serde_json::to_string(&faults).expect("faults serialize") + "\n"
}

async fn put_faults(State(state): State<HttpState>, body: String) -> (StatusCode, String) {
    match serde_json::from_str::<Faults>(&body) {
        Ok(faults) => {
            tracing::warn!(cut = ?faults.cut, "fault injection: cut set replaced");
            state.node.router.set_cut(faults.cut);
            (StatusCode::OK, "ok\n".to_string())
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            format!("expected {{\"cut\": [node ids]}}: {error}\n"),
        ),
    }
}

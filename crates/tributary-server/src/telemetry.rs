//! Metrics: names in one place, the Prometheus recorder, and a task that exports each Raft
//! group's leader, term and commit index.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use openraft::async_runtime::WatchReceiver;
use openraft::{RaftMetrics, RaftTypeConfig};
use tributary_types::{ErrorCode, ShardId, StreamName};

use crate::node::Node;

const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The process-wide Prometheus recorder (installed once; nodes in one test process share it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only Tributary's own"
                );
            }
            handle
        })
        .clone()
}

pub fn record_put(stream: &StreamName, shard: ShardId, records: usize, bytes: usize) {
    let labels = [("stream", stream.to_string()), ("shard", shard.to_string())];
    counter!("tributary_shard_incoming_records_total", &labels).increment(records as u64);
    counter!("tributary_shard_incoming_bytes_total", &labels).increment(bytes as u64);
}

/// Records a replica removed for retention (counted on every replica that applies the trim).
pub fn record_trimmed(shard: ShardId, records: u64) {
    counter!("tributary_records_trimmed_total", "shard" => shard.to_string()).increment(records);
}

pub fn record_put_latency(seconds: f64) {
    histogram!("tributary_put_latency_seconds").record(seconds);
}

/// One request to the Kinesis endpoint: counted per operation, errors per exception name.
pub fn record_kinesis_request(operation: &str, error_opt: Option<&'static str>, seconds: f64) {
    let operation = operation.to_string();
    counter!("tributary_kinesis_requests_total", "operation" => operation.clone()).increment(1);
    if let Some(name) = error_opt {
        counter!("tributary_kinesis_errors_total", "operation" => operation.clone(), "type" => name)
            .increment(1);
    }
    histogram!("tributary_kinesis_request_seconds", "operation" => operation).record(seconds);
}

pub fn record_error(code: ErrorCode) {
    counter!("tributary_errors_total", "code" => code.as_str()).increment(1);
}

fn export_group<C: RaftTypeConfig<NodeId = u64, Term = u64>>(
    labels: &[(&'static str, String)],
    metrics: &RaftMetrics<C>,
) {
    let is_leader = metrics.current_leader == Some(metrics.id);
    gauge!("tributary_raft_is_leader", labels).set(if is_leader { 1.0 } else { 0.0 });
    gauge!("tributary_raft_leader", labels)
        .set(metrics.current_leader.map_or(-1.0, |id| id as f64));
    gauge!("tributary_raft_term", labels).set(metrics.current_term as f64);
    gauge!("tributary_raft_commit_index", labels).set(
        metrics
            .cluster_committed
            .as_ref()
            .map_or(0.0, |id| id.index as f64),
    );
    gauge!("tributary_raft_applied_index", labels).set(
        metrics
            .last_applied
            .as_ref()
            .map_or(0.0, |id| id.index as f64),
    );
}

pub async fn export_raft_metrics(node: Arc<Node>) {
    let mut interval = tokio::time::interval(EXPORT_INTERVAL);
    loop {
        interval.tick().await;
        let meta_labels = [
            ("group", "0".to_string()),
            ("stream", String::new()),
            ("shard", String::new()),
        ];
        export_group(&meta_labels, &node.meta_raft.metrics().borrow_watched());
        for group in node.groups.all() {
            let labels = [
                ("group", group.group.to_string()),
                ("stream", group.stream.to_string()),
                ("shard", group.shard.to_string()),
            ];
            export_group(&labels, &group.raft.metrics().borrow_watched());
        }
    }
}

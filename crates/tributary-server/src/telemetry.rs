//! Metrics: names in one place, the Prometheus recorder, and a task that exports each Raft
//! group's leader, term, log indexes and, from leaders, each follower's lag. The Grafana
//! dashboard `cluster/grafana/tributary.json` charts them.

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

/// One GetRecords answered from this node's replica: records and bytes out, and how far behind
/// the shard's newest record the reader is (Kinesis' GetRecords.IteratorAgeMilliseconds).
pub fn record_get_records(
    stream: &StreamName,
    shard: ShardId,
    records: usize,
    bytes: usize,
    millis_behind_latest: u64,
) {
    let labels = [("stream", stream.to_string()), ("shard", shard.to_string())];
    counter!("tributary_shard_outgoing_records_total", &labels).increment(records as u64);
    counter!("tributary_shard_outgoing_bytes_total", &labels).increment(bytes as u64);
    gauge!("tributary_iterator_age_milliseconds", &labels).set(millis_behind_latest as f64);
}

/// A connection whose TLS handshake failed or timed out.
pub fn record_tls_handshake_failure() {
    counter!("tributary_tls_handshake_failures_total").increment(1);
}

/// A call to the node-to-node API without a node certificate.
pub fn record_node_call_refused() {
    counter!("tributary_node_calls_refused_total").increment(1);
}

/// A call refused by the caller's policies, by action.
pub fn record_access_denied(action: &str) {
    // Actions come from the list each service authorizes, never from the caller.
    counter!("tributary_access_denied_total", "action" => action.to_string()).increment(1);
}

/// Changed certificate files, loaded or (when they did not load) left aside.
pub fn record_tls_reload(loaded: bool) {
    if loaded {
        counter!("tributary_tls_reloads_total").increment(1);
    } else {
        counter!("tributary_tls_reload_failures_total").increment(1);
    }
}

/// The versions of each key of the key ring a node loaded (names come from the operator's file).
pub fn record_key_ring(ring: &crate::keyring::KeyRing) {
    for (name, count) in ring.version_counts() {
        gauge!("tributary_key_ring_versions", "key" => name.to_string()).set(count as f64);
    }
}

/// A connection or subscription refused by a client limit (`limit`: total or per_client).
pub fn record_client_limit(resource: &'static str, refusal: crate::clients::Refusal) {
    counter!(
        "tributary_client_limit_refusals_total",
        "resource" => resource,
        "limit" => refusal.as_str()
    )
    .increment(1);
}

/// A changed key ring file, loaded or (when it did not load) left aside.
pub fn record_key_ring_reload(loaded: bool) {
    if loaded {
        counter!("tributary_key_ring_reloads_total").increment(1);
    } else {
        counter!("tributary_key_ring_reload_failures_total").increment(1);
    }
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
    let last_log_index = metrics.last_log_index.unwrap_or(0);
    gauge!("tributary_raft_last_log_index", labels).set(last_log_index as f64);
    // How many log entries each follower is behind, as its leader sees it. Other replicas say 0
    // for every member, so a leader that stepped down leaves no stale lag behind: take the max
    // over nodes.
    let lag = |follower: u64, entries: u64| {
        let mut follower_labels = labels.to_vec();
        follower_labels.push(("follower", follower.to_string()));
        gauge!("tributary_raft_replication_lag_entries", &follower_labels).set(entries as f64);
    };
    match &metrics.replication {
        Some(replication) => {
            for (follower, matched_opt) in replication.iter() {
                if *follower != metrics.id {
                    let matched = matched_opt.as_ref().map_or(0, |id| id.index);
                    lag(*follower, last_log_index.saturating_sub(matched));
                }
            }
        }
        None => {
            for member in metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
            {
                if member != metrics.id {
                    lag(member, 0);
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    /// Every metric the Grafana dashboard charts is one this module exports (histograms and
    /// summaries by their base name).
    #[test]
    fn the_dashboard_charts_only_exported_metrics() {
        let dashboard = include_str!("../../../cluster/grafana/tributary.json");
        let source = include_str!("telemetry.rs");
        let parsed: serde_json::Value = serde_json::from_str(dashboard).expect("valid JSON");
        assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10));
        let mut charted = std::collections::BTreeSet::new();
        let mut rest = dashboard;
        while let Some(start) = rest.find("tributary_") {
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[start + name.len()..];
            charted.insert(name);
        }
        assert!(charted.len() > 10, "{charted:?}");
        for name in charted {
            let base = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_count"))
                .or_else(|| name.strip_suffix("_sum"))
                .unwrap_or(&name);
            assert!(
                source.contains(&format!("\"{base}\"")),
                "the dashboard charts {name}, which is not exported"
            );
        }
    }
}

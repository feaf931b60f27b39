//! Raft timing for both group kinds.
//!
//! Heartbeats cost groups × followers / interval RPCs per leader, so groups beat every 200 ms
//! rather than openraft's LAN default of 50 ms. Followers grant no vote while their leader lease
//! (= the maximum election timeout) runs, so a candidate's first attempt after a leader dies is
//! refused and the second wins: a killed leader is replaced in about 1.4–2.8 s. The timeouts stay
//! far above the p99 of a synced log append.

use std::sync::Arc;

use openraft::{Config, SnapshotPolicy};

pub const HEARTBEAT_INTERVAL_MS: u64 = 200;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 700;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1400;
/// Build a snapshot (and purge the log behind it) after this many applied entries.
pub const SNAPSHOT_AFTER_LOGS: u64 = 10_000;
/// Entries kept behind a snapshot so a briefly lagging follower catches up from the log.
pub const LOGS_KEPT_BEHIND_SNAPSHOT: u64 = 1_000;

pub fn raft_config(cluster_name: &str) -> Arc<Config> {
    let config = Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_AFTER_LOGS),
        max_in_snapshot_log_to_keep: LOGS_KEPT_BEHIND_SNAPSHOT,
        // A node back from a partition must not depose a healthy leader.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    Arc::new(
        config
            .validate()
            .expect("the built-in Raft config is valid"),
    )
}

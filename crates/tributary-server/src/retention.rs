//! Retention. Each shard's leader checks now and then whether its oldest record has outlived the
//! stream's retention period and, if so, proposes a trim: a Raft entry every replica applies, so
//! expired records leave storage everywhere (not a read-time filter), and TRIM_HORIZON starts at
//! the oldest retained record.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tributary_raft::shard::ShardCommand;

use crate::groups::ShardGroup;
use crate::node::Node;
use crate::now_ms;
use crate::shard::records;
use crate::writes::{Attempt, propose};

/// The longest pause between two retention checks (an hour's retention is checked every minute).
const MAX_CHECK_INTERVAL_MS: u64 = 60_000;
/// The shortest, for tests that shorten the retention hour.
const MIN_CHECK_INTERVAL_MS: u64 = 100;

pub(crate) async fn trim_expired_records(node: Arc<Node>) {
    let interval = Duration::from_millis(
        node.config
            .retention_hour_ms
            .clamp(MIN_CHECK_INTERVAL_MS, MAX_CHECK_INTERVAL_MS),
    );
    let mut stop = node.stop_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        for group in node.groups.all() {
            if group.current_leader() != Some(node.id()) {
                continue;
            }
            if let Err(error) = trim_group(&node, &group).await {
                tracing::warn!(group = %group.group, %error, "retention trim failed; retrying later");
            }
        }
    }
}

async fn trim_group(node: &Node, group: &ShardGroup) -> Result<(), String> {
    let Some(retention_hours) = node.meta.read(|state| {
        state
            .streams
            .get(&group.stream)
            .map(|stream| stream.retention_hours)
    }) else {
        return Ok(());
    };
    let before_ms =
        now_ms().saturating_sub(u64::from(retention_hours) * node.config.retention_hour_ms);
    let store = node.store.clone();
    let id = group.group;
    let oldest_opt = tokio::task::spawn_blocking(move || records::oldest_arrival_ms(&store, id))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if oldest_opt.is_none_or(|oldest| oldest >= before_ms) {
        return Ok(());
    }
    let deadline = Instant::now() + node.config.write_timeout;
    let what = format!("{} of stream {}", group.shard, group.stream);
    match propose(
        &group.raft,
        ShardCommand::Trim { before_ms },
        deadline,
        &what,
    )
    .await
    {
        Attempt::Done(Ok(_)) => Ok(()),
        Attempt::Done(Err(error)) => Err(error.to_string()),
        Attempt::Retry { why, .. } => Err(why),
    }
}

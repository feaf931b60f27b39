//! ListShards' filters, as pure functions of the catalogue and the clock. A closed shard whose
//! close is older than the retention period holds no readable record any more: it is "expired"
//! and listed by no filter.

use tributary_types::{Error, ShardId};

use super::state::{ShardMeta, ShardStatus, StreamMeta};

/// `ShardFilter.Type` with its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFilter {
    /// Open shards only.
    AtLatest,
    /// The oldest shards within retention: those whose parents have expired (or never existed).
    AtTrimHorizon,
    /// Every shard within retention (the default).
    FromTrimHorizon,
    /// Shards within retention with an id above this one.
    AfterShardId(ShardId),
    /// Shards open at this time (epoch ms); before the stream existed, the stream's first shards.
    AtTimestamp(u64),
    /// Shards closed at or after this time, and open shards.
    FromTimestamp(u64),
}

impl ShardFilter {
    /// Builds a filter from its wire type and argument.
    pub fn parse(
        kind: &str,
        shard_id_opt: Option<&str>,
        timestamp_ms_opt: Option<u64>,
    ) -> Result<ShardFilter, Error> {
        let timestamp = || {
            timestamp_ms_opt.ok_or_else(|| {
                Error::invalid_argument(format!("ShardFilter type {kind} needs a Timestamp"))
            })
        };
        match kind {
            "AT_LATEST" => Ok(ShardFilter::AtLatest),
            "AT_TRIM_HORIZON" => Ok(ShardFilter::AtTrimHorizon),
            "FROM_TRIM_HORIZON" => Ok(ShardFilter::FromTrimHorizon),
            "AFTER_SHARD_ID" => {
                let id = shard_id_opt.ok_or_else(|| {
                    Error::invalid_argument("ShardFilter type AFTER_SHARD_ID needs a ShardId")
                })?;
                Ok(ShardFilter::AfterShardId(id.parse()?))
            }
            "AT_TIMESTAMP" => Ok(ShardFilter::AtTimestamp(timestamp()?)),
            "FROM_TIMESTAMP" => Ok(ShardFilter::FromTimestamp(timestamp()?)),
            other => Err(Error::invalid_argument(format!(
                "Value '{other}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum \
                 value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
            ))),
        }
    }
}

/// The shards `filter` selects, in shard id order. `horizon_ms` is the trim horizon: now minus
/// the retention period.
pub fn filter_shards(stream: &StreamMeta, filter: ShardFilter, horizon_ms: u64) -> Vec<&ShardMeta> {
    let expired = |shard: &ShardMeta| shard.closed_at_ms_opt.is_some_and(|t| t < horizon_ms);
    let live_parent = |id: Option<ShardId>| {
        id.and_then(|id| stream.shard(id))
            .is_some_and(|parent| !expired(parent))
    };
    let open_at = |shard: &ShardMeta, t: u64| {
        shard.created_at_ms <= t && shard.closed_at_ms_opt.is_none_or(|closed| closed > t)
    };
    let mut shards: Vec<&ShardMeta> = stream
        .shards
        .iter()
        .filter(|shard| !expired(shard))
        .filter(|shard| match filter {
            ShardFilter::AtLatest => shard.status == ShardStatus::Open,
            ShardFilter::AtTrimHorizon => {
                !live_parent(shard.parent_opt) && !live_parent(shard.adjacent_parent_opt)
            }
            ShardFilter::FromTrimHorizon => true,
            ShardFilter::AfterShardId(after) => shard.shard_id > after,
            ShardFilter::AtTimestamp(t) => open_at(shard, t.max(stream.created_at_ms)),
            ShardFilter::FromTimestamp(t) => shard.closed_at_ms_opt.is_none_or(|c| c >= t),
        })
        .collect();
    shards.sort_by_key(|shard| shard.shard_id);
    shards
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tributary_types::{GroupId, HashKeyRange, StreamMode};

    use super::*;
    use crate::meta::StreamStatus;

    fn shard(
        id: u32,
        parents: (Option<u32>, Option<u32>),
        created: u64,
        closed: Option<u64>,
    ) -> ShardMeta {
        ShardMeta {
            shard_id: ShardId(id),
            group: GroupId(u64::from(id) + 1),
            hash_range: HashKeyRange::split_evenly(1)[0],
            parent_opt: parents.0.map(ShardId),
            adjacent_parent_opt: parents.1.map(ShardId),
            status: if closed.is_some() {
                ShardStatus::Closed
            } else {
                ShardStatus::Open
            },
            replicas: vec![1, 2, 3],
            ending_sequence_number_opt: None,
            created_at_ms: created,
            closed_at_ms_opt: closed,
            move_opt: None,
        }
    }

    /// Shard 0 split at t=100 into 1 and 2; 1 and 2 merged at t=200 into 3.
    fn lineage() -> StreamMeta {
        StreamMeta {
            name: "s".parse().unwrap(),
            status: StreamStatus::Active,
            retention_hours: 24,
            created_at_ms: 10,
            shards: vec![
                shard(0, (None, None), 10, Some(100)),
                shard(1, (Some(0), None), 100, Some(200)),
                shard(2, (Some(0), None), 100, Some(200)),
                shard(3, (Some(1), Some(2)), 200, None),
            ],
            mode: StreamMode::Provisioned,
            tags: BTreeMap::new(),
            consumers: BTreeMap::new(),
            next_shard_index: 4,
            scalings_ms: Vec::new(),
            shard_level_metrics: Default::default(),
            encryption_opt: None,
            encryption_changes_ms: Vec::new(),
        }
    }

    fn ids(shards: Vec<&ShardMeta>) -> Vec<u32> {
        shards.into_iter().map(|s| s.shard_id.0).collect()
    }

    #[test]
    fn filters_select_as_kinesis_describes() {
        let stream = lineage();
        let list = |filter| ids(filter_shards(&stream, filter, 0));
        assert_eq!(list(ShardFilter::AtLatest), [3]);
        assert_eq!(list(ShardFilter::FromTrimHorizon), [0, 1, 2, 3]);
        assert_eq!(list(ShardFilter::AtTrimHorizon), [0]);
        assert_eq!(list(ShardFilter::AfterShardId(ShardId(1))), [2, 3]);
        assert_eq!(list(ShardFilter::AtTimestamp(5)), [0], "before creation");
        assert_eq!(list(ShardFilter::AtTimestamp(150)), [1, 2]);
        assert_eq!(list(ShardFilter::AtTimestamp(200)), [3]);
        assert_eq!(list(ShardFilter::FromTimestamp(150)), [1, 2, 3]);
    }

    #[test]
    fn expired_shards_are_listed_by_no_filter() {
        let stream = lineage();
        // The trim horizon has passed the split (t=100) but not the merge (t=200).
        let list = |filter| ids(filter_shards(&stream, filter, 150));
        assert_eq!(list(ShardFilter::FromTrimHorizon), [1, 2, 3]);
        assert_eq!(list(ShardFilter::AtTrimHorizon), [1, 2]);
        assert_eq!(list(ShardFilter::FromTimestamp(0)), [1, 2, 3]);
    }

    #[test]
    fn filter_arguments_are_checked() {
        assert!(ShardFilter::parse("AT_TIMESTAMP", None, None).is_err());
        assert!(ShardFilter::parse("AFTER_SHARD_ID", None, None).is_err());
        assert!(ShardFilter::parse("NEWEST", None, None).is_err());
        assert_eq!(
            ShardFilter::parse("AFTER_SHARD_ID", Some("shardId-000000000002"), None).unwrap(),
            ShardFilter::AfterShardId(ShardId(2))
        );
    }
}

//! The read path. Iterators are self-describing tokens, so any replica can serve them. A read is
//! served by the shard's leader when one is known and reachable (so a reader sees every write
//! acknowledged before it), else by this node's own replica, which holds only committed records —
//! the read-only quorum after a majority is lost.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tributary_proto::v1;
use tributary_types::{
    Error, IteratorPosition, MAX_GET_RECORDS_LIMIT, SequenceNumber, ShardId, ShardIterator,
    ShardIteratorType, StoredRecord, StreamName,
};

use openraft::async_runtime::WatchReceiver;

use crate::api::{ChildShard, GetRecordsOutput};
use crate::groups::ShardGroup;
use crate::keyring::RecordOpener;
use crate::limits::rate_exceeded;
use crate::meta::ShardMeta;
use crate::node::Node;
use crate::now_ms;
use crate::service::convert;
use crate::shard::records;

/// Requests a node forwards carry this header; the receiver serves them from its own replica.
pub const FORWARDED_HEADER: &str = "x-tributary-forwarded";
/// How long a read forwarded to the leader may take before the next replica is tried.
const FORWARDED_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// GetRecords returns at most this much data per call, as in Kinesis.
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;

/// Where a read is served.
enum ReadRoute {
    Local(Arc<ShardGroup>),
    /// Other nodes to try in order (the leader first), then the local replica if any.
    Remote(Vec<String>, Option<Arc<ShardGroup>>),
}

impl Node {
    async fn shard_meta(&self, stream: &StreamName, shard: ShardId) -> Result<ShardMeta, Error> {
        Ok(self.shard_and_children(stream, shard).await?.0)
    }

    /// A shard and the shards a reshard made of it (empty while it is open).
    pub(crate) async fn shard_and_children(
        &self,
        stream: &StreamName,
        shard: ShardId,
    ) -> Result<(ShardMeta, Vec<ChildShard>), Error> {
        let stream_meta = self.stream_meta(stream).await?;
        let meta = stream_meta.shard(shard).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "Shard {shard} in stream {stream} under this cluster does not exist"
            ))
        })?;
        let children = stream_meta
            .shards
            .iter()
            .filter(|child| {
                child.parent_opt == Some(shard) || child.adjacent_parent_opt == Some(shard)
            })
            .map(|child| ChildShard {
                shard_id: child.shard_id,
                parents: child
                    .parent_opt
                    .into_iter()
                    .chain(child.adjacent_parent_opt)
                    .collect(),
                hash_range: child.hash_range,
            })
            .collect();
        Ok((meta, children))
    }

    fn read_route(&self, shard: &ShardMeta, forwarded: bool) -> Result<ReadRoute, Error> {
        let local_opt = self.shard_group(shard.group);
        if forwarded {
            return local_opt.map(ReadRoute::Local).ok_or_else(|| {
                Error::internal(format!(
                    "node {} holds no replica of {}",
                    self.id(),
                    shard.shard_id
                ))
            });
        }
        let leader_opt = local_opt.as_ref().and_then(|g| g.current_leader());
        match (leader_opt, local_opt) {
            (Some(leader), Some(local)) if leader == self.id() => Ok(ReadRoute::Local(local)),
            (None, Some(local)) => Ok(ReadRoute::Local(local)),
            (Some(leader), local_opt) => Ok(ReadRoute::Remote(
                self.node_address(leader).into_iter().collect(),
                local_opt,
            )),
            (None, None) => {
                let addresses = shard
                    .replicas
                    .iter()
                    .filter_map(|id| self.node_address(*id))
                    .collect();
                Ok(ReadRoute::Remote(addresses, None))
            }
        }
    }

    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        iterator_type: &str,
        starting_sequence_number_opt: Option<&str>,
        timestamp_ms_opt: Option<u64>,
        forwarded: bool,
    ) -> Result<String, Error> {
        let stream: StreamName = stream.parse()?;
        let shard_id: ShardId = shard_id.parse()?;
        let iterator_type = parse_iterator_type(
            iterator_type,
            starting_sequence_number_opt,
            timestamp_ms_opt,
            shard_id,
        )?;
        let shard = self.shard_meta(&stream, shard_id).await?;
        if shard.replicas.is_empty() {
            // A shard created and merged within one UpdateShardCount never held a record.
            let iterator = ShardIterator {
                stream,
                shard: shard_id,
                position: IteratorPosition {
                    from_inclusive: SequenceNumber::shard_start(shard_id),
                },
                issued_at_ms: now_ms(),
            };
            return Ok(iterator.encode());
        }
        let request = v1::GetShardIteratorRequest {
            stream_name: stream.to_string(),
            shard_id: shard_id.to_string(),
            shard_iterator_type: convert::iterator_type_name(iterator_type).to_string(),
            starting_sequence_number: starting_sequence_number_opt.map(str::to_string),
            timestamp_ms: timestamp_ms_opt,
        };
        let local = match self.read_route(&shard, forwarded)? {
            ReadRoute::Local(local) => local,
            ReadRoute::Remote(addresses, local_opt) => {
                for address in addresses {
                    let Ok(mut client) = self.public_client(&address) else {
                        continue;
                    };
                    let call = client.get_shard_iterator(forwarded_request(request.clone()));
                    match flatten_timeout(tokio::time::timeout(FORWARDED_READ_TIMEOUT, call).await)
                    {
                        Ok(response) => return Ok(response.into_inner().shard_iterator),
                        Err(status) => {
                            tracing::debug!(%address, %status, "forwarded GetShardIterator failed")
                        }
                    }
                }
                local_opt
                    .ok_or_else(|| Error::internal(format!("no replica of {shard_id} answered")))?
            }
        };
        let from_inclusive = match iterator_type {
            ShardIteratorType::TrimHorizon => SequenceNumber::shard_start(shard_id),
            ShardIteratorType::Latest => match *local.tip.borrow() {
                Some(tip) => SequenceNumber(tip.0 + 1),
                None => SequenceNumber::shard_start(shard_id),
            },
            ShardIteratorType::AtSequenceNumber(n) => n,
            ShardIteratorType::AfterSequenceNumber(n) => SequenceNumber(n.0 + 1),
            ShardIteratorType::AtTimestamp(timestamp_ms) => {
                let store = self.store.clone();
                let group = local.group;
                let found = tokio::task::spawn_blocking(move || {
                    records::first_arrived_at_or_after(&store, group, timestamp_ms)
                })
                .await
                .map_err(|e| Error::internal(format!("read task failed: {e}")))?
                .map_err(|e| Error::internal(format!("reading records: {e}")))?;
                match (found, *local.tip.borrow()) {
                    (Some(number), _) => number,
                    // Nothing arrived since: the iterator waits at the tip, like LATEST.
                    (None, Some(tip)) => SequenceNumber(tip.0 + 1),
                    (None, None) => SequenceNumber::shard_start(shard_id),
                }
            }
        };
        let iterator = ShardIterator {
            stream,
            shard: shard_id,
            position: IteratorPosition { from_inclusive },
            issued_at_ms: now_ms(),
        };
        Ok(iterator.encode())
    }

    pub async fn get_records(
        &self,
        token: &str,
        limit_opt: Option<u32>,
        forwarded: bool,
    ) -> Result<GetRecordsOutput, Error> {
        let limit = limit_opt.unwrap_or(MAX_GET_RECORDS_LIMIT);
        if !(1..=MAX_GET_RECORDS_LIMIT).contains(&limit) {
            return Err(Error::invalid_argument(format!(
                "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MAX_GET_RECORDS_LIMIT}"
            )));
        }
        let iterator = ShardIterator::decode(token, now_ms())?;
        let (shard, children) = self
            .shard_and_children(&iterator.stream, iterator.shard)
            .await?;
        if shard.replicas.is_empty() {
            return Ok(GetRecordsOutput {
                records: Vec::new(),
                next_shard_iterator_opt: None,
                millis_behind_latest: 0,
                child_shards: children,
            });
        }
        let local = match self.read_route(&shard, forwarded)? {
            ReadRoute::Local(local) => local,
            ReadRoute::Remote(addresses, local_opt) => {
                let request = v1::GetRecordsRequest {
                    shard_iterator: token.to_string(),
                    limit: Some(limit),
                };
                for address in addresses {
                    let Ok(mut client) = self.public_client(&address) else {
                        continue;
                    };
                    let call = client.get_records(forwarded_request(request.clone()));
                    match flatten_timeout(tokio::time::timeout(FORWARDED_READ_TIMEOUT, call).await)
                    {
                        Ok(response) => {
                            return convert::get_records_output_from_proto(response.into_inner());
                        }
                        Err(status) => {
                            tracing::debug!(%address, %status, "forwarded GetRecords failed")
                        }
                    }
                }
                local_opt.ok_or_else(|| {
                    Error::internal(format!("no replica of {} answered", iterator.shard))
                })?
            }
        };
        if !local.limiter.admit_read(std::time::Instant::now()) {
            return Err(rate_exceeded(&iterator.stream, iterator.shard));
        }
        let batch = read_batch(
            self,
            &local,
            &shard,
            iterator.position.from_inclusive,
            limit as usize,
            MAX_GET_RECORDS_BYTES,
        )
        .await?;
        local
            .limiter
            .charge_read_bytes(batch.bytes, std::time::Instant::now());
        crate::telemetry::record_get_records(
            &iterator.stream,
            iterator.shard,
            batch.records.len(),
            batch.bytes,
            batch.millis_behind_latest,
        );
        let next_shard_iterator_opt = (!batch.at_shard_end).then(|| {
            ShardIterator {
                position: IteratorPosition {
                    from_inclusive: batch.next_from,
                },
                issued_at_ms: now_ms(),
                ..iterator
            }
            .encode()
        });
        Ok(GetRecordsOutput {
            records: batch.records,
            next_shard_iterator_opt,
            millis_behind_latest: batch.millis_behind_latest,
            child_shards: if batch.at_shard_end {
                children
            } else {
                Vec::new()
            },
        })
    }
}

/// What one read of a local replica found.
pub(crate) struct ReadBatch {
    pub records: Vec<StoredRecord>,
    /// Data plus partition keys of `records`.
    pub bytes: usize,
    /// Where the next read starts.
    pub next_from: SequenceNumber,
    /// From the last record returned to the newest one, by arrival time; 0 when caught up.
    pub millis_behind_latest: u64,
    /// Nothing more will ever be read: the shard is closed, sealed on this replica, and read out.
    pub at_shard_end: bool,
    /// The limit or the byte cap left records unread.
    pub more: bool,
}

/// Reads up to `limit` records (about `max_bytes`) from `from` on this node's replica.
pub(crate) async fn read_batch(
    node: &Node,
    local: &ShardGroup,
    shard: &ShardMeta,
    from: SequenceNumber,
    limit: usize,
    max_bytes: usize,
) -> Result<ReadBatch, Error> {
    let store = node.store.clone();
    let group = local.group;
    let ring_opt = node.keys.current();
    let aad = local.stream.to_string();
    let (records, more, tip_opt) = tokio::task::spawn_blocking(move || {
        let mut opener = RecordOpener::new(ring_opt.as_deref(), aad.as_bytes());
        let (records, more) = records::read(&store, group, from, limit, max_bytes, &mut opener)?;
        let tip = records::last(&store, group)?;
        Ok::<_, records::ReadError>((records, more, tip))
    })
    .await
    .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    .map_err(|e| match e {
        records::ReadError::Io(e) => Error::internal(format!("reading records: {e}")),
        records::ReadError::Sealed(e) => e,
    })?;

    // 0 only when caught up: records that arrived in the same millisecond still count as 1 ms.
    let millis_behind_latest = match (records.last(), &tip_opt) {
        (Some(last), Some((tip, tip_arrival_ms))) if last.sequence_number < *tip => tip_arrival_ms
            .saturating_sub(last.approximate_arrival_timestamp_ms)
            .max(1),
        _ => 0,
    };
    let next_from = records
        .last()
        .map_or(from, |last| SequenceNumber(last.sequence_number.0 + 1));
    let bytes: usize = records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum();
    // The end of a closed shard: it is sealed, this replica has applied the seal (so it holds
    // every record the shard will ever have), and this read found nothing more.
    let at_shard_end = shard.ending_sequence_number_opt.is_some_and(|ending| {
        let seal_index = ending.log_index() + 1;
        let applied_seal = local
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .is_some_and(|applied| applied.index() >= seal_index);
        applied_seal && !more
    });
    Ok(ReadBatch {
        records,
        bytes,
        next_from,
        millis_behind_latest: if at_shard_end {
            0
        } else {
            millis_behind_latest
        },
        at_shard_end,
        more,
    })
}

/// A leader that does not answer a forwarded read in time (frozen, partitioned) is skipped.
fn flatten_timeout<T>(
    result: Result<Result<T, tonic::Status>, tokio::time::error::Elapsed>,
) -> Result<T, tonic::Status> {
    result.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(
            "the node did not answer in time",
        ))
    })
}

pub(crate) fn forwarded_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
    request
}

fn parse_iterator_type(
    text: &str,
    sequence_number_opt: Option<&str>,
    timestamp_ms_opt: Option<u64>,
    shard: ShardId,
) -> Result<ShardIteratorType, Error> {
    if text != "AT_TIMESTAMP" && timestamp_ms_opt.is_some() {
        return Err(Error::invalid_argument(format!(
            "Timestamp must not be given with ShardIteratorType {text}"
        )));
    }
    let number = || -> Result<SequenceNumber, Error> {
        let text = sequence_number_opt.ok_or_else(|| {
            Error::invalid_argument(format!(
                "StartingSequenceNumber is required for ShardIteratorType {text}"
            ))
        })?;
        SequenceNumber::parse_for_shard(text, shard)
    };
    let no_number = |kind: ShardIteratorType| {
        if sequence_number_opt.is_some() {
            return Err(Error::invalid_argument(format!(
                "StartingSequenceNumber must not be given with ShardIteratorType {text}"
            )));
        }
        Ok(kind)
    };
    match text {
        "TRIM_HORIZON" => no_number(ShardIteratorType::TrimHorizon),
        "LATEST" => no_number(ShardIteratorType::Latest),
        "AT_SEQUENCE_NUMBER" => Ok(ShardIteratorType::AtSequenceNumber(number()?)),
        "AFTER_SEQUENCE_NUMBER" => Ok(ShardIteratorType::AfterSequenceNumber(number()?)),
        "AT_TIMESTAMP" => {
            let timestamp_ms = timestamp_ms_opt.ok_or_else(|| {
                Error::invalid_argument("Timestamp is required for ShardIteratorType AT_TIMESTAMP")
            })?;
            let kind = no_number(ShardIteratorType::AtTimestamp(timestamp_ms))?;
            let now = now_ms();
            if timestamp_ms > now {
                return Err(Error::invalid_argument(format!(
                    "The timestamp {timestamp_ms} ms is in the future (now {now} ms)"
                )));
            }
            Ok(kind)
        }
        other => Err(Error::invalid_argument(format!(
            "Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: \
             [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
        ))),
    }
}

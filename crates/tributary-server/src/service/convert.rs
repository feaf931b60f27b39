//! Proto ↔ domain conversions for the public API, all in one place.

use tributary_proto::v1;
use tributary_types::{
    EncryptionType, Error, PutRecordEntry, SequenceNumber, ShardIteratorType, StoredRecord,
};

use crate::api::{
    ChildShard, ClusterStatus, ConsumerDescription, GetRecordsOutput, PutOutcome, PutRecordResult,
    ShardDescription, StreamDescription, StreamEncryption, StreamSummary, SubscribeEvent,
};
use crate::meta::ShardStatus;
use crate::meta::listing::ShardFilter;
use crate::writes::ProducerSequence;

pub fn cluster_status_to_proto(status: ClusterStatus) -> v1::ClusterStatusResponse {
    v1::ClusterStatusResponse {
        nodes: status
            .nodes
            .into_iter()
            .map(|node| v1::NodeStatus {
                id: node.id,
                az: node.az,
                address: node.address,
                alive: node.alive,
                removing: node.removing,
                metadata_voter: node.metadata_voter,
                replica_count: node.replica_count,
                shard_leaders: node.shard_leaders,
                lag_entries: node.lag_entries,
            })
            .collect(),
        metadata_leader: status.metadata_leader_opt,
        auth: status.auth.to_string(),
        tls: status.tls,
        answered_by: status.answered_by,
        moves: status
            .moves
            .into_iter()
            .map(|m| v1::ReplicaMove {
                stream_name: m.stream.to_string(),
                shard_id: m.shard_id.to_string(),
                from_node: m.from,
                to_node: m.to,
                started_at_ms: m.started_at_ms as i64,
            })
            .collect(),
        removed_node_ids: status.removed_nodes,
    }
}

pub fn shard_to_proto(shard: ShardDescription) -> v1::Shard {
    v1::Shard {
        shard_id: shard.shard_id.to_string(),
        starting_hash_key: shard.hash_range.start_inclusive.to_string(),
        ending_hash_key: shard.hash_range.end_inclusive.to_string(),
        status: match shard.status {
            ShardStatus::Open => "OPEN".to_string(),
            ShardStatus::Closed => "CLOSED".to_string(),
        },
        parent_shard_id: shard.parent_opt.map(|id| id.to_string()),
        adjacent_parent_shard_id: shard.adjacent_parent_opt.map(|id| id.to_string()),
        replicas: shard
            .replicas
            .into_iter()
            .map(|r| v1::Replica {
                node_id: r.node_id,
                az: r.az,
            })
            .collect(),
        leader: shard.leader_opt,
        starting_sequence_number: shard.starting_sequence_number.to_string(),
        ending_sequence_number: shard.ending_sequence_number_opt.map(|n| n.to_string()),
        latest_sequence_number: shard.latest_sequence_number_opt.map(|n| n.to_string()),
    }
}

pub fn stream_description_to_proto(description: StreamDescription) -> v1::StreamDescription {
    let (encryption_type, key_id) = encryption_to_proto(description.encryption_opt);
    v1::StreamDescription {
        encryption_type,
        key_id,
        stream_name: description.name.to_string(),
        stream_status: description.status.as_str().to_string(),
        retention_period_hours: description.retention_hours,
        stream_creation_timestamp_ms: description.created_at_ms,
        shards: description.shards.into_iter().map(shard_to_proto).collect(),
        stream_mode: description.mode.as_str().to_string(),
        has_more_shards: description.has_more_shards,
    }
}

pub fn stream_summary_to_proto(summary: StreamSummary) -> v1::StreamDescriptionSummary {
    let (encryption_type, key_id) = encryption_to_proto(summary.encryption_opt);
    v1::StreamDescriptionSummary {
        encryption_type,
        key_id,
        stream_name: summary.name.to_string(),
        stream_status: summary.status.as_str().to_string(),
        stream_mode: summary.mode.as_str().to_string(),
        retention_period_hours: summary.retention_hours,
        stream_creation_timestamp_ms: summary.created_at_ms,
        open_shard_count: summary.open_shard_count,
        consumer_count: summary.consumer_count,
    }
}

pub fn shard_filter_from_proto(filter: v1::ShardFilter) -> Result<ShardFilter, Error> {
    ShardFilter::parse(
        &filter.r#type,
        filter.shard_id.as_deref(),
        filter.timestamp_ms,
    )
}

pub fn consumer_to_proto(consumer: ConsumerDescription) -> v1::Consumer {
    v1::Consumer {
        consumer_name: consumer.name.to_string(),
        consumer_status: "ACTIVE".to_string(),
        consumer_creation_timestamp_ms: consumer.created_at_ms,
        stream_name: consumer.stream.to_string(),
    }
}

fn child_shard_to_proto(child: ChildShard) -> v1::ChildShard {
    v1::ChildShard {
        shard_id: child.shard_id.to_string(),
        parent_shards: child.parents.iter().map(ToString::to_string).collect(),
        starting_hash_key: child.hash_range.start_inclusive.to_string(),
        ending_hash_key: child.hash_range.end_inclusive.to_string(),
    }
}

fn child_shard_from_proto(child: v1::ChildShard) -> Result<ChildShard, Error> {
    Ok(ChildShard {
        shard_id: child.shard_id.parse()?,
        parents: child
            .parent_shards
            .iter()
            .map(|id| id.parse())
            .collect::<Result<_, _>>()?,
        hash_range: tributary_types::HashKeyRange {
            start_inclusive: parse_hash_key(&child.starting_hash_key)?,
            end_inclusive: parse_hash_key(&child.ending_hash_key)?,
        },
    })
}

fn parse_hash_key(text: &str) -> Result<u128, Error> {
    text.parse()
        .map_err(|_| Error::internal(format!("bad hash key '{text}' from a peer")))
}

pub fn put_entry_from_proto(entry: v1::PutRecordsRequestEntry) -> PutRecordEntry {
    PutRecordEntry {
        partition_key: entry.partition_key,
        data: entry.data,
        explicit_hash_key: entry.explicit_hash_key,
    }
}

/// An idempotent put's two fields: both or neither.
pub fn producer_sequence_from_proto(
    producer_id_opt: Option<u64>,
    producer_sequence_opt: Option<u64>,
) -> Result<Option<ProducerSequence>, Error> {
    match (producer_id_opt, producer_sequence_opt) {
        (None, None) => Ok(None),
        (Some(producer_id), Some(first_sequence)) => Ok(Some(ProducerSequence {
            producer_id,
            first_sequence,
        })),
        _ => Err(Error::invalid_argument(
            "ProducerId and ProducerSequence go together: set both for an idempotent put, or neither",
        )),
    }
}

pub fn put_results_to_proto(outcome: PutOutcome<Vec<PutRecordResult>>) -> v1::PutRecordsResponse {
    let results = outcome.results;
    let failed_record_count = results.iter().filter(|r| r.is_err()).count() as u32;
    let records = results
        .into_iter()
        .map(|result| match result {
            Ok((shard, number)) => v1::PutRecordsResultEntry {
                shard_id: Some(shard.to_string()),
                sequence_number: Some(number.to_string()),
                ..Default::default()
            },
            Err(error) => v1::PutRecordsResultEntry {
                error_code: Some(error.code.as_str().to_string()),
                error_message: Some(error.message),
                ..Default::default()
            },
        })
        .collect();
    v1::PutRecordsResponse {
        failed_record_count,
        records,
        encryption_type: outcome.encryption_type.as_str().to_string(),
    }
}

pub fn iterator_type_name(kind: ShardIteratorType) -> &'static str {
    match kind {
        ShardIteratorType::TrimHorizon => "TRIM_HORIZON",
        ShardIteratorType::Latest => "LATEST",
        ShardIteratorType::AtSequenceNumber(_) => "AT_SEQUENCE_NUMBER",
        ShardIteratorType::AfterSequenceNumber(_) => "AFTER_SEQUENCE_NUMBER",
        ShardIteratorType::AtTimestamp(_) => "AT_TIMESTAMP",
    }
}

fn record_to_proto(record: StoredRecord) -> v1::Record {
    v1::Record {
        sequence_number: record.sequence_number.to_string(),
        approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
        data: record.data,
        partition_key: record.partition_key,
        encryption_type: record.encryption_type.as_str().to_string(),
    }
}

fn record_from_proto(record: v1::Record) -> Result<StoredRecord, Error> {
    Ok(StoredRecord {
        sequence_number: record.sequence_number.parse::<SequenceNumber>()?,
        approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
        partition_key: record.partition_key,
        data: record.data,
        encryption_type: encryption_type_from_proto(&record.encryption_type)?,
    })
}

/// An empty type (a node from before encryption existed) is NONE.
fn encryption_type_from_proto(text: &str) -> Result<EncryptionType, Error> {
    if text.is_empty() {
        return Ok(EncryptionType::None);
    }
    text.parse()
}

/// EncryptionType and KeyId as descriptions report them.
fn encryption_to_proto(encryption_opt: Option<StreamEncryption>) -> (String, Option<String>) {
    match encryption_opt {
        Some(encryption) => (
            EncryptionType::Kms.as_str().to_string(),
            Some(encryption.key_id),
        ),
        None => (EncryptionType::None.as_str().to_string(), None),
    }
}

pub fn subscribe_event_to_proto(event: SubscribeEvent) -> v1::SubscribeToShardEvent {
    v1::SubscribeToShardEvent {
        records: event.records.into_iter().map(record_to_proto).collect(),
        continuation_sequence_number: event.continuation_opt.map(|n| n.to_string()),
        millis_behind_latest: event.millis_behind_latest,
        child_shards: event
            .child_shards
            .into_iter()
            .map(child_shard_to_proto)
            .collect(),
    }
}

/// For subscriptions relayed from another node.
pub fn subscribe_event_from_proto(
    event: v1::SubscribeToShardEvent,
) -> Result<SubscribeEvent, Error> {
    Ok(SubscribeEvent {
        records: event
            .records
            .into_iter()
            .map(record_from_proto)
            .collect::<Result<_, _>>()?,
        continuation_opt: event
            .continuation_sequence_number
            .map(|n| n.parse())
            .transpose()?,
        millis_behind_latest: event.millis_behind_latest,
        child_shards: event
            .child_shards
            .into_iter()
            .map(child_shard_from_proto)
            .collect::<Result<_, _>>()?,
    })
}

pub fn get_records_output_to_proto(output: GetRecordsOutput) -> v1::GetRecordsResponse {
    v1::GetRecordsResponse {
        records: output.records.into_iter().map(record_to_proto).collect(),
        next_shard_iterator: output.next_shard_iterator_opt,
        millis_behind_latest: output.millis_behind_latest,
        child_shards: output
            .child_shards
            .into_iter()
            .map(child_shard_to_proto)
            .collect(),
    }
}

/// For reads forwarded to another node.
pub fn get_records_output_from_proto(
    response: v1::GetRecordsResponse,
) -> Result<GetRecordsOutput, Error> {
    let records = response
        .records
        .into_iter()
        .map(record_from_proto)
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(GetRecordsOutput {
        records,
        next_shard_iterator_opt: response.next_shard_iterator,
        millis_behind_latest: response.millis_behind_latest,
        child_shards: response
            .child_shards
            .into_iter()
            .map(child_shard_from_proto)
            .collect::<Result<_, _>>()?,
    })
}

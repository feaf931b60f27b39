//! Proto ↔ domain conversions for the public API, all in one place.

use tributary_proto::v1;
use tributary_types::{Error, PutRecordEntry, SequenceNumber, ShardIteratorType, StoredRecord};

use crate::api::{
    ClusterStatus, GetRecordsOutput, PutRecordResult, ShardDescription, StreamDescription,
};
use crate::meta::ShardStatus;

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
            })
            .collect(),
        metadata_leader: status.metadata_leader_opt,
        answered_by: status.answered_by,
    }
}

fn shard_to_proto(shard: ShardDescription) -> v1::Shard {
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
    v1::StreamDescription {
        stream_name: description.name.to_string(),
        stream_status: description.status.as_str().to_string(),
        retention_period_hours: description.retention_hours,
        stream_creation_timestamp_ms: description.created_at_ms,
        shards: description.shards.into_iter().map(shard_to_proto).collect(),
    }
}

pub fn put_entry_from_proto(entry: v1::PutRecordsRequestEntry) -> PutRecordEntry {
    PutRecordEntry {
        partition_key: entry.partition_key,
        data: entry.data,
        explicit_hash_key: entry.explicit_hash_key,
    }
}

pub fn put_results_to_proto(results: Vec<PutRecordResult>) -> v1::PutRecordsResponse {
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
    }
}

pub fn iterator_type_name(kind: ShardIteratorType) -> &'static str {
    match kind {
        ShardIteratorType::TrimHorizon => "TRIM_HORIZON",
        ShardIteratorType::Latest => "LATEST",
        ShardIteratorType::AtSequenceNumber(_) => "AT_SEQUENCE_NUMBER",
        ShardIteratorType::AfterSequenceNumber(_) => "AFTER_SEQUENCE_NUMBER",
    }
}

pub fn get_records_output_to_proto(output: GetRecordsOutput) -> v1::GetRecordsResponse {
    v1::GetRecordsResponse {
        records: output
            .records
            .into_iter()
            .map(|record| v1::Record {
                sequence_number: record.sequence_number.to_string(),
                approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
                data: record.data,
                partition_key: record.partition_key,
            })
            .collect(),
        next_shard_iterator: output.next_shard_iterator_opt,
        millis_behind_latest: output.millis_behind_latest,
    }
}

/// For reads forwarded to another node.
pub fn get_records_output_from_proto(
    response: v1::GetRecordsResponse,
) -> Result<GetRecordsOutput, Error> {
    let records = response
        .records
        .into_iter()
        .map(|record| {
            Ok(StoredRecord {
                sequence_number: record.sequence_number.parse::<SequenceNumber>()?,
                approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
                partition_key: record.partition_key,
                data: record.data,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(GetRecordsOutput {
        records,
        next_shard_iterator_opt: response.next_shard_iterator,
        millis_behind_latest: response.millis_behind_latest,
    })
}

//! Kinesis' request and response shapes, with the model's member names. Requests deserialize
//! from the JSON document (a CBOR body has been translated to it); a member of the wrong type is
//! a SerializationException, a missing or out-of-range one a ValidationException.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_kinesis::KinesisError;
use tributary_kinesis::document::{encode_blob, timestamp_seconds};
use tributary_types::StoredRecord;

use crate::api::{ChildShard, ConsumerDescription, ShardDescription};

/// Decodes a request document into the operation's input shape.
pub fn input<T: serde::de::DeserializeOwned>(document: Value) -> Result<T, KinesisError> {
    serde_json::from_value(document).map_err(|e| {
        KinesisError::serialization(format!("The request does not match its shape: {e}"))
    })
}

/// Encodes an output shape as its document.
pub fn output<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("Kinesis output shapes serialize")
}

pub fn required<T>(member: &str, value_opt: Option<T>) -> Result<T, KinesisError> {
    value_opt.ok_or_else(|| KinesisError::missing(member))
}

/// An integer member within `[min, max]`.
pub fn in_range(member: &str, value: i64, min: i64, max: i64) -> Result<u32, KinesisError> {
    if value < min || value > max {
        let bound = if value < min {
            format!("greater than or equal to {min}")
        } else {
            format!("less than or equal to {max}")
        };
        return Err(KinesisError::validation(format!(
            "Value '{value}' at '{member}' failed to satisfy constraint: Member must have value {bound}"
        )));
    }
    Ok(value as u32)
}

pub fn optional_in_range(
    member: &str,
    value_opt: Option<i64>,
    min: i64,
    max: i64,
) -> Result<Option<u32>, KinesisError> {
    value_opt.map(|v| in_range(member, v, min, max)).transpose()
}

/// `StreamName` or `StreamARN`, as most operations take them.
#[derive(Debug, Default, Deserialize)]
pub struct StreamRef {
    #[serde(rename = "StreamName")]
    pub name_opt: Option<String>,
    #[serde(rename = "StreamARN")]
    pub arn_opt: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

impl From<ShardDescription> for Shard {
    fn from(shard: ShardDescription) -> Shard {
        Shard {
            shard_id: shard.shard_id.to_string(),
            parent_shard_id: shard.parent_opt.map(|id| id.to_string()),
            adjacent_parent_shard_id: shard.adjacent_parent_opt.map(|id| id.to_string()),
            hash_key_range: HashKeyRange {
                starting_hash_key: shard.hash_range.start_inclusive.to_string(),
                ending_hash_key: shard.hash_range.end_inclusive.to_string(),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: shard.starting_sequence_number.to_string(),
                ending_sequence_number: shard.ending_sequence_number_opt.map(|n| n.to_string()),
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShardShape {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

impl From<ChildShard> for ChildShardShape {
    fn from(child: ChildShard) -> ChildShardShape {
        ChildShardShape {
            shard_id: child.shard_id.to_string(),
            parent_shards: child.parents.iter().map(ToString::to_string).collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: child.hash_range.start_inclusive.to_string(),
                ending_hash_key: child.hash_range.end_inclusive.to_string(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub sequence_number: String,
    pub approximate_arrival_timestamp: f64,
    pub data: String,
    pub partition_key: String,
    pub encryption_type: &'static str,
}

impl From<StoredRecord> for Record {
    fn from(record: StoredRecord) -> Record {
        Record {
            sequence_number: record.sequence_number.to_string(),
            approximate_arrival_timestamp: timestamp_seconds(
                record.approximate_arrival_timestamp_ms,
            ),
            data: encode_blob(&record.data),
            partition_key: record.partition_key,
            encryption_type: record.encryption_type.as_str(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StreamModeDetails {
    #[serde(rename = "StreamMode")]
    pub stream_mode: String,
}

#[derive(Debug, Serialize)]
pub struct EnhancedMetrics {
    #[serde(rename = "ShardLevelMetrics")]
    pub shard_level_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    pub consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: String,
    pub consumer_creation_timestamp: f64,
    /// Only in DescribeStreamConsumer's ConsumerDescription.
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

impl Consumer {
    pub fn new(arns: &tributary_kinesis::Arns, consumer: &ConsumerDescription) -> Consumer {
        Consumer {
            consumer_name: consumer.name.to_string(),
            consumer_arn: arns.consumer(
                consumer.stream.as_str(),
                consumer.name.as_str(),
                consumer.created_at_ms,
            ),
            consumer_status: "ACTIVE".to_string(),
            consumer_creation_timestamp: timestamp_seconds(consumer.created_at_ms),
            stream_arn: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TagShape {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// Tags as a request carries them: a map for AddTagsToStream and TagResource.
pub type TagMap = BTreeMap<String, String>;

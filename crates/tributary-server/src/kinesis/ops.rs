//! Every Kinesis operation: decode the input shape, call the same [`Node`] method gRPC calls,
//! encode the output shape. No rule lives here that the node does not already enforce; what is
//! here is the model's own shape (required members, ranges) and the naming of streams by ARN.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tributary_kinesis::document::{decode_blob, timestamp_millis, timestamp_seconds};
use tributary_kinesis::error::put_entry_error_code;
use tributary_kinesis::{Arns, KinesisError, TARGET_PREFIX};
use tributary_raft::meta::RetentionChange;
use tributary_types::{EncryptionType, MAX_SHARDS_PER_STREAM, PutRecordEntry};

use super::shapes::*;
use crate::admin::{CreateStreamOptions, ListShardsRequest};
use crate::api::{ConsumerDescription, StreamDescription};
use crate::fanout::{Events, StartingPosition, Subscriber};
use crate::meta::listing::ShardFilter;
use crate::node::Node;

/// What an operation answers.
pub enum Reply {
    /// A document (an empty one for operations without output).
    Document(Value),
    /// SubscribeToShard's event stream.
    Events(Events),
}

/// Every operation this endpoint serves, by its `X-Amz-Target` name.
pub const OPERATIONS: [&str; 32] = [
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateShardCount",
    "UpdateStreamMode",
];

/// What every operation needs: the node and this node's ARN naming.
pub struct Operations {
    pub node: Arc<Node>,
    pub arns: Arns,
}

fn empty() -> Reply {
    Reply::Document(json!({}))
}

impl Operations {
    /// Runs `operation` on its input document.
    /// Runs `operation` on its input document; `peer_opt` is the caller's address (its
    /// subscriptions count against its client limit).
    pub async fn run(
        &self,
        operation: &str,
        input_doc: Value,
        peer_opt: Option<std::net::SocketAddr>,
    ) -> Result<Reply, KinesisError> {
        match operation {
            "CreateStream" => self.create_stream(input(input_doc)?).await,
            "DeleteStream" => self.delete_stream(input(input_doc)?).await,
            "DescribeStream" => self.describe_stream(input(input_doc)?).await,
            "DescribeStreamSummary" => self.describe_stream_summary(input(input_doc)?).await,
            "ListStreams" => self.list_streams(input(input_doc)?).await,
            "ListShards" => self.list_shards(input(input_doc)?).await,
            "PutRecord" => self.put_record(input(input_doc)?).await,
            "PutRecords" => self.put_records(input(input_doc)?).await,
            "GetShardIterator" => self.get_shard_iterator(input(input_doc)?).await,
            "GetRecords" => self.get_records(input(input_doc)?).await,
            "SplitShard" => self.split_shard(input(input_doc)?).await,
            "MergeShards" => self.merge_shards(input(input_doc)?).await,
            "UpdateShardCount" => self.update_shard_count(input(input_doc)?).await,
            "IncreaseStreamRetentionPeriod" => {
                self.retention(input(input_doc)?, RetentionChange::Increase)
                    .await
            }
            "DecreaseStreamRetentionPeriod" => {
                self.retention(input(input_doc)?, RetentionChange::Decrease)
                    .await
            }
            "UpdateStreamMode" => self.update_stream_mode(input(input_doc)?).await,
            "AddTagsToStream" => {
                let request: AddTagsInput = input(input_doc)?;
                self.tag(self.stream_name(request.stream)?, request.tags)
                    .await
            }
            "RemoveTagsFromStream" => {
                let request: RemoveTagsInput = input(input_doc)?;
                self.untag(self.stream_name(request.stream)?, request.tag_keys)
                    .await
            }
            "ListTagsForStream" => self.list_tags(input(input_doc)?).await,
            "TagResource" => {
                let request: TagResourceInput = input(input_doc)?;
                self.tag(self.tagged_stream(request.resource_arn)?, request.tags)
                    .await
            }
            "UntagResource" => {
                let request: UntagResourceInput = input(input_doc)?;
                self.untag(self.tagged_stream(request.resource_arn)?, request.tag_keys)
                    .await
            }
            "ListTagsForResource" => self.list_tags_for_resource(input(input_doc)?).await,
            "RegisterStreamConsumer" => self.register_consumer(input(input_doc)?).await,
            "DeregisterStreamConsumer" => self.deregister_consumer(input(input_doc)?).await,
            "DescribeStreamConsumer" => self.describe_consumer(input(input_doc)?).await,
            "ListStreamConsumers" => self.list_consumers(input(input_doc)?).await,
            "DescribeLimits" => self.describe_limits().await,
            "EnableEnhancedMonitoring" => self.monitoring(input(input_doc)?, true).await,
            "DisableEnhancedMonitoring" => self.monitoring(input(input_doc)?, false).await,
            "SubscribeToShard" => self.subscribe_to_shard(input(input_doc)?, peer_opt).await,
            "StartStreamEncryption" => self.encryption(input(input_doc)?, true).await,
            "StopStreamEncryption" => self.encryption(input(input_doc)?, false).await,
            _ => Err(KinesisError::unknown_operation(&format!(
                "{TARGET_PREFIX}{operation}"
            ))),
        }
    }

    /// The stream a request names by `StreamName` or `StreamARN` (both must agree).
    fn stream_name(&self, stream: StreamRef) -> Result<String, KinesisError> {
        match (stream.name_opt, stream.arn_opt) {
            (Some(name), None) => Ok(name),
            (None, Some(arn)) => self.arns.parse_stream("streamARN", &arn),
            (Some(name), Some(arn)) => {
                let from_arn = self.arns.parse_stream("streamARN", &arn)?;
                if from_arn != name {
                    return Err(KinesisError::invalid_argument(format!(
                        "StreamName {name} and StreamARN {arn} name different streams"
                    )));
                }
                Ok(name)
            }
            (None, None) => Err(KinesisError::invalid_argument(
                "Either StreamName or StreamARN must be provided",
            )),
        }
    }

    fn stream_description(&self, description: StreamDescription) -> Value {
        let encryption_opt = description.encryption_opt.clone();
        let mut value = json!({
            "StreamName": description.name.as_str(),
            "StreamARN": self.arns.stream(description.name.as_str()),
            "StreamStatus": description.status.as_str(),
            "StreamModeDetails": StreamModeDetails { stream_mode: description.mode.as_str().to_string() },
            "Shards": description.shards.into_iter().map(Shard::from).collect::<Vec<_>>(),
            "HasMoreShards": description.has_more_shards,
            "RetentionPeriodHours": description.retention_hours,
            "StreamCreationTimestamp": timestamp_seconds(description.created_at_ms),
            "EnhancedMonitoring": [EnhancedMetrics { shard_level_metrics: description.shard_level_metrics }],
        });
        add_encryption(&mut value, encryption_opt);
        value
    }

    async fn create_stream(&self, request: CreateStreamInput) -> Result<Reply, KinesisError> {
        let name = required("streamName", request.stream_name)?;
        let shard_count = optional_in_range(
            "shardCount",
            request.shard_count,
            1,
            i64::from(MAX_SHARDS_PER_STREAM),
        )?;
        let mode_opt = match request.stream_mode_details {
            Some(details) => Some(details.stream_mode.parse().map_err(KinesisError::from)?),
            None => None,
        };
        let options = CreateStreamOptions {
            shard_count: shard_count.unwrap_or(0),
            retention_hours_opt: None,
            mode_opt,
            tags: request.tags.unwrap_or_default().into_iter().collect(),
        };
        self.node.create_stream(&name, options).await?;
        Ok(empty())
    }

    async fn delete_stream(&self, request: DeleteStreamInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        self.node
            .delete_stream(&name, request.enforce_consumer_deletion.unwrap_or(false))
            .await?;
        Ok(empty())
    }

    async fn describe_stream(&self, request: DescribeStreamInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let limit = optional_in_range("limit", request.limit, 1, 10_000)?
            .map(|l| l.min(crate::admin::MAX_DESCRIBE_SHARDS));
        let description = self
            .node
            .describe_stream(&name, limit, request.exclusive_start_shard_id.as_deref())
            .await?;
        Ok(Reply::Document(
            json!({ "StreamDescription": self.stream_description(description) }),
        ))
    }

    async fn describe_stream_summary(&self, request: StreamOnly) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let summary = self.node.describe_stream_summary(&name).await?;
        let encryption_opt = summary.encryption_opt.clone();
        let mut value = json!({
                "StreamName": summary.name.as_str(),
                "StreamARN": self.arns.stream(summary.name.as_str()),
                "StreamStatus": summary.status.as_str(),
                "StreamModeDetails": StreamModeDetails { stream_mode: summary.mode.as_str().to_string() },
                "RetentionPeriodHours": summary.retention_hours,
                "StreamCreationTimestamp": timestamp_seconds(summary.created_at_ms),
                "EnhancedMonitoring": [EnhancedMetrics { shard_level_metrics: summary.shard_level_metrics }],
                "OpenShardCount": summary.open_shard_count,
                "ConsumerCount": summary.consumer_count,
        });
        add_encryption(&mut value, encryption_opt);
        Ok(Reply::Document(
            json!({ "StreamDescriptionSummary": value }),
        ))
    }

    async fn list_streams(&self, request: ListStreamsInput) -> Result<Reply, KinesisError> {
        let limit = optional_in_range("limit", request.limit, 1, 10_000)?;
        let page = self
            .node
            .list_streams(
                limit,
                request.exclusive_start_stream_name.as_deref(),
                request.next_token.as_deref(),
            )
            .await?;
        let mut summaries = Vec::new();
        for name in &page.items {
            // A stream deleted between the two reads is left out of the summaries only.
            if let Ok(summary) = self.node.describe_stream_summary(name).await {
                summaries.push(json!({
                    "StreamName": name,
                    "StreamARN": self.arns.stream(name),
                    "StreamStatus": summary.status.as_str(),
                    "StreamModeDetails": StreamModeDetails { stream_mode: summary.mode.as_str().to_string() },
                    "StreamCreationTimestamp": timestamp_seconds(summary.created_at_ms),
                }));
            }
        }
        let mut reply = json!({
            "StreamNames": page.items,
            "HasMoreStreams": page.next_token_opt.is_some(),
            "StreamSummaries": summaries,
        });
        if let Some(token) = page.next_token_opt {
            reply["NextToken"] = Value::String(token);
        }
        Ok(Reply::Document(reply))
    }

    async fn list_shards(&self, request: ListShardsInput) -> Result<Reply, KinesisError> {
        // ListShards names its stream, or carries a NextToken that does.
        let names_stream = request.stream.name_opt.is_some() || request.stream.arn_opt.is_some();
        let stream_opt = match names_stream {
            true => Some(self.stream_name(request.stream)?),
            false => None,
        };
        let filter_opt = match request.shard_filter {
            Some(filter) => {
                let timestamp_ms_opt = filter
                    .timestamp
                    .map(|t| timestamp_millis("shardFilter.timestamp", t))
                    .transpose()?;
                Some(ShardFilter::parse(
                    &required("shardFilter.type", filter.filter_type)?,
                    filter.shard_id.as_deref(),
                    timestamp_ms_opt,
                )?)
            }
            None => None,
        };
        let max_results_opt = optional_in_range("maxResults", request.max_results, 1, 10_000)?;
        let page = self
            .node
            .list_shards(ListShardsRequest {
                stream_opt,
                next_token_opt: request.next_token,
                exclusive_start_shard_id_opt: request.exclusive_start_shard_id,
                max_results_opt,
                filter_opt,
            })
            .await?;
        let mut reply = json!({
            "Shards": page.items.into_iter().map(Shard::from).collect::<Vec<_>>(),
        });
        if let Some(token) = page.next_token_opt {
            reply["NextToken"] = Value::String(token);
        }
        Ok(Reply::Document(reply))
    }

    async fn put_record(&self, request: PutRecordInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let entry = PutRecordEntry {
            partition_key: required("partitionKey", request.partition_key)?,
            data: decode_blob("Data", &required("data", request.data)?)?.into(),
            explicit_hash_key: request.explicit_hash_key,
        };
        let outcome = self
            .node
            .put_record(
                &name,
                entry,
                request.sequence_number_for_ordering.as_deref(),
            )
            .await?;
        let (shard, sequence_number) = outcome.results;
        Ok(Reply::Document(json!({
            "ShardId": shard.to_string(),
            "SequenceNumber": sequence_number.to_string(),
            "EncryptionType": outcome.encryption_type.as_str(),
        })))
    }

    async fn put_records(&self, request: PutRecordsInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let mut entries = Vec::new();
        for (index, record) in required("records", request.records)?
            .into_iter()
            .enumerate()
        {
            let member = |m: &str| format!("records.{}.member.{m}", index + 1);
            entries.push(PutRecordEntry {
                partition_key: required(&member("partitionKey"), record.partition_key)?,
                data: decode_blob("Data", &required(&member("data"), record.data)?)?.into(),
                explicit_hash_key: record.explicit_hash_key,
            });
        }
        let outcome = self.node.put_records(&name, entries, None).await?;
        let results = outcome.results;
        let failed = results.iter().filter(|r| r.is_err()).count();
        let records: Vec<Value> = results
            .into_iter()
            .map(|result| match result {
                Ok((shard, sequence_number)) => json!({
                    "SequenceNumber": sequence_number.to_string(),
                    "ShardId": shard.to_string(),
                }),
                Err(error) => json!({
                    "ErrorCode": put_entry_error_code(error.code),
                    "ErrorMessage": error.message,
                }),
            })
            .collect();
        Ok(Reply::Document(json!({
            "FailedRecordCount": failed,
            "Records": records,
            "EncryptionType": outcome.encryption_type.as_str(),
        })))
    }

    async fn get_shard_iterator(
        &self,
        request: GetShardIteratorInput,
    ) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let shard_id = required("shardId", request.shard_id)?;
        let iterator_type = required("shardIteratorType", request.shard_iterator_type)?;
        let timestamp_ms_opt = request
            .timestamp
            .map(|t| timestamp_millis("timestamp", t))
            .transpose()?;
        let iterator = self
            .node
            .get_shard_iterator(
                &name,
                &shard_id,
                &iterator_type,
                request.starting_sequence_number.as_deref(),
                timestamp_ms_opt,
                false,
            )
            .await?;
        Ok(Reply::Document(json!({ "ShardIterator": iterator })))
    }

    async fn get_records(&self, request: GetRecordsInput) -> Result<Reply, KinesisError> {
        let iterator = required("shardIterator", request.shard_iterator)?;
        let limit_opt = optional_in_range("limit", request.limit, 1, 10_000)?;
        let result = self.node.get_records(&iterator, limit_opt, false).await?;
        let mut reply = json!({
            "Records": result.records.into_iter().map(Record::from).collect::<Vec<_>>(),
            "MillisBehindLatest": result.millis_behind_latest,
        });
        match result.next_shard_iterator_opt {
            Some(next) => reply["NextShardIterator"] = Value::String(next),
            None => {
                reply["ChildShards"] = output(
                    &result
                        .child_shards
                        .into_iter()
                        .map(ChildShardShape::from)
                        .collect::<Vec<_>>(),
                )
            }
        }
        Ok(Reply::Document(reply))
    }

    async fn split_shard(&self, request: SplitShardInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        self.node
            .split_shard(
                &name,
                &required("shardToSplit", request.shard_to_split)?,
                &required("newStartingHashKey", request.new_starting_hash_key)?,
            )
            .await?;
        Ok(empty())
    }

    async fn merge_shards(&self, request: MergeShardsInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        self.node
            .merge_shards(
                &name,
                &required("shardToMerge", request.shard_to_merge)?,
                &required("adjacentShardToMerge", request.adjacent_shard_to_merge)?,
            )
            .await?;
        Ok(empty())
    }

    async fn update_shard_count(
        &self,
        request: UpdateShardCountInput,
    ) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let target = in_range(
            "targetShardCount",
            required("targetShardCount", request.target_shard_count)?,
            1,
            i64::from(i32::MAX),
        )?;
        let scaling_type = required("scalingType", request.scaling_type)?;
        let current = self
            .node
            .update_shard_count(&name, target, Some(&scaling_type))
            .await?;
        Ok(Reply::Document(json!({
            "StreamName": name,
            "StreamARN": self.arns.stream(&name),
            "CurrentShardCount": current,
            "TargetShardCount": target,
        })))
    }

    async fn retention(
        &self,
        request: RetentionInput,
        change: RetentionChange,
    ) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let hours = in_range(
            "retentionPeriodHours",
            required("retentionPeriodHours", request.retention_period_hours)?,
            0,
            i64::from(i32::MAX),
        )?;
        self.node.update_retention(&name, hours, change).await?;
        Ok(empty())
    }

    async fn update_stream_mode(
        &self,
        request: UpdateStreamModeInput,
    ) -> Result<Reply, KinesisError> {
        let arn = required("streamARN", request.stream_arn)?;
        let name = self.arns.parse_stream("streamARN", &arn)?;
        let mode = required("streamModeDetails", request.stream_mode_details)?.stream_mode;
        self.node.update_stream_mode(&name, &mode).await?;
        Ok(empty())
    }

    /// AddTagsToStream and TagResource.
    async fn tag(&self, name: String, tags_opt: Option<TagMap>) -> Result<Reply, KinesisError> {
        let tags = required("tags", tags_opt)?;
        self.node
            .add_tags(&name, tags.into_iter().collect())
            .await?;
        Ok(empty())
    }

    /// RemoveTagsFromStream and UntagResource.
    async fn untag(
        &self,
        name: String,
        keys_opt: Option<Vec<String>>,
    ) -> Result<Reply, KinesisError> {
        let keys = required("tagKeys", keys_opt)?;
        self.node.remove_tags(&name, keys).await?;
        Ok(empty())
    }

    async fn list_tags(&self, request: ListTagsInput) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let limit_opt = optional_in_range("limit", request.limit, 1, 50)?;
        let (tags, has_more) = self
            .node
            .list_tags(&name, request.exclusive_start_tag_key.as_deref(), limit_opt)
            .await?;
        Ok(Reply::Document(json!({
            "Tags": tags.into_iter().map(|(key, value)| TagShape { key, value }).collect::<Vec<_>>(),
            "HasMoreTags": has_more,
        })))
    }

    /// The stream a TagResource-style ARN names; consumer ARNs carry no tags in Tributary.
    fn tagged_stream(&self, arn_opt: Option<String>) -> Result<String, KinesisError> {
        let arn = required("resourceARN", arn_opt)?;
        if arn.contains("/consumer/") {
            return Err(KinesisError::invalid_argument(
                "Tributary keeps tags on streams only; consumer ARNs cannot be tagged",
            ));
        }
        self.arns.parse_stream("resourceARN", &arn)
    }

    async fn list_tags_for_resource(
        &self,
        request: ListTagsForResourceInput,
    ) -> Result<Reply, KinesisError> {
        let name = self.tagged_stream(request.resource_arn)?;
        let (tags, _) = self.node.list_tags(&name, None, None).await?;
        Ok(Reply::Document(json!({
            "Tags": tags.into_iter().map(|(key, value)| TagShape { key, value }).collect::<Vec<_>>(),
        })))
    }

    /// The consumer a ConsumerARN names. A consumer deregistered and registered again under
    /// the same name has a new ARN: the old one is not found.
    async fn consumer_by_arn(&self, arn: &str) -> Result<ConsumerDescription, KinesisError> {
        let parsed = self.arns.parse_consumer("consumerARN", arn)?;
        let description = self
            .node
            .describe_consumer(&parsed.stream, &parsed.consumer)
            .await?;
        if description.created_at_ms / 1000 != parsed.created_at_secs {
            return Err(KinesisError::resource_not_found(format!(
                "Consumer {arn} not found."
            )));
        }
        Ok(description)
    }

    /// The consumer a request names by ConsumerARN, or by StreamARN and ConsumerName.
    async fn consumer(&self, consumer: ConsumerRef) -> Result<ConsumerDescription, KinesisError> {
        match (
            consumer.consumer_arn,
            consumer.stream_arn,
            consumer.consumer_name,
        ) {
            (Some(arn), None, None) => self.consumer_by_arn(&arn).await,
            (None, Some(stream_arn), Some(name)) => {
                let stream = self.arns.parse_stream("streamARN", &stream_arn)?;
                Ok(self.node.describe_consumer(&stream, &name).await?)
            }
            _ => Err(KinesisError::invalid_argument(
                "Name a consumer by ConsumerARN alone, or by StreamARN and ConsumerName",
            )),
        }
    }

    async fn register_consumer(
        &self,
        request: RegisterConsumerInput,
    ) -> Result<Reply, KinesisError> {
        let stream_arn = required("streamARN", request.stream_arn)?;
        let stream = self.arns.parse_stream("streamARN", &stream_arn)?;
        let name = required("consumerName", request.consumer_name)?;
        let description = self.node.register_consumer(&stream, &name).await?;
        Ok(Reply::Document(
            json!({ "Consumer": Consumer::new(&self.arns, &description) }),
        ))
    }

    async fn deregister_consumer(&self, request: ConsumerRef) -> Result<Reply, KinesisError> {
        let description = self.consumer(request).await?;
        self.node
            .deregister_consumer(description.stream.as_str(), description.name.as_str())
            .await?;
        Ok(empty())
    }

    async fn describe_consumer(&self, request: ConsumerRef) -> Result<Reply, KinesisError> {
        let description = self.consumer(request).await?;
        let mut consumer = Consumer::new(&self.arns, &description);
        consumer.stream_arn = Some(self.arns.stream(description.stream.as_str()));
        Ok(Reply::Document(json!({ "ConsumerDescription": consumer })))
    }

    async fn list_consumers(&self, request: ListConsumersInput) -> Result<Reply, KinesisError> {
        let stream_arn = required("streamARN", request.stream_arn)?;
        let stream = self.arns.parse_stream("streamARN", &stream_arn)?;
        optional_in_range("maxResults", request.max_results, 1, 10_000)?;
        // At most 20 consumers per stream: one page always holds them all.
        let consumers = self.node.list_consumers(&stream).await?;
        Ok(Reply::Document(json!({
            "Consumers": consumers
                .iter()
                .map(|c| Consumer::new(&self.arns, c))
                .collect::<Vec<_>>(),
        })))
    }

    async fn describe_limits(&self) -> Result<Reply, KinesisError> {
        let limits = self.node.describe_limits().await;
        // No account-wide quotas: the limits reported are the largest Kinesis' shape allows.
        Ok(Reply::Document(json!({
            "ShardLimit": i32::MAX,
            "OpenShardCount": limits.open_shard_count,
            "OnDemandStreamCount": limits.on_demand_stream_count,
            "OnDemandStreamCountLimit": i32::MAX,
        })))
    }

    async fn monitoring(
        &self,
        request: MonitoringInput,
        enable: bool,
    ) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let metrics = required("shardLevelMetrics", request.shard_level_metrics)?;
        let change = self
            .node
            .update_shard_level_metrics(&name, &metrics, enable)
            .await?;
        Ok(Reply::Document(json!({
            "StreamName": change.stream.as_str(),
            "StreamARN": self.arns.stream(change.stream.as_str()),
            "CurrentShardLevelMetrics": change.current,
            "DesiredShardLevelMetrics": change.desired,
        })))
    }

    async fn encryption(
        &self,
        request: EncryptionInput,
        start: bool,
    ) -> Result<Reply, KinesisError> {
        let name = self.stream_name(request.stream)?;
        let encryption_type = required("encryptionType", request.encryption_type)?;
        let key_id = required("keyId", request.key_id)?;
        if start {
            self.node
                .start_stream_encryption(&name, &encryption_type, &key_id)
                .await?;
        } else {
            self.node
                .stop_stream_encryption(&name, &encryption_type, &key_id)
                .await?;
        }
        Ok(empty())
    }

    async fn subscribe_to_shard(
        &self,
        request: SubscribeInput,
        peer_opt: Option<std::net::SocketAddr>,
    ) -> Result<Reply, KinesisError> {
        let arn = required("consumerARN", request.consumer_arn)?;
        let shard_id = required("shardId", request.shard_id)?;
        let position = required("startingPosition", request.starting_position)?;
        let consumer = self.consumer_by_arn(&arn).await?;
        let start = StartingPosition {
            kind: required("startingPosition.type", position.position_type)?,
            sequence_number_opt: position.sequence_number,
            timestamp_ms_opt: position
                .timestamp
                .map(|t| timestamp_millis("startingPosition.timestamp", t))
                .transpose()?,
        };
        let events = self
            .node
            .subscribe_to_shard(
                consumer.stream.as_str(),
                consumer.name.as_str(),
                &shard_id,
                start,
                Subscriber::Client(peer_opt.map(|peer| peer.ip())),
            )
            .await?;
        Ok(Reply::Events(events))
    }
}

/// A SubscribeToShardEvent's document.
pub fn subscribe_event(event: crate::api::SubscribeEvent) -> Value {
    let mut document = json!({
        "Records": event.records.into_iter().map(Record::from).collect::<Vec<_>>(),
        "MillisBehindLatest": event.millis_behind_latest,
    });
    match event.continuation_opt {
        Some(continuation) => {
            document["ContinuationSequenceNumber"] = Value::String(continuation.to_string())
        }
        None => {
            document["ChildShards"] = output(
                &event
                    .child_shards
                    .into_iter()
                    .map(ChildShardShape::from)
                    .collect::<Vec<_>>(),
            )
        }
    }
    document
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<ModeDetailsInput>,
    tags: Option<TagMap>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModeDetailsInput {
    stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    enforce_consumer_deletion: Option<bool>,
}

#[derive(Deserialize)]
struct StreamOnly {
    #[serde(flatten)]
    stream: StreamRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    shard_filter: Option<ShardFilterInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilterInput {
    #[serde(rename = "Type")]
    filter_type: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    #[serde(flatten)]
    stream: StreamRef,
    partition_key: Option<String>,
    data: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput {
    #[serde(flatten)]
    stream: StreamRef,
    records: Option<Vec<PutRecordsEntryInput>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsEntryInput {
    partition_key: Option<String>,
    data: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SplitShardInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MergeShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateShardCountInput {
    #[serde(flatten)]
    stream: StreamRef,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionInput {
    #[serde(flatten)]
    stream: StreamRef,
    retention_period_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<ModeDetailsInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tags: Option<TagMap>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoveTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<TagMap>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterConsumerInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsumerRef {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListConsumersInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MonitoringInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_level_metrics: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInput {
    #[serde(flatten)]
    stream: StreamRef,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPositionInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartingPositionInput {
    #[serde(rename = "Type")]
    position_type: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<f64>,
}

/// A description's EncryptionType, and its KeyId while encrypted (absent otherwise, as in
/// Kinesis).
fn add_encryption(description: &mut Value, encryption_opt: Option<crate::api::StreamEncryption>) {
    let kind = match &encryption_opt {
        Some(_) => EncryptionType::Kms,
        None => EncryptionType::None,
    };
    description["EncryptionType"] = json!(kind.as_str());
    if let Some(encryption) = encryption_opt {
        description["KeyId"] = json!(encryption.key_id);
    }
}

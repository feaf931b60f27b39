//! The public `tributary.v1.Tributary` service.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tributary_proto::status_from_error;
use tributary_proto::v1::tributary_server::Tributary;
use tributary_proto::v1::*;
use tributary_types::Error;

use tributary_raft::meta::RetentionChange;

use super::convert;
use crate::admin::CreateStreamOptions;
use crate::auth::{Resource, authorize_grpc};
use crate::node::Node;
use crate::reads::FORWARDED_HEADER;
use crate::telemetry;

pub struct PublicService {
    pub node: Arc<Node>,
}

pub(crate) fn status(error: Error) -> Status {
    telemetry::record_error(error.code);
    status_from_error(error)
}

fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_HEADER)
}

type EventStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SubscribeToShardEvent, Status>> + Send + 'static>,
>;

/// ListShards names its stream, or its NextToken does.
fn list_shards_resource<'a>(request: &'a ListShardsRequest, from_token: &'a str) -> Resource<'a> {
    match request.stream_name.as_deref() {
        Some(name) if !name.is_empty() => Resource::Stream(name),
        _ => Resource::Stream(from_token),
    }
}

#[tonic::async_trait]
impl Tributary for PublicService {
    type SubscribeToShardStream = EventStream;

    async fn subscribe_to_shard(
        &self,
        request: Request<SubscribeToShardRequest>,
    ) -> Result<Response<Self::SubscribeToShardStream>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:SubscribeToShard",
            Resource::Consumer(&r.stream_name, &r.consumer_name),
        )?;
        use futures::StreamExt;
        let subscriber = if is_forwarded(&request) {
            crate::fanout::Subscriber::Forwarded
        } else {
            crate::fanout::Subscriber::Client(request.remote_addr().map(|peer| peer.ip()))
        };
        let request = request.into_inner();
        let position = request.starting_position.unwrap_or_default();
        let start = crate::fanout::StartingPosition {
            kind: position.r#type,
            sequence_number_opt: position.sequence_number,
            timestamp_ms_opt: position.timestamp_ms,
        };
        let events = self
            .node
            .subscribe_to_shard(
                &request.stream_name,
                &request.consumer_name,
                &request.shard_id,
                start,
                subscriber,
            )
            .await
            .map_err(status)?;
        let stream =
            events.map(|event| event.map(convert::subscribe_event_to_proto).map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tributary:ClusterStatus",
            Resource::Cluster,
        )?;
        Ok(Response::new(convert::cluster_status_to_proto(
            self.node.cluster_status().await,
        )))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tributary:RemoveNode",
            Resource::Cluster,
        )?;
        let replicas_to_move = self
            .node
            .remove_node(request.into_inner().node_id)
            .await
            .map_err(status)?;
        Ok(Response::new(RemoveNodeResponse { replicas_to_move }))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        let report = self.node.leadership_report();
        Ok(Response::new(PingResponse {
            node_id: self.node.id(),
            shard_leaders: report.shard_leaders,
            follower_lag: report.follower_lag.into_iter().collect(),
        }))
    }

    async fn create_stream(
        &self,
        request: Request<CreateStreamRequest>,
    ) -> Result<Response<CreateStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:CreateStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let mode_opt = match request.stream_mode.as_deref() {
            Some(mode) => Some(mode.parse().map_err(status)?),
            None => None,
        };
        let options = CreateStreamOptions {
            shard_count: request.shard_count,
            retention_hours_opt: request.retention_period_hours,
            mode_opt,
            tags: request.tags.into_iter().collect(),
        };
        self.node
            .create_stream(&request.stream_name, options)
            .await
            .map_err(status)?;
        Ok(Response::new(CreateStreamResponse {}))
    }

    async fn delete_stream(
        &self,
        request: Request<DeleteStreamRequest>,
    ) -> Result<Response<DeleteStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DeleteStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .delete_stream(&request.stream_name, request.enforce_consumer_deletion)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteStreamResponse {}))
    }

    async fn list_streams(
        &self,
        request: Request<ListStreamsRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:ListStreams",
            Resource::AllStreams,
        )?;
        let request = request.into_inner();
        let page = self
            .node
            .list_streams(
                request.limit,
                request.exclusive_start_stream_name.as_deref(),
                request.next_token.as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListStreamsResponse {
            has_more_streams: page.next_token_opt.is_some(),
            stream_names: page.items,
            next_token: page.next_token_opt,
        }))
    }

    async fn describe_stream_summary(
        &self,
        request: Request<DescribeStreamSummaryRequest>,
    ) -> Result<Response<DescribeStreamSummaryResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DescribeStreamSummary",
            Resource::Stream(&r.stream_name),
        )?;
        let summary = self
            .node
            .describe_stream_summary(&request.into_inner().stream_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DescribeStreamSummaryResponse {
            stream_description_summary: Some(convert::stream_summary_to_proto(summary)),
        }))
    }

    async fn list_shards(
        &self,
        request: Request<ListShardsRequest>,
    ) -> Result<Response<ListShardsResponse>, Status> {
        let stream_from_token = request
            .get_ref()
            .next_token
            .as_deref()
            .and_then(|token| tributary_types::NextToken::decode(token, crate::now_ms()).ok())
            .map(|token| token.scope)
            .unwrap_or_default();
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:ListShards",
            list_shards_resource(r, &stream_from_token),
        )?;
        let request = request.into_inner();
        let filter_opt = match request.shard_filter {
            Some(filter) => Some(convert::shard_filter_from_proto(filter).map_err(status)?),
            None => None,
        };
        let page = self
            .node
            .list_shards(crate::admin::ListShardsRequest {
                stream_opt: request.stream_name,
                next_token_opt: request.next_token,
                exclusive_start_shard_id_opt: request.exclusive_start_shard_id,
                max_results_opt: request.max_results,
                filter_opt,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(ListShardsResponse {
            shards: page
                .items
                .into_iter()
                .map(convert::shard_to_proto)
                .collect(),
            next_token: page.next_token_opt,
        }))
    }

    async fn increase_stream_retention_period(
        &self,
        request: Request<UpdateRetentionRequest>,
    ) -> Result<Response<UpdateRetentionResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:IncreaseStreamRetentionPeriod",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .update_retention(
                &request.stream_name,
                request.retention_period_hours,
                RetentionChange::Increase,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateRetentionResponse {}))
    }

    async fn decrease_stream_retention_period(
        &self,
        request: Request<UpdateRetentionRequest>,
    ) -> Result<Response<UpdateRetentionResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DecreaseStreamRetentionPeriod",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .update_retention(
                &request.stream_name,
                request.retention_period_hours,
                RetentionChange::Decrease,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateRetentionResponse {}))
    }

    async fn update_stream_mode(
        &self,
        request: Request<UpdateStreamModeRequest>,
    ) -> Result<Response<UpdateStreamModeResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:UpdateStreamMode",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .update_stream_mode(&request.stream_name, &request.stream_mode)
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateStreamModeResponse {}))
    }

    async fn start_stream_encryption(
        &self,
        request: Request<StreamEncryptionRequest>,
    ) -> Result<Response<StreamEncryptionResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:StartStreamEncryption",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .start_stream_encryption(
                &request.stream_name,
                &request.encryption_type,
                &request.key_id,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(StreamEncryptionResponse {}))
    }

    async fn stop_stream_encryption(
        &self,
        request: Request<StreamEncryptionRequest>,
    ) -> Result<Response<StreamEncryptionResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:StopStreamEncryption",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .stop_stream_encryption(
                &request.stream_name,
                &request.encryption_type,
                &request.key_id,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(StreamEncryptionResponse {}))
    }

    async fn split_shard(
        &self,
        request: Request<SplitShardRequest>,
    ) -> Result<Response<SplitShardResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:SplitShard",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .split_shard(
                &request.stream_name,
                &request.shard_to_split,
                &request.new_starting_hash_key,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(SplitShardResponse {}))
    }

    async fn merge_shards(
        &self,
        request: Request<MergeShardsRequest>,
    ) -> Result<Response<MergeShardsResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:MergeShards",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .merge_shards(
                &request.stream_name,
                &request.shard_to_merge,
                &request.adjacent_shard_to_merge,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(MergeShardsResponse {}))
    }

    async fn update_shard_count(
        &self,
        request: Request<UpdateShardCountRequest>,
    ) -> Result<Response<UpdateShardCountResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:UpdateShardCount",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let current_shard_count = self
            .node
            .update_shard_count(
                &request.stream_name,
                request.target_shard_count,
                request.scaling_type.as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateShardCountResponse {
            stream_name: request.stream_name,
            current_shard_count,
            target_shard_count: request.target_shard_count,
        }))
    }

    async fn add_tags_to_stream(
        &self,
        request: Request<AddTagsToStreamRequest>,
    ) -> Result<Response<AddTagsToStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:AddTagsToStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .add_tags(&request.stream_name, request.tags.into_iter().collect())
            .await
            .map_err(status)?;
        Ok(Response::new(AddTagsToStreamResponse {}))
    }

    async fn remove_tags_from_stream(
        &self,
        request: Request<RemoveTagsFromStreamRequest>,
    ) -> Result<Response<RemoveTagsFromStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:RemoveTagsFromStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        self.node
            .remove_tags(&request.stream_name, request.tag_keys)
            .await
            .map_err(status)?;
        Ok(Response::new(RemoveTagsFromStreamResponse {}))
    }

    async fn list_tags_for_stream(
        &self,
        request: Request<ListTagsForStreamRequest>,
    ) -> Result<Response<ListTagsForStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:ListTagsForStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let (tags, has_more_tags) = self
            .node
            .list_tags(
                &request.stream_name,
                request.exclusive_start_tag_key.as_deref(),
                request.limit,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListTagsForStreamResponse {
            tags: tags
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect(),
            has_more_tags,
        }))
    }

    async fn register_stream_consumer(
        &self,
        request: Request<RegisterStreamConsumerRequest>,
    ) -> Result<Response<RegisterStreamConsumerResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:RegisterStreamConsumer",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let consumer = self
            .node
            .register_consumer(&request.stream_name, &request.consumer_name)
            .await
            .map_err(status)?;
        Ok(Response::new(RegisterStreamConsumerResponse {
            consumer: Some(convert::consumer_to_proto(consumer)),
        }))
    }

    async fn deregister_stream_consumer(
        &self,
        request: Request<DeregisterStreamConsumerRequest>,
    ) -> Result<Response<DeregisterStreamConsumerResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DeregisterStreamConsumer",
            Resource::Consumer(&r.stream_name, &r.consumer_name),
        )?;
        let request = request.into_inner();
        self.node
            .deregister_consumer(&request.stream_name, &request.consumer_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeregisterStreamConsumerResponse {}))
    }

    async fn describe_stream_consumer(
        &self,
        request: Request<DescribeStreamConsumerRequest>,
    ) -> Result<Response<DescribeStreamConsumerResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DescribeStreamConsumer",
            Resource::Consumer(&r.stream_name, &r.consumer_name),
        )?;
        let request = request.into_inner();
        let consumer = self
            .node
            .describe_consumer(&request.stream_name, &request.consumer_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DescribeStreamConsumerResponse {
            consumer: Some(convert::consumer_to_proto(consumer)),
        }))
    }

    async fn list_stream_consumers(
        &self,
        request: Request<ListStreamConsumersRequest>,
    ) -> Result<Response<ListStreamConsumersResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:ListStreamConsumers",
            Resource::Stream(&r.stream_name),
        )?;
        let consumers = self
            .node
            .list_consumers(&request.into_inner().stream_name)
            .await
            .map_err(status)?;
        Ok(Response::new(ListStreamConsumersResponse {
            consumers: consumers
                .into_iter()
                .map(convert::consumer_to_proto)
                .collect(),
        }))
    }

    async fn put_record(
        &self,
        request: Request<PutRecordRequest>,
    ) -> Result<Response<PutRecordResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:PutRecord",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let entry = tributary_types::PutRecordEntry {
            partition_key: request.partition_key,
            data: request.data,
            explicit_hash_key: request.explicit_hash_key,
        };
        let outcome = self
            .node
            .put_record(
                &request.stream_name,
                entry,
                request.sequence_number_for_ordering.as_deref(),
            )
            .await
            .map_err(status)?;
        let (shard, sequence_number) = outcome.results;
        Ok(Response::new(PutRecordResponse {
            shard_id: shard.to_string(),
            sequence_number: sequence_number.to_string(),
            encryption_type: outcome.encryption_type.as_str().to_string(),
        }))
    }

    async fn describe_stream(
        &self,
        request: Request<DescribeStreamRequest>,
    ) -> Result<Response<DescribeStreamResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:DescribeStream",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let description = self
            .node
            .describe_stream(
                &request.stream_name,
                request.limit,
                request.exclusive_start_shard_id.as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(DescribeStreamResponse {
            stream_description: Some(convert::stream_description_to_proto(description)),
        }))
    }

    async fn put_records(
        &self,
        request: Request<PutRecordsRequest>,
    ) -> Result<Response<PutRecordsResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:PutRecords",
            Resource::Stream(&r.stream_name),
        )?;
        let request = request.into_inner();
        let entries = request
            .records
            .into_iter()
            .map(convert::put_entry_from_proto)
            .collect();
        let producer_opt =
            convert::producer_sequence_from_proto(request.producer_id, request.producer_sequence)
                .map_err(status)?;
        let outcome = self
            .node
            .put_records(&request.stream_name, entries, producer_opt)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::put_results_to_proto(outcome)))
    }

    async fn get_shard_iterator(
        &self,
        request: Request<GetShardIteratorRequest>,
    ) -> Result<Response<GetShardIteratorResponse>, Status> {
        let r = request.get_ref();
        authorize_grpc(
            &self.node,
            &request,
            "kinesis:GetShardIterator",
            Resource::Stream(&r.stream_name),
        )?;
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let shard_iterator = self
            .node
            .get_shard_iterator(
                &request.stream_name,
                &request.shard_id,
                &request.shard_iterator_type,
                request.starting_sequence_number.as_deref(),
                request.timestamp_ms,
                forwarded,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(GetShardIteratorResponse { shard_iterator }))
    }

    async fn get_records(
        &self,
        request: Request<GetRecordsRequest>,
    ) -> Result<Response<GetRecordsResponse>, Status> {
        if let Ok(iterator) = tributary_types::ShardIterator::decode(
            &request.get_ref().shard_iterator,
            crate::now_ms(),
        ) {
            // An iterator that does not decode reads nothing: get_records refuses it below.
            authorize_grpc(
                &self.node,
                &request,
                "kinesis:GetRecords",
                Resource::Stream(iterator.stream.as_str()),
            )?;
        }
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let output = self
            .node
            .get_records(&request.shard_iterator, request.limit, forwarded)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::get_records_output_to_proto(output)))
    }
}

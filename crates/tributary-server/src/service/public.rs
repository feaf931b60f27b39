//! The public `tributary.v1.Tributary` service.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tributary_proto::status_from_error;
use tributary_proto::v1::tributary_server::Tributary;
use tributary_proto::v1::*;
use tributary_types::Error;

use super::convert;
use crate::node::Node;
use crate::reads::FORWARDED_HEADER;
use crate::telemetry;

pub struct PublicService {
    pub node: Arc<Node>,
}

fn status(error: Error) -> Status {
    telemetry::record_error(error.code);
    status_from_error(error)
}

fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_HEADER)
}

#[tonic::async_trait]
impl Tributary for PublicService {
    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        Ok(Response::new(convert::cluster_status_to_proto(
            self.node.cluster_status().await,
        )))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            node_id: self.node.id(),
        }))
    }

    async fn create_stream(
        &self,
        request: Request<CreateStreamRequest>,
    ) -> Result<Response<CreateStreamResponse>, Status> {
        let request = request.into_inner();
        self.node
            .create_stream(
                &request.stream_name,
                request.shard_count,
                request.retention_period_hours,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(CreateStreamResponse {}))
    }

    async fn delete_stream(
        &self,
        request: Request<DeleteStreamRequest>,
    ) -> Result<Response<DeleteStreamResponse>, Status> {
        self.node
            .delete_stream(&request.into_inner().stream_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteStreamResponse {}))
    }

    async fn list_streams(
        &self,
        _: Request<ListStreamsRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        Ok(Response::new(ListStreamsResponse {
            stream_names: self.node.list_streams().await,
        }))
    }

    async fn describe_stream(
        &self,
        request: Request<DescribeStreamRequest>,
    ) -> Result<Response<DescribeStreamResponse>, Status> {
        let description = self
            .node
            .describe_stream(&request.into_inner().stream_name)
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
        let request = request.into_inner();
        let entries = request
            .records
            .into_iter()
            .map(convert::put_entry_from_proto)
            .collect();
        let results = self
            .node
            .put_records(&request.stream_name, entries)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::put_results_to_proto(results)))
    }

    async fn get_shard_iterator(
        &self,
        request: Request<GetShardIteratorRequest>,
    ) -> Result<Response<GetShardIteratorResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let shard_iterator = self
            .node
            .get_shard_iterator(
                &request.stream_name,
                &request.shard_id,
                &request.shard_iterator_type,
                request.starting_sequence_number.as_deref(),
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

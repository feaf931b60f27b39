//! The public `tributary.v1.Tables` service: lease tables.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tributary_proto::table::{
    condition_from_proto, item_from_proto, item_to_proto, update_from_proto,
};
use tributary_proto::v1::tables_server::Tables;
use tributary_proto::v1::*;
use tributary_types::Error;
use tributary_types::table::Condition;

use super::public::status;
use crate::auth::{Resource, authorize_grpc};
use crate::node::Node;

pub struct TablesService {
    pub node: Arc<Node>,
}

fn condition(
    condition_opt: Option<tributary_proto::v1::Condition>,
) -> Result<Option<Condition>, Status> {
    condition_opt
        .map(condition_from_proto)
        .transpose()
        .map_err(status)
}

fn required_item(item_opt: Option<AttributeMap>) -> Result<tributary_types::table::Item, Status> {
    let item = item_opt.ok_or_else(|| status(Error::invalid_argument("PutItem needs an item")))?;
    item_from_proto(item).map_err(status)
}

#[tonic::async_trait]
impl Tables for TablesService {
    async fn create_table(
        &self,
        request: Request<CreateTableRequest>,
    ) -> Result<Response<CreateTableResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:CreateTable",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        self.node
            .create_table(&request.table_name, request.key_attribute.as_deref())
            .await
            .map_err(status)?;
        Ok(Response::new(CreateTableResponse {}))
    }

    async fn delete_table(
        &self,
        request: Request<DeleteTableRequest>,
    ) -> Result<Response<DeleteTableResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:DeleteTable",
            Resource::Table(&request.get_ref().table_name),
        )?;
        self.node
            .delete_table(&request.into_inner().table_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteTableResponse {}))
    }

    async fn list_tables(
        &self,
        request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:ListTables",
            Resource::AllTables,
        )?;
        let table_names = self.node.list_tables().await.map_err(status)?;
        Ok(Response::new(ListTablesResponse { table_names }))
    }

    async fn describe_table(
        &self,
        request: Request<DescribeTableRequest>,
    ) -> Result<Response<DescribeTableResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:DescribeTable",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let described = self
            .node
            .describe_table(&request.into_inner().table_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DescribeTableResponse {
            table_name: described.name,
            key_attribute: described.key_attribute,
            item_count: described.item_count,
            creation_timestamp_ms: described.created_at_ms,
        }))
    }

    async fn put_item(
        &self,
        request: Request<PutItemRequest>,
    ) -> Result<Response<PutItemResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:PutItem",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        let item = required_item(request.item)?;
        let condition = condition(request.condition)?;
        self.node
            .put_item(&request.table_name, item, condition)
            .await
            .map_err(status)?;
        Ok(Response::new(PutItemResponse {}))
    }

    async fn get_item(
        &self,
        request: Request<GetItemRequest>,
    ) -> Result<Response<GetItemResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:GetItem",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        let item = self
            .node
            .get_item(&request.table_name, &request.key)
            .await
            .map_err(status)?;
        Ok(Response::new(GetItemResponse {
            item: item.as_ref().map(item_to_proto),
        }))
    }

    async fn update_item(
        &self,
        request: Request<UpdateItemRequest>,
    ) -> Result<Response<UpdateItemResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:UpdateItem",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        let updates = request
            .updates
            .into_iter()
            .map(update_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let condition = condition(request.condition)?;
        let item = self
            .node
            .update_item(&request.table_name, &request.key, updates, condition)
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateItemResponse {
            item: Some(item_to_proto(&item)),
        }))
    }

    async fn delete_item(
        &self,
        request: Request<DeleteItemRequest>,
    ) -> Result<Response<DeleteItemResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:DeleteItem",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        let condition = condition(request.condition)?;
        self.node
            .delete_item(&request.table_name, &request.key, condition)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteItemResponse {}))
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "tables:Scan",
            Resource::Table(&request.get_ref().table_name),
        )?;
        let request = request.into_inner();
        let (items, last_evaluated_key) = self
            .node
            .scan(
                &request.table_name,
                request.limit,
                request.exclusive_start_key.as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ScanResponse {
            items: items.iter().map(item_to_proto).collect(),
            last_evaluated_key,
        }))
    }
}

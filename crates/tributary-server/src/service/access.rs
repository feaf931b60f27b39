//! The `tributary.v1.Access` service: users and policies (thin shims over `auth::admin`).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tributary_proto::v1::access_server::Access;
use tributary_proto::v1::*;

use super::public::status;
use crate::auth::{Resource, authorize_grpc};
use crate::node::Node;

pub struct AccessService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Access for AccessService {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let user = request.get_ref().user_name.clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:CreateUser",
            Resource::User(&user),
        )?;
        let policies = request.into_inner().policy_names;
        let created = self
            .node
            .create_user(&user, &policies)
            .await
            .map_err(status)?;
        Ok(Response::new(CreateUserResponse {
            arn: self.node.resource_arn(Resource::User(&user)),
            user_name: user,
            access_key_id: created.access_key_id,
            secret_access_key: created.secret_access_key,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let user = request.get_ref().user_name.clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:DeleteUser",
            Resource::User(&user),
        )?;
        self.node.delete_user(&user).await.map_err(status)?;
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        authorize_grpc(&self.node, &request, "iam:ListUsers", Resource::User("*"))?;
        let users = self
            .node
            .list_users()
            .await
            .into_iter()
            .map(|user| User {
                arn: self.node.resource_arn(Resource::User(&user.name)),
                user_name: user.name,
                access_key_ids: user.access_key_ids,
                policy_names: user.policies,
                created_at_ms: user.created_at_ms as i64,
            })
            .collect();
        Ok(Response::new(ListUsersResponse { users }))
    }

    async fn put_policy(
        &self,
        request: Request<PutPolicyRequest>,
    ) -> Result<Response<PutPolicyResponse>, Status> {
        let name = request.get_ref().policy_name.clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:PutPolicy",
            Resource::Policy(&name),
        )?;
        let document = request.into_inner().policy_document;
        self.node
            .put_policy(&name, &document)
            .await
            .map_err(status)?;
        Ok(Response::new(PutPolicyResponse {}))
    }

    async fn delete_policy(
        &self,
        request: Request<DeletePolicyRequest>,
    ) -> Result<Response<DeletePolicyResponse>, Status> {
        let name = request.get_ref().policy_name.clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:DeletePolicy",
            Resource::Policy(&name),
        )?;
        self.node.delete_policy(&name).await.map_err(status)?;
        Ok(Response::new(DeletePolicyResponse {}))
    }

    async fn attach_policy(
        &self,
        request: Request<AttachPolicyRequest>,
    ) -> Result<Response<AttachPolicyResponse>, Status> {
        let AttachPolicyRequest {
            policy_name,
            user_name,
        } = request.get_ref().clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:AttachUserPolicy",
            Resource::User(&user_name),
        )?;
        self.node
            .attach_policy(&user_name, &policy_name)
            .await
            .map_err(status)?;
        Ok(Response::new(AttachPolicyResponse {}))
    }

    async fn detach_policy(
        &self,
        request: Request<DetachPolicyRequest>,
    ) -> Result<Response<DetachPolicyResponse>, Status> {
        let DetachPolicyRequest {
            policy_name,
            user_name,
        } = request.get_ref().clone();
        authorize_grpc(
            &self.node,
            &request,
            "iam:DetachUserPolicy",
            Resource::User(&user_name),
        )?;
        self.node
            .detach_policy(&user_name, &policy_name)
            .await
            .map_err(status)?;
        Ok(Response::new(DetachPolicyResponse {}))
    }

    async fn list_policies(
        &self,
        request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        authorize_grpc(
            &self.node,
            &request,
            "iam:ListPolicies",
            Resource::Policy("*"),
        )?;
        let policies = self
            .node
            .list_policies()
            .await
            .into_iter()
            .map(|policy| Policy {
                arn: self.node.resource_arn(Resource::Policy(&policy.name)),
                policy_name: policy.name,
                policy_document: policy.document,
                user_names: policy.users,
                updated_at_ms: policy.updated_at_ms as i64,
            })
            .collect();
        Ok(Response::new(ListPoliciesResponse { policies }))
    }
}

//! Errors ↔ gRPC statuses, in one place. The stable error code travels in the status details as an
//! encoded [`crate::v1::ErrorDetail`]; the gRPC code is a coarse hint for generic tooling.

use prost::Message;
use tonic::{Code, Status};
use tributary_types::{Error, ErrorCode};

use crate::v1::ErrorDetail;

fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::ResourceNotFound => Code::NotFound,
        ErrorCode::ResourceInUse => Code::AlreadyExists,
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::LimitExceeded | ErrorCode::ProvisionedThroughputExceeded => {
            Code::ResourceExhausted
        }
        ErrorCode::ExpiredIterator
        | ErrorCode::ExpiredNextToken
        | ErrorCode::ConditionalCheckFailed => Code::FailedPrecondition,
        ErrorCode::DuplicateRecord => Code::AlreadyExists,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::KmsNotFound => Code::FailedPrecondition,
        ErrorCode::AccessDenied => Code::PermissionDenied,
        ErrorCode::InternalFailure => Code::Internal,
        ErrorCode::WriteQuorumUnavailable | ErrorCode::NotLeader => Code::Unavailable,
    }
}

pub fn status_from_error(error: Error) -> Status {
    let (leader_id, leader_address) = match error.leader_opt {
        Some((id, address)) => (Some(id), Some(address)),
        None => (None, None),
    };
    let detail = ErrorDetail {
        code: error.code.as_str().to_string(),
        message: error.message.clone(),
        leader_id,
        leader_address,
        current_item: error
            .current_item_opt
            .as_deref()
            .map(crate::table::item_to_proto),
    };
    Status::with_details(
        grpc_code(error.code),
        error.message,
        detail.encode_to_vec().into(),
    )
}

/// Recovers the typed error from a status. A status without Tributary details (a transport
/// failure, a proxy, a node that crashed mid-call) becomes `INTERNAL_FAILURE` with the gRPC code in
/// the message; callers that care about reachability look at the gRPC code first.
pub fn error_from_status(status: &Status) -> Error {
    if let Ok(detail) = ErrorDetail::decode(status.details())
        && let Some(code) = ErrorCode::parse(&detail.code)
    {
        let leader_opt = detail.leader_id.zip(detail.leader_address);
        let current_item_opt = detail
            .current_item
            .and_then(|item| crate::table::item_from_proto(item).ok())
            .map(Box::new);
        return Error {
            code,
            message: detail.message,
            leader_opt,
            current_item_opt,
        };
    }
    Error::internal(format!("{:?}: {}", status.code(), status.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_the_round_trip() {
        for code in ErrorCode::ALL {
            let mut error = Error::new(code, format!("message for {code}"));
            error.leader_opt = Some((3, "127.0.0.1:7103".to_string()));
            let status = status_from_error(error.clone());
            assert_eq!(status.code(), grpc_code(code));
            assert_eq!(error_from_status(&status), error);
        }
    }

    #[test]
    fn statuses_without_details_are_internal_failures() {
        let error = error_from_status(&Status::unavailable("connection refused"));
        assert_eq!(error.code, ErrorCode::InternalFailure);
        assert!(error.message.contains("connection refused"));
    }
}

/// A status's message with the errors under it: a transport failure's own message is just
/// "transport error", while the reason (connection refused, a certificate the CA did not sign)
/// is in its sources.
pub fn describe_status(status: &Status) -> String {
    let mut text = status.message().to_string();
    let mut source_opt = std::error::Error::source(status);
    while let Some(source) = source_opt {
        let next = source.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source_opt = source.source();
    }
    text
}

//! The closed set of error codes Tributary puts on the wire, and the one error type that carries
//! them. Codes are Kinesis' exception names in upper snake case plus Tributary's own.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable, wire-visible error codes. Never rename one: users' scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    LimitExceeded,
    ProvisionedThroughputExceeded,
    ExpiredIterator,
    AccessDenied,
    InternalFailure,
    /// A shard (or the metadata group) cannot reach a majority of its replicas: writes are refused
    /// quickly, committed data stays readable.
    WriteQuorumUnavailable,
    /// The receiving node does not lead the group; the error carries the leader when known.
    NotLeader,
    ConditionalCheckFailed,
    /// A ListShards/ListStreams NextToken older than 5 minutes.
    ExpiredNextToken,
    /// An idempotent put's record was stored by an earlier attempt, whose sequence number the
    /// shard no longer remembers (it is not stored twice).
    DuplicateRecord,
    /// The call carries no credentials, or credentials the cluster does not recognise or whose
    /// signature does not verify (`--auth required`).
    Unauthenticated,
    /// The key an encrypted stream names is not in the node's key ring (or not the version the
    /// data was sealed with): Kinesis' KMSNotFoundException.
    KmsNotFound,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceInUse,
        ErrorCode::InvalidArgument,
        ErrorCode::LimitExceeded,
        ErrorCode::ProvisionedThroughputExceeded,
        ErrorCode::ExpiredIterator,
        ErrorCode::AccessDenied,
        ErrorCode::InternalFailure,
        ErrorCode::WriteQuorumUnavailable,
        ErrorCode::NotLeader,
        ErrorCode::ConditionalCheckFailed,
        ErrorCode::ExpiredNextToken,
        ErrorCode::DuplicateRecord,
        ErrorCode::Unauthenticated,
        ErrorCode::KmsNotFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::ResourceInUse => "RESOURCE_IN_USE",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::ProvisionedThroughputExceeded => "PROVISIONED_THROUGHPUT_EXCEEDED",
            ErrorCode::ExpiredIterator => "EXPIRED_ITERATOR",
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::InternalFailure => "INTERNAL_FAILURE",
            ErrorCode::WriteQuorumUnavailable => "WRITE_QUORUM_UNAVAILABLE",
            ErrorCode::NotLeader => "NOT_LEADER",
            ErrorCode::ConditionalCheckFailed => "CONDITIONAL_CHECK_FAILED",
            ErrorCode::ExpiredNextToken => "EXPIRED_NEXT_TOKEN",
            ErrorCode::DuplicateRecord => "DUPLICATE_RECORD",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::KmsNotFound => "KMS_NOT_FOUND",
        }
    }

    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ProvisionedThroughputExceeded
                | ErrorCode::WriteQuorumUnavailable
                | ErrorCode::NotLeader
                | ErrorCode::InternalFailure
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a wire code and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// For [`ErrorCode::NotLeader`]: the leader's node id and address when known.
    pub leader_opt: Option<(u64, String)>,
    /// For [`ErrorCode::ConditionalCheckFailed`]: the item as it was, when it exists.
    pub current_item_opt: Option<Box<crate::table::Item>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            leader_opt: None,
            current_item_opt: None,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::ResourceNotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InternalFailure, message)
    }

    pub fn quorum_unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::WriteQuorumUnavailable, message)
    }

    pub fn stream_not_found(stream: &str) -> Self {
        Error::not_found(format!("Stream {stream} not found."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }
}

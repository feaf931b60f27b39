//! Kinesis errors as they go on the wire: an exception name (`__type`), a message and an HTTP
//! status. Tributary's own [`ErrorCode`]s map to names here, in one place.

use std::fmt;

use tributary_types::{Error, ErrorCode};

/// One error answer: `{"__type": name, "message": message}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisError {
    /// The exception name, e.g. `ResourceNotFoundException`.
    pub name: &'static str,
    pub message: String,
    pub status: u16,
}

/// The message AWS gives when a signature does not match.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl KinesisError {
    pub fn new(name: &'static str, status: u16, message: impl Into<String>) -> KinesisError {
        KinesisError {
            name,
            message: message.into(),
            status,
        }
    }

    /// A body that is not a JSON (or CBOR) document of the operation's shape.
    pub fn serialization(message: impl Into<String>) -> KinesisError {
        KinesisError::new("SerializationException", 400, message)
    }

    /// A request member that breaks the API model's constraints, in AWS' words:
    /// `1 validation error detected: Value 'x' at 'streamName' failed to satisfy constraint: ...`.
    pub fn validation(message: impl Into<String>) -> KinesisError {
        KinesisError::new(
            "ValidationException",
            400,
            format!("1 validation error detected: {}", message.into()),
        )
    }

    /// A required member that is absent.
    pub fn missing(member: &str) -> KinesisError {
        KinesisError::validation(format!(
            "Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }

    pub fn unknown_operation(target: &str) -> KinesisError {
        KinesisError::new(
            "UnknownOperationException",
            400,
            format!("Unknown operation '{target}'"),
        )
    }

    pub fn missing_authentication_token() -> KinesisError {
        KinesisError::new(
            "MissingAuthenticationTokenException",
            403,
            "Missing Authentication Token",
        )
    }

    pub fn incomplete_signature(message: impl Into<String>) -> KinesisError {
        KinesisError::new("IncompleteSignatureException", 400, message)
    }

    pub fn invalid_signature(message: impl Into<String>) -> KinesisError {
        KinesisError::new("InvalidSignatureException", 400, message)
    }

    pub fn unrecognized_client() -> KinesisError {
        KinesisError::new(
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        )
    }

    pub fn request_too_large(limit: usize) -> KinesisError {
        KinesisError::new(
            "SerializationException",
            413,
            format!("The request body is larger than {limit} bytes"),
        )
    }

    pub fn resource_not_found(message: impl Into<String>) -> KinesisError {
        KinesisError::new("ResourceNotFoundException", 400, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> KinesisError {
        KinesisError::new("InvalidArgumentException", 400, message)
    }

    /// The JSON body of this error (CBOR bodies carry the same map).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.name, "message": self.message })
    }
}

impl fmt::Display for KinesisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for KinesisError {}

/// The exception name and HTTP status Kinesis clients expect for each Tributary error code.
///
/// Codes Kinesis does not have keep a Tributary name with a status SDKs treat correctly:
/// WRITE_QUORUM_UNAVAILABLE and NOT_LEADER are 503, which every AWS SDK retries.
pub fn name_and_status(code: ErrorCode) -> (&'static str, u16) {
    match code {
        ErrorCode::ResourceNotFound => ("ResourceNotFoundException", 400),
        ErrorCode::ResourceInUse => ("ResourceInUseException", 400),
        ErrorCode::InvalidArgument => ("InvalidArgumentException", 400),
        ErrorCode::LimitExceeded => ("LimitExceededException", 400),
        ErrorCode::ProvisionedThroughputExceeded => ("ProvisionedThroughputExceededException", 400),
        ErrorCode::ExpiredIterator => ("ExpiredIteratorException", 400),
        ErrorCode::AccessDenied => ("AccessDeniedException", 400),
        ErrorCode::InternalFailure => ("InternalFailureException", 500),
        ErrorCode::WriteQuorumUnavailable => ("WriteQuorumUnavailableException", 503),
        ErrorCode::NotLeader => ("ServiceUnavailableException", 503),
        ErrorCode::ConditionalCheckFailed => ("ConditionalCheckFailedException", 400),
        ErrorCode::ExpiredNextToken => ("ExpiredNextTokenException", 400),
        ErrorCode::DuplicateRecord => ("DuplicateRecordException", 400),
        ErrorCode::Unauthenticated => ("UnrecognizedClientException", 400),
        ErrorCode::KmsNotFound => ("KMSNotFoundException", 400),
    }
}

/// The `ErrorCode` of a failed PutRecords entry: Kinesis has exactly two.
pub fn put_entry_error_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
        _ => "InternalFailure",
    }
}

/// The wording Tributary (like AWS) gives a request member that breaks the API model's
/// constraints: `Value 'x' at 'member' failed to satisfy constraint: ...`.
const MODEL_CONSTRAINT: &str = "failed to satisfy constraint";

impl From<Error> for KinesisError {
    /// Model-constraint violations are INVALID_ARGUMENT on gRPC; Kinesis calls them
    /// ValidationException, so that is what this endpoint answers.
    fn from(error: Error) -> KinesisError {
        if error.code == ErrorCode::InvalidArgument && error.message.contains(MODEL_CONSTRAINT) {
            return KinesisError::validation(error.message);
        }
        let (name, status) = name_and_status(error.code);
        KinesisError::new(name, status, error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_name_that_ends_like_an_aws_exception() {
        for code in ErrorCode::ALL {
            let (name, status) = name_and_status(code);
            assert!(name.ends_with("Exception"), "{code}: {name}");
            assert!(matches!(status, 400 | 500 | 503), "{code}: {status}");
        }
    }

    #[test]
    fn model_constraint_violations_are_validation_exceptions() {
        let error = KinesisError::from(Error::invalid_argument(
            "Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
        assert_eq!(error.name, "ValidationException");
        assert_eq!(
            error.message,
            "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: \
             Member must have value greater than or equal to 1"
        );
        let semantic = KinesisError::from(Error::invalid_argument("Shard is already closed"));
        assert_eq!(semantic.name, "InvalidArgumentException");
    }

    #[test]
    fn put_entries_fail_only_with_the_two_kinesis_codes() {
        for code in ErrorCode::ALL {
            assert!(matches!(
                put_entry_error_code(code),
                "ProvisionedThroughputExceededException" | "InternalFailure"
            ));
        }
    }
}

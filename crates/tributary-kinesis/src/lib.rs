//! The Kinesis wire protocol, independent of any node: what a request and a response look like on
//! the wire (AWS JSON 1.1 and CBOR 1.1 bodies), Kinesis' error names and HTTP statuses, stream
//! and consumer ARNs, AWS Signature Version 4 verification and the `vnd.amazon.eventstream`
//! framing of SubscribeToShard, IAM-like policy documents, and the KPL's aggregated record
//! format, which producers and consumers (`tributary-client`) use. The node's HTTP endpoint (`tributary-server`'s `kinesis`
//! module) puts these together and calls the same domain API as gRPC.

pub mod aggregation;
pub mod arn;
pub mod document;
pub mod error;
pub mod eventstream;
pub mod policy;
pub mod sigv4;

pub use arn::Arns;
pub use document::Encoding;
pub use error::KinesisError;

/// Every request names its operation as `X-Amz-Target: Kinesis_20131202.<Operation>`.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

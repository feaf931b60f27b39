//! Stream and consumer ARNs. A node serves one region and one account (node settings), so an ARN
//! is a name with a prefix: `arn:aws:kinesis:<region>:<account>:stream/<name>`, and a consumer's
//! `<stream ARN>/consumer/<name>:<creation epoch seconds>`.

use crate::error::KinesisError;

/// The region a node reports when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account a node reports when none is configured (as LocalStack and kinesis-mock do).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// The region and account this node's ARNs name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arns {
    pub region: String,
    pub account_id: String,
}

impl Default for Arns {
    fn default() -> Self {
        Arns {
            region: DEFAULT_REGION.to_string(),
            account_id: DEFAULT_ACCOUNT_ID.to_string(),
        }
    }
}

/// A consumer ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    pub stream: String,
    pub consumer: String,
    pub created_at_secs: u64,
}

impl Arns {
    fn stream_prefix(&self) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/",
            self.region, self.account_id
        )
    }

    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.stream_prefix())
    }

    pub fn consumer(&self, stream: &str, consumer: &str, created_at_ms: u64) -> String {
        format!(
            "{}/consumer/{consumer}:{}",
            self.stream(stream),
            created_at_ms / 1000
        )
    }

    /// The stream an ARN names; `member` is the request member, for the error message.
    pub fn parse_stream(&self, member: &str, arn: &str) -> Result<String, KinesisError> {
        let rest = self.strip_prefix(member, arn)?;
        if rest.is_empty() || rest.contains('/') {
            return Err(not_an_arn(member, arn, "a stream ARN"));
        }
        Ok(rest.to_string())
    }

    pub fn parse_consumer(&self, member: &str, arn: &str) -> Result<ConsumerArn, KinesisError> {
        let rest = self.strip_prefix(member, arn)?;
        let parsed = rest.split_once("/consumer/").and_then(|(stream, tail)| {
            let (consumer, created) = tail.rsplit_once(':')?;
            Some(ConsumerArn {
                stream: stream.to_string(),
                consumer: consumer.to_string(),
                created_at_secs: created.parse().ok()?,
            })
        });
        match parsed {
            Some(arn) if !arn.stream.is_empty() && !arn.consumer.is_empty() => Ok(arn),
            _ => Err(not_an_arn(member, arn, "a consumer ARN")),
        }
    }

    /// The part after `stream/`, once the ARN is known to name this node's region and account.
    fn strip_prefix<'a>(&self, member: &str, arn: &'a str) -> Result<&'a str, KinesisError> {
        if let Some(rest) = arn.strip_prefix(&self.stream_prefix()) {
            return Ok(rest);
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "kinesis", region, account, _] => {
                Err(KinesisError::resource_not_found(format!(
                    "{arn} names region {region} and account {account}; this cluster serves region {} and account {}",
                    self.region, self.account_id
                )))
            }
            _ => Err(not_an_arn(member, arn, "a Kinesis ARN")),
        }
    }
}

fn not_an_arn(member: &str, arn: &str, what: &str) -> KinesisError {
    KinesisError::validation(format!(
        "Value '{arn}' at '{member}' failed to satisfy constraint: Member must be {what} \
         (arn:aws:kinesis:<region>:<account>:stream/<name>...)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let arns = Arns::default();
        let stream = arns.stream("orders");
        assert_eq!(
            stream,
            "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
        );
        assert_eq!(arns.parse_stream("streamARN", &stream).unwrap(), "orders");
        let consumer = arns.consumer("orders", "billing", 1_700_000_000_999);
        assert_eq!(
            consumer,
            "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/billing:1700000000"
        );
        assert_eq!(
            arns.parse_consumer("consumerARN", &consumer).unwrap(),
            ConsumerArn {
                stream: "orders".into(),
                consumer: "billing".into(),
                created_at_secs: 1_700_000_000,
            }
        );
    }

    #[test]
    fn foreign_and_malformed_arns_are_refused() {
        let arns = Arns::default();
        let foreign = arns
            .parse_stream(
                "streamARN",
                "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
            )
            .unwrap_err();
        assert_eq!(foreign.name, "ResourceNotFoundException");
        for bad in [
            "orders",
            "arn:aws:kinesis:us-east-1:000000000000:stream/",
            "",
        ] {
            assert_eq!(
                arns.parse_stream("streamARN", bad).unwrap_err().name,
                "ValidationException",
                "{bad}"
            );
        }
        let stream = arns.stream("orders");
        assert!(arns.parse_consumer("consumerARN", &stream).is_err());
        assert!(
            arns.parse_consumer("consumerARN", &format!("{stream}/consumer/x:notanumber"))
                .is_err()
        );
    }
}

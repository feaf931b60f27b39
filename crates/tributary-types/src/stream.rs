//! Stream-level settings and their Kinesis rules: capacity mode, tags, consumer names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};

/// How a stream's capacity is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamMode {
    /// The user picks the shard count and reshards by hand.
    Provisioned,
    /// Tributary splits hot shards and merges cold ones.
    OnDemand,
}

/// Shards an ON_DEMAND stream starts with (as moto and kinesis-mock create; 4 MiB/s of writes).
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

impl fmt::Display for StreamMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "PROVISIONED" => Ok(StreamMode::Provisioned),
            "ON_DEMAND" => Ok(StreamMode::OnDemand),
            other => Err(Error::invalid_argument(format!(
                "Value '{other}' at 'streamModeDetails.streamMode' failed to satisfy constraint: \
                 Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"
            ))),
        }
    }
}

/// How a stream's (or a record's) data is stored: Kinesis' `EncryptionType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncryptionType {
    #[default]
    None,
    /// Sealed with AES-256-GCM under a key of the nodes' key ring (Kinesis' server-side
    /// encryption with a KMS key).
    Kms,
}

impl EncryptionType {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionType::None => "NONE",
            EncryptionType::Kms => "KMS",
        }
    }
}

impl fmt::Display for EncryptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EncryptionType {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "NONE" => Ok(EncryptionType::None),
            "KMS" => Ok(EncryptionType::Kms),
            other => Err(Error::invalid_argument(format!(
                "Value '{other}' at 'encryptionType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [NONE, KMS]"
            ))),
        }
    }
}

/// Tags per AddTagsToStream call.
pub const MAX_TAGS_PER_CALL: usize = 10;
/// Tags a stream may carry.
pub const MAX_TAGS_PER_STREAM: usize = 50;
pub const MAX_TAG_KEY_CHARS: usize = 128;
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// Registered enhanced fan-out consumers per stream.
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;

/// Checks one tag against Kinesis' rules: key 1..128 characters, value 0..256, and neither
/// beginning with the reserved `aws:` prefix.
pub fn validate_tag(key: &str, value: &str) -> Result<(), Error> {
    let key_chars = key.chars().count();
    if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
        return Err(Error::invalid_argument(format!(
            "Tag key '{key}' must have 1 to {MAX_TAG_KEY_CHARS} characters (got {key_chars})"
        )));
    }
    if key.starts_with("aws:") {
        return Err(Error::invalid_argument(format!(
            "Tag key '{key}' uses the reserved prefix 'aws:'"
        )));
    }
    let value_chars = value.chars().count();
    if value_chars > MAX_TAG_VALUE_CHARS {
        return Err(Error::invalid_argument(format!(
            "The value of tag '{key}' must have at most {MAX_TAG_VALUE_CHARS} characters (got {value_chars})"
        )));
    }
    Ok(())
}

/// The tag-count rules of AddTagsToStream: 1..10 per call, 50 per stream after the call.
pub fn validate_tag_counts(in_call: usize, on_stream_after: usize) -> Result<(), Error> {
    if in_call == 0 || in_call > MAX_TAGS_PER_CALL {
        return Err(Error::invalid_argument(format!(
            "A call adds 1 to {MAX_TAGS_PER_CALL} tags; got {in_call}"
        )));
    }
    if on_stream_after > MAX_TAGS_PER_STREAM {
        return Err(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "A stream carries at most {MAX_TAGS_PER_STREAM} tags; this call would make {on_stream_after}"
            ),
        ));
    }
    Ok(())
}

/// A validated consumer name: 1..=128 characters of `[a-zA-Z0-9_.-]`, as in Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConsumerName(String);

impl ConsumerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConsumerName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        crate::ids::check_name(name, "consumerName")?;
        Ok(ConsumerName(name.to_string()))
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_their_wire_names_only() {
        assert_eq!(
            "ON_DEMAND".parse::<StreamMode>().unwrap(),
            StreamMode::OnDemand
        );
        assert_eq!(StreamMode::Provisioned.to_string(), "PROVISIONED");
        assert!("on-demand".parse::<StreamMode>().is_err());
    }

    #[test]
    fn tag_rules_follow_kinesis() {
        assert!(validate_tag("team", "").is_ok());
        assert!(validate_tag("", "x").is_err());
        assert!(validate_tag(&"k".repeat(129), "x").is_err());
        assert!(validate_tag("k", &"v".repeat(257)).is_err());
        assert!(validate_tag("aws:owner", "x").is_err());
        assert!(validate_tag_counts(10, 50).is_ok());
        assert_eq!(
            validate_tag_counts(11, 11).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            validate_tag_counts(1, 51).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
    }

    #[test]
    fn consumer_names_follow_kinesis_rules() {
        assert!("app-1.v2_x".parse::<ConsumerName>().is_ok());
        assert!("".parse::<ConsumerName>().is_err());
        assert!("a/b".parse::<ConsumerName>().is_err());
    }
}

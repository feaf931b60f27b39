//! Typed identifiers: stream names, shard ids, node ids and Raft group ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A node of the cluster; chosen by the operator (`--id`), never reused after a wipe.
pub type NodeId = u64;

/// A Raft group. Group 0 is the metadata group; shard groups get ids from the metadata group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

pub const METADATA_GROUP: GroupId = GroupId(0);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Kinesis' rule for stream and consumer names: 1..=128 characters of `[a-zA-Z0-9_.-]`.
pub(crate) fn check_name(name: &str, field: &str) -> Result<(), Error> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > 128 || !valid_chars {
        return Err(Error::invalid_argument(format!(
            "Value '{name}' at '{field}' failed to satisfy constraint: Member must have length \
             between 1 and 128 and match pattern [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

/// A validated stream name: 1..=128 characters of `[a-zA-Z0-9_.-]`, as in Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamName(String);

impl StreamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StreamName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        check_name(name, "streamName")?;
        Ok(StreamName(name.to_string()))
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shard's index within its stream; displayed the Kinesis way, `shardId-000000000007`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

impl ShardId {
    const PREFIX: &'static str = "shardId-";
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:012}", ShardId::PREFIX, self.0)
    }
}

impl FromStr for ShardId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::invalid_argument(format!(
                "Invalid ShardId '{text}': expected shardId-NNNNNNNNNNNN"
            ))
        };
        let digits = text.strip_prefix(ShardId::PREFIX).unwrap_or(text);
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<u32>().map(ShardId).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_display_and_parse_as_kinesis_does() {
        assert_eq!(ShardId(7).to_string(), "shardId-000000000007");
        assert_eq!(
            "shardId-000000000007".parse::<ShardId>().unwrap(),
            ShardId(7)
        );
        assert_eq!("7".parse::<ShardId>().unwrap(), ShardId(7));
        assert!("shardId-x".parse::<ShardId>().is_err());
        assert!("shardId-".parse::<ShardId>().is_err());
    }

    #[test]
    fn stream_names_follow_kinesis_rules() {
        assert!("orders.v1_a-b".parse::<StreamName>().is_ok());
        assert!("".parse::<StreamName>().is_err());
        assert!("has space".parse::<StreamName>().is_err());
        assert!("x".repeat(129).parse::<StreamName>().is_err());
    }
}

//! Shard iterators: opaque, self-describing tokens (stream, shard, position, issue time, checksum)
//! that any replica can serve.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, ErrorCode};
use crate::ids::{ShardId, StreamName};
use crate::sequence::SequenceNumber;
use crate::token::{CHECKSUM_LEN, checksum};

/// How long an iterator stays valid after it is issued, as in Kinesis.
pub const ITERATOR_TTL_MS: u64 = 5 * 60 * 1000;

/// Where a reader starts, as the client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardIteratorType {
    TrimHorizon,
    Latest,
    AtSequenceNumber(SequenceNumber),
    AfterSequenceNumber(SequenceNumber),
    /// The first record that arrived at or after this time (epoch ms).
    AtTimestamp(u64),
}

/// A resolved read position: the next record returned is the first with a number ≥ `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IteratorPosition {
    pub from_inclusive: SequenceNumber,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIterator {
    pub stream: StreamName,
    pub shard: ShardId,
    pub position: IteratorPosition,
    pub issued_at_ms: u64,
}

const TOKEN_VERSION: u8 = 1;

impl ShardIterator {
    pub fn encode(&self) -> String {
        let stream = self.stream.as_str().as_bytes();
        let mut bytes = Vec::with_capacity(1 + 1 + stream.len() + 4 + 16 + 8 + CHECKSUM_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.push(stream.len() as u8);
        bytes.extend_from_slice(stream);
        bytes.extend_from_slice(&self.shard.0.to_be_bytes());
        bytes.extend_from_slice(&self.position.from_inclusive.0.to_be_bytes());
        bytes.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        let checksum = checksum(&bytes);
        bytes.extend_from_slice(&checksum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token and checks that it has not expired at `now_ms`.
    pub fn decode(token: &str, now_ms: u64) -> Result<ShardIterator, Error> {
        let invalid = || {
            Error::invalid_argument("Invalid ShardIterator: the token is malformed or was altered")
        };
        if token.is_empty() || token.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() < 2 + CHECKSUM_LEN || bytes[0] != TOKEN_VERSION {
            return Err(invalid());
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(invalid());
        }
        let stream_len = usize::from(body[1]);
        if body.len() != 2 + stream_len + 4 + 16 + 8 {
            return Err(invalid());
        }
        let stream_text = std::str::from_utf8(&body[2..2 + stream_len]).map_err(|_| invalid())?;
        let rest = &body[2 + stream_len..];
        let shard = ShardId(u32::from_be_bytes(
            rest[0..4].try_into().map_err(|_| invalid())?,
        ));
        let from = u128::from_be_bytes(rest[4..20].try_into().map_err(|_| invalid())?);
        let issued_at_ms = u64::from_be_bytes(rest[20..28].try_into().map_err(|_| invalid())?);
        if now_ms.saturating_sub(issued_at_ms) > ITERATOR_TTL_MS {
            return Err(Error::new(
                ErrorCode::ExpiredIterator,
                format!(
                    "Iterator expired. The iterator was created at time {issued_at_ms} ms while right now it is {now_ms} ms."
                ),
            ));
        }
        Ok(ShardIterator {
            stream: stream_text.parse()?,
            shard,
            position: IteratorPosition {
                from_inclusive: SequenceNumber(from),
            },
            issued_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShardIterator {
        ShardIterator {
            stream: "orders".parse().unwrap(),
            shard: ShardId(2),
            position: IteratorPosition {
                from_inclusive: SequenceNumber::new(ShardId(2), 9, 1),
            },
            issued_at_ms: 1_000,
        }
    }

    #[test]
    fn tokens_round_trip() {
        let token = sample().encode();
        assert_eq!(ShardIterator::decode(&token, 2_000).unwrap(), sample());
    }

    #[test]
    fn altered_and_expired_tokens_are_refused() {
        let token = sample().encode();
        let mut altered = token.clone().into_bytes();
        altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            ShardIterator::decode(&altered, 2_000).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            ShardIterator::decode("garbage!", 2_000).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let expired = ShardIterator::decode(&token, 1_000 + ITERATOR_TTL_MS + 1).unwrap_err();
        assert_eq!(expired.code, ErrorCode::ExpiredIterator);
    }
}

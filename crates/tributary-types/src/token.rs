//! NextToken for paginated listings (ListShards, ListStreams): opaque, self-describing, checked and
//! valid for 5 minutes, as in Kinesis. A token names what it lists (`scope`, e.g. a stream) and
//! the last item returned (`after`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};

use crate::error::{Error, ErrorCode};

/// How long a NextToken stays valid after it is issued.
pub const NEXT_TOKEN_TTL_MS: u64 = 5 * 60 * 1000;

const TOKEN_VERSION: u8 = 1;
/// Opaque tokens (iterators, NextTokens) end with this many bytes of their body's MD5.
pub(crate) const CHECKSUM_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextToken {
    pub scope: String,
    pub after: String,
    pub issued_at_ms: u64,
}

impl NextToken {
    pub fn encode(&self) -> String {
        let mut bytes = vec![TOKEN_VERSION];
        for part in [&self.scope, &self.after] {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&part.as_bytes()[..usize::from(len)]);
        }
        bytes.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token and checks that it has not expired at `now_ms`.
    pub fn decode(token: &str, now_ms: u64) -> Result<NextToken, Error> {
        let invalid = || Error::invalid_argument("Invalid NextToken: malformed or altered");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() < 1 + 2 + 2 + 8 + CHECKSUM_LEN || bytes[0] != TOKEN_VERSION {
            return Err(invalid());
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(invalid());
        }
        let mut rest = &body[1..];
        let mut parts = Vec::with_capacity(2);
        for _ in 0..2 {
            if rest.len() < 2 {
                return Err(invalid());
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let part = rest.get(2..2 + len).ok_or_else(invalid)?;
            parts.push(String::from_utf8(part.to_vec()).map_err(|_| invalid())?);
            rest = &rest[2 + len..];
        }
        let issued_at_ms = u64::from_be_bytes(rest.try_into().map_err(|_| invalid())?);
        if now_ms.saturating_sub(issued_at_ms) > NEXT_TOKEN_TTL_MS {
            return Err(Error::new(
                ErrorCode::ExpiredNextToken,
                format!(
                    "The NextToken expired: it was issued at {issued_at_ms} ms and lives 300000 ms"
                ),
            ));
        }
        let after = parts.pop().ok_or_else(invalid)?;
        let scope = parts.pop().ok_or_else(invalid)?;
        Ok(NextToken {
            scope,
            after,
            issued_at_ms,
        })
    }
}

pub(crate) fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest: [u8; 16] = Md5::digest(bytes).into();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire() {
        let token = NextToken {
            scope: "orders".into(),
            after: "shardId-000000000003".into(),
            issued_at_ms: 1_000,
        };
        let text = token.encode();
        assert_eq!(NextToken::decode(&text, 2_000).unwrap(), token);
        assert_eq!(
            NextToken::decode(&text, 1_000 + NEXT_TOKEN_TTL_MS + 1)
                .unwrap_err()
                .code,
            ErrorCode::ExpiredNextToken
        );
        assert_eq!(
            NextToken::decode("bm9wZQ", 2_000).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}

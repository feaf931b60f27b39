//! Timestamps on the command line: epoch milliseconds or RFC 3339.

use anyhow::Context;

/// Parses `1700000000000` (epoch ms) or `2026-11-22T10:00:00Z` / `...+01:00` (RFC 3339).
pub fn parse_timestamp_ms(text: &str) -> anyhow::Result<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .with_context(|| format!("timestamp '{text}' is out of range"));
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("timestamp '{text}' is neither epoch milliseconds nor RFC 3339")
    })?;
    u64::try_from(parsed.timestamp_millis())
        .with_context(|| format!("timestamp '{text}' is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ms_and_rfc3339_agree() {
        assert_eq!(
            parse_timestamp_ms("1700000000123").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T22:13:20.123Z").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T23:13:20.123+01:00").unwrap(),
            1_700_000_000_123
        );
        assert!(parse_timestamp_ms("yesterday").is_err());
        assert!(parse_timestamp_ms("1960-01-01T00:00:00Z").is_err());
    }
}

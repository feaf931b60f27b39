//! `application/vnd.amazon.eventstream` framing, as SubscribeToShard sends it. Each message is
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 | headers | payload | message CRC32
//! ```
//!
//! (big-endian; CRC32 is the IEEE polynomial). A header is `name length u8 | name | type u8 |
//! value`; Kinesis' headers are all strings (type 7, `length u16 | bytes`).

/// The header value type "string".
const STRING_TYPE: u8 = 7;
/// Total length, headers length and the prelude CRC.
const PRELUDE_BYTES: usize = 12;
/// The trailing message CRC.
const TRAILER_BYTES: usize = 4;

/// One message with string headers.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        debug_assert!(name.len() <= usize::from(u8::MAX) && value.len() <= usize::from(u16::MAX));
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(STRING_TYPE);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE_BYTES + encoded_headers.len() + payload.len() + TRAILER_BYTES;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_be_bytes());
    message.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&message);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    message.extend_from_slice(&encoded_headers);
    message.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&message);
    message.extend_from_slice(&message_crc.to_be_bytes());
    message
}

/// An event (`SubscribeToShardEvent`, or `initial-response` first) with a document payload.
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

/// An exception that ends the stream, e.g. `ResourceInUseException` when a newer subscription
/// takes over; the payload is the error document.
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;
    use aws_smithy_types::event_stream::HeaderValue;

    fn header(message: &aws_smithy_types::event_stream::Message, name: &str) -> String {
        let header = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .unwrap_or_else(|| panic!("no header {name}"));
        match header.value() {
            HeaderValue::String(value) => value.as_str().to_string(),
            other => panic!("{name} is not a string: {other:?}"),
        }
    }

    #[test]
    fn the_aws_decoder_reads_our_events_and_checks_their_crcs() {
        let payload = br#"{"Records":[],"ContinuationSequenceNumber":"1","MillisBehindLatest":0}"#;
        let mut stream = Vec::new();
        stream.extend(event("initial-response", "application/json", b"{}"));
        stream.extend(event("SubscribeToShardEvent", "application/json", payload));
        stream.extend(exception(
            "ResourceInUseException",
            "application/json",
            br#"{"message":"taken over"}"#,
        ));
        let mut buffer = bytes::Bytes::from(stream);
        let first = read_message_from(&mut buffer).unwrap();
        assert_eq!(header(&first, ":event-type"), "initial-response");
        assert_eq!(first.payload().as_ref(), b"{}");
        let second = read_message_from(&mut buffer).unwrap();
        assert_eq!(header(&second, ":message-type"), "event");
        assert_eq!(header(&second, ":event-type"), "SubscribeToShardEvent");
        assert_eq!(header(&second, ":content-type"), "application/json");
        assert_eq!(second.payload().as_ref(), payload);
        let third = read_message_from(&mut buffer).unwrap();
        assert_eq!(header(&third, ":message-type"), "exception");
        assert_eq!(header(&third, ":exception-type"), "ResourceInUseException");
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_flipped_bit_fails_the_aws_decoders_crc_check() {
        let mut message = event("SubscribeToShardEvent", "application/json", b"{}");
        let last_payload_byte = message.len() - TRAILER_BYTES - 1;
        message[last_payload_byte] ^= 1;
        let mut buffer = bytes::Bytes::from(message);
        assert!(read_message_from(&mut buffer).is_err());
    }
}

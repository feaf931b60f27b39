//! Request and response bodies. Handlers work on one canonical form, the AWS JSON 1.1 document
//! (a [`serde_json::Value`]); CBOR 1.1 bodies, which the Java SDK and the KCL send by default,
//! are translated to and from it. The two differ in exactly two ways, both decided by the member
//! name because Kinesis' model uses each name with one type only:
//! - blobs (`Data`) are base64 strings in JSON and byte strings in CBOR;
//! - timestamps are epoch seconds (a number with a fraction) in JSON and epoch milliseconds in
//!   CBOR, optionally under tag 1, as the Java SDK writes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use crate::error::KinesisError;

/// The only blob member of the Kinesis model.
const BLOB_MEMBERS: [&str; 1] = ["Data"];
/// Every timestamp member of the Kinesis model.
const TIMESTAMP_MEMBERS: [&str; 6] = [
    "Timestamp",
    "ApproximateArrivalTimestamp",
    "StreamCreationTimestamp",
    "ConsumerCreationTimestamp",
    "EncryptionTimestamp",
    "LastUpdateTimestamp",
];
/// CBOR's tag for an epoch date-time.
const EPOCH_TAG: u64 = 1;
/// How deeply a CBOR body may nest (Kinesis' shapes nest four levels).
const MAX_DEPTH: usize = 32;

/// How a request body is encoded; the response uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-amz-json-1.1` (also what `application/json` and a missing type mean).
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

impl Encoding {
    pub fn from_content_type(content_type_opt: Option<&str>) -> Encoding {
        match content_type_opt {
            Some(value) if value.trim().starts_with("application/x-amz-cbor-1.1") => Encoding::Cbor,
            _ => Encoding::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/x-amz-json-1.1",
            Encoding::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// Decodes a request body into its JSON form. An empty body is the empty document.
    pub fn decode(self, body: &[u8]) -> Result<Value, KinesisError> {
        if body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        let value = match self {
            Encoding::Json => serde_json::from_slice(body)
                .map_err(|e| KinesisError::serialization(format!("Malformed JSON body: {e}")))?,
            Encoding::Cbor => {
                let cbor: Cbor = ciborium::de::from_reader(body).map_err(|e| {
                    KinesisError::serialization(format!("Malformed CBOR body: {e}"))
                })?;
                cbor_to_json(cbor, None, 0)?
            }
        };
        if !value.is_object() {
            return Err(KinesisError::serialization(
                "The request body must be a JSON object",
            ));
        }
        Ok(value)
    }

    /// Encodes a response document.
    pub fn encode(self, value: &Value) -> Vec<u8> {
        match self {
            Encoding::Json => serde_json::to_vec(value).expect("a JSON value serializes"),
            Encoding::Cbor => {
                let mut out = Vec::new();
                ciborium::ser::into_writer(&json_to_cbor(value, None), &mut out)
                    .expect("writing CBOR to a Vec cannot fail");
                out
            }
        }
    }
}

fn is_blob(member_opt: Option<&str>) -> bool {
    member_opt.is_some_and(|m| BLOB_MEMBERS.contains(&m))
}

fn is_timestamp(member_opt: Option<&str>) -> bool {
    member_opt.is_some_and(|m| TIMESTAMP_MEMBERS.contains(&m))
}

/// Epoch milliseconds (CBOR) to epoch seconds (JSON).
fn millis_to_seconds(millis: f64) -> Result<Value, KinesisError> {
    Number::from_f64(millis / 1000.0)
        .map(Value::Number)
        .ok_or_else(|| KinesisError::serialization("A timestamp is not a finite number"))
}

fn cbor_to_json(
    value: Cbor,
    member_opt: Option<&str>,
    depth: usize,
) -> Result<Value, KinesisError> {
    if depth > MAX_DEPTH {
        return Err(KinesisError::serialization(format!(
            "The CBOR body nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if is_timestamp(member_opt) {
                millis_to_seconds(i as f64)?
            } else if let Ok(n) = i64::try_from(i) {
                Value::from(n)
            } else if let Ok(n) = u64::try_from(i) {
                Value::from(n)
            } else {
                return Err(KinesisError::serialization(format!(
                    "The integer {i} is out of range"
                )));
            }
        }
        Cbor::Float(f) if is_timestamp(member_opt) => millis_to_seconds(f)?,
        Cbor::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| KinesisError::serialization("A number is not finite"))?,
        Cbor::Bytes(bytes) => Value::String(BASE64.encode(bytes)),
        Cbor::Text(text) => Value::String(text),
        Cbor::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| cbor_to_json(item, None, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (key, item) in entries {
                let Cbor::Text(key) = key else {
                    return Err(KinesisError::serialization("CBOR map keys must be text"));
                };
                let item = cbor_to_json(item, Some(&key), depth + 1)?;
                map.insert(key, item);
            }
            Value::Object(map)
        }
        // The Java SDK writes timestamps as tag 1 around epoch milliseconds.
        Cbor::Tag(EPOCH_TAG, inner) => cbor_to_json(*inner, member_opt, depth + 1)?,
        Cbor::Tag(tag, _) => {
            return Err(KinesisError::serialization(format!(
                "Unexpected CBOR tag {tag}"
            )));
        }
        _ => return Err(KinesisError::serialization("Unsupported CBOR value")),
    })
}

fn json_to_cbor(value: &Value, member_opt: Option<&str>) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) if is_timestamp(member_opt) => {
            let millis = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Integer(millis.into())
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(text) if is_blob(member_opt) => match BASE64.decode(text) {
            Ok(bytes) => Cbor::Bytes(bytes),
            Err(_) => Cbor::Text(text.clone()),
        },
        Value::String(text) => Cbor::Text(text.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(|i| json_to_cbor(i, None)).collect()),
        Value::Object(map) => Cbor::Map(
            map.iter()
                .map(|(key, item)| (Cbor::Text(key.clone()), json_to_cbor(item, Some(key))))
                .collect(),
        ),
    }
}

/// A blob member's bytes: a JSON document carries them in base64.
pub fn decode_blob(member: &str, text: &str) -> Result<Vec<u8>, KinesisError> {
    BASE64
        .decode(text)
        .map_err(|_| KinesisError::serialization(format!("'{member}' is not valid base64 data")))
}

pub fn encode_blob(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// A JSON timestamp (epoch seconds, fractions allowed) in milliseconds.
pub fn timestamp_millis(member: &str, seconds: f64) -> Result<u64, KinesisError> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(KinesisError::validation(format!(
            "Value '{seconds}' at '{member}' failed to satisfy constraint: Member must be a timestamp after 1970-01-01"
        )));
    }
    Ok((seconds * 1000.0).round() as u64)
}

/// Milliseconds as a JSON timestamp.
pub fn timestamp_seconds(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cbor_bytes(value: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn a_java_sdk_put_in_cbor_reads_as_the_json_document() {
        // As the Java SDK writes it: Data as a byte string, a timestamp as tag 1 over millis.
        let request = Cbor::Map(vec![
            (Cbor::Text("StreamName".into()), Cbor::Text("orders".into())),
            (Cbor::Text("Data".into()), Cbor::Bytes(vec![0, 1, 2, 255])),
            (Cbor::Text("PartitionKey".into()), Cbor::Text("k".into())),
            (
                Cbor::Text("Timestamp".into()),
                Cbor::Tag(EPOCH_TAG, Box::new(Cbor::Integer(1459799926480_i64.into()))),
            ),
        ]);
        let document = Encoding::Cbor.decode(&cbor_bytes(&request)).unwrap();
        assert_eq!(
            document,
            json!({
                "StreamName": "orders",
                "Data": "AAEC/w==",
                "PartitionKey": "k",
                "Timestamp": 1459799926.48,
            })
        );
    }

    #[test]
    fn a_response_in_cbor_carries_bytes_and_milliseconds() {
        let response = json!({
            "Records": [{
                "Data": "aGVsbG8=",
                "ApproximateArrivalTimestamp": 1572297168.123,
                "SequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            }],
            "MillisBehindLatest": 0,
        });
        let bytes = Encoding::Cbor.encode(&response);
        let cbor: Cbor = ciborium::de::from_reader(bytes.as_slice()).unwrap();
        let Cbor::Map(top) = cbor else {
            panic!("not a map")
        };
        let records = &top
            .iter()
            .find(|(k, _)| k == &Cbor::Text("Records".into()))
            .unwrap()
            .1;
        let Cbor::Array(records) = records else {
            panic!("not an array")
        };
        let Cbor::Map(record) = &records[0] else {
            panic!("not a map")
        };
        let field = |name: &str| {
            record
                .iter()
                .find(|(k, _)| k == &Cbor::Text(name.into()))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(field("Data"), Cbor::Bytes(b"hello".to_vec()));
        assert_eq!(
            field("ApproximateArrivalTimestamp"),
            Cbor::Integer(1572297168123_i64.into())
        );
        // And it reads back as the same document.
        assert_eq!(Encoding::Cbor.decode(&bytes).unwrap(), response);
    }

    #[test]
    fn malformed_bodies_are_serialization_errors() {
        for (encoding, body) in [
            (Encoding::Json, &b"{\"StreamName\": "[..]),
            (Encoding::Json, &b"[1, 2]"[..]),
            (Encoding::Cbor, &[0xff, 0x00][..]),
            (Encoding::Cbor, &[0x82, 0x01][..]),
        ] {
            let error = encoding.decode(body).unwrap_err();
            assert_eq!(error.name, "SerializationException", "{body:?}");
        }
        let non_text_key = cbor_bytes(&Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Null)]));
        assert_eq!(
            Encoding::Cbor.decode(&non_text_key).unwrap_err().name,
            "SerializationException"
        );
    }

    #[test]
    fn deep_cbor_nesting_is_refused_without_overflowing_the_stack() {
        // 10,000 nested one-element arrays around a null.
        let mut body: Vec<u8> = std::iter::repeat_n(0x81u8, 10_000).collect();
        body.push(0xf6);
        assert_eq!(
            Encoding::Cbor.decode(&body).unwrap_err().name,
            "SerializationException"
        );
    }

    #[test]
    fn content_types_choose_the_encoding() {
        assert_eq!(
            Encoding::from_content_type(Some("application/x-amz-cbor-1.1")),
            Encoding::Cbor
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/x-amz-json-1.1")),
            Encoding::Json
        );
        assert_eq!(Encoding::from_content_type(None), Encoding::Json);
    }
}

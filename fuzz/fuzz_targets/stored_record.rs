//! A shard's stored record values come back from disk and from snapshots a leader sends: decoding
//! any bytes never panics, a value that decodes re-encodes to one that decodes to the same value,
//! and the arrival time read alone agrees with the whole decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_types::stored::{StoredValue, arrival_ms_of};

fuzz_target!(|input: &[u8]| {
    let Ok(value) = StoredValue::decode(input) else {
        return;
    };
    assert_eq!(arrival_ms_of(input).ok(), Some(value.arrival_ms()));
    let encoded = value.encode().expect("a decoded value encodes");
    assert_eq!(StoredValue::decode(&encoded).ok(), Some(value));
});

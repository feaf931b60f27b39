//! KPL aggregated records come back to consumers as whatever bytes a stream holds: parsing never
//! panics, and what parses re-aggregates into a record that parses to the same user records.
//! The input is tried as it is and as the protobuf body of a correctly framed record (magic and
//! MD5 added), so the fuzzer explores the protobuf decoding past the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use tributary_kinesis::aggregation::{Aggregator, MAGIC, parse};

fn check(data: &[u8]) {
    let Some(records) = parse(data) else {
        return;
    };
    let mut aggregator = Aggregator::new();
    for (partition_key, explicit_hash_key_opt, data) in &records {
        let predicted =
            aggregator.size_with(partition_key, explicit_hash_key_opt.as_deref(), data.len());
        aggregator.push(partition_key, explicit_hash_key_opt.as_deref(), data.clone());
        assert_eq!(aggregator.size(), predicted);
    }
    let encoded = aggregator.encode();
    assert_eq!(encoded.len(), aggregator.size());
    assert_eq!(parse(&encoded).as_ref(), Some(&records));
}

fuzz_target!(|input: &[u8]| {
    check(input);
    let framed = [&MAGIC[..], input, Md5::digest(input).as_slice()].concat();
    check(&framed);
});

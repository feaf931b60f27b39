//! gRPC requests as a node receives them: the first byte picks a message, the rest is decoded as
//! its protobuf, and the request goes through the checks the node makes before acting on it
//! (names, partition keys and sizes, hash keys, sequence numbers, lease-table items, conditions
//! and updates). Nothing panics, and table values that convert convert back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tributary_proto::table::{
    condition_from_proto, condition_to_proto, item_from_proto, item_to_proto, update_from_proto,
    update_to_proto,
};
use tributary_proto::v1;
use tributary_types::{
    ConsumerName, EncryptionType, PutRecordEntry, SequenceNumber, ShardId, StreamMode, StreamName,
    validate_put_entry, validate_tag,
};

fn check_condition(condition: v1::Condition) {
    if let Ok(condition) = condition_from_proto(condition) {
        if condition.validate().is_ok() {
            let again = condition_from_proto(condition_to_proto(&condition))
                .expect("a condition we converted converts back");
            assert_eq!(again, condition);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&kind, body)) = input.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            let Ok(request) = v1::PutRecordsRequest::decode(body) else {
                return;
            };
            let _ = request.stream_name.parse::<StreamName>();
            for entry in request.records {
                let _ = validate_put_entry(&PutRecordEntry {
                    partition_key: entry.partition_key,
                    data: entry.data,
                    explicit_hash_key: entry.explicit_hash_key,
                });
            }
        }
        1 => {
            let Ok(request) = v1::GetShardIteratorRequest::decode(body) else {
                return;
            };
            let _ = request.stream_name.parse::<StreamName>();
            if let Ok(shard) = request.shard_id.parse::<ShardId>()
                && let Some(text) = request.starting_sequence_number.as_deref()
            {
                let _ = SequenceNumber::parse_for_shard(text, shard);
            }
        }
        2 => {
            let Ok(request) = v1::PutItemRequest::decode(body) else {
                return;
            };
            if let Some(map) = request.item
                && let Ok(item) = item_from_proto(map)
                && item.values().all(|value| value.validate().is_ok())
            {
                let again = item_from_proto(item_to_proto(&item)).expect("converts back");
                assert_eq!(again, item);
            }
            if let Some(condition) = request.condition {
                check_condition(condition);
            }
        }
        3 => {
            let Ok(request) = v1::UpdateItemRequest::decode(body) else {
                return;
            };
            for update in request.updates {
                if let Ok(update) = update_from_proto(update) {
                    let again = update_from_proto(update_to_proto(&update)).expect("converts back");
                    assert_eq!(again, update);
                }
            }
            if let Some(condition) = request.condition {
                check_condition(condition);
            }
        }
        4 => {
            let Ok(request) = v1::AddTagsToStreamRequest::decode(body) else {
                return;
            };
            for (key, value) in &request.tags {
                let _ = validate_tag(key, value);
            }
        }
        _ => {
            let Ok(request) = v1::StreamEncryptionRequest::decode(body) else {
                return;
            };
            let _ = request.encryption_type.parse::<EncryptionType>();
            let _ = request.encryption_type.parse::<StreamMode>();
            let _ = request.key_id.parse::<ConsumerName>();
        }
    }
});

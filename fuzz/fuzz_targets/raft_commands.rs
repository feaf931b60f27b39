//! Raft entries come back from the log on disk, and commands arrive from the node-to-node API
//! (forwarded writes): decoding any bytes as a shard or metadata command never panics, and a
//! command that decodes re-encodes to bytes that decode to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_raft::codec;
use tributary_raft::meta::MetaCommand;
use tributary_raft::shard::ShardCommand;

fuzz_target!(|input: &[u8]| {
    if let Ok(command) = codec::decode::<ShardCommand>(input) {
        let encoded = codec::encode(&command).expect("a decoded command encodes");
        let again: ShardCommand = codec::decode(&encoded).expect("what we encoded decodes");
        assert_eq!(codec::encode(&again).unwrap(), encoded);
        let _ = command.record_sizes().sum::<usize>();
    }
    if let Ok(command) = codec::decode::<MetaCommand>(input) {
        let encoded = codec::encode(&command).expect("a decoded command encodes");
        let again: MetaCommand = codec::decode(&encoded).expect("what we encoded decodes");
        assert_eq!(codec::encode(&again).unwrap(), encoded);
        let _ = command.to_string();
    }
});

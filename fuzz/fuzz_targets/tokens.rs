//! Shard iterators and NextTokens come back from clients as opaque strings: decoding one never
//! panics, and one that decodes encodes to a token that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_types::{NextToken, ShardIterator};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let now_ms = 1_796_200_000_000;
    if let Ok(iterator) = ShardIterator::decode(text, now_ms) {
        let again = ShardIterator::decode(&iterator.encode(), now_ms)
            .expect("an iterator we encoded decodes");
        assert_eq!(again.encode(), iterator.encode());
    }
    if let Ok(token) = NextToken::decode(text, now_ms) {
        let again = NextToken::decode(&token.encode(), now_ms).expect("a token we encoded decodes");
        assert_eq!(again.encode(), token.encode());
    }
});

//! A Kinesis request body as JSON 1.1: decoding never panics, and whatever decodes encodes in
//! both encodings and decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_kinesis::Encoding;

fuzz_target!(|body: &[u8]| {
    if let Ok(document) = Encoding::Json.decode(body) {
        let json = Encoding::Json.encode(&document);
        Encoding::Json
            .decode(&json)
            .expect("a document we encoded as JSON decodes");
        let cbor = Encoding::Cbor.encode(&document);
        Encoding::Cbor
            .decode(&cbor)
            .expect("a document we encoded as CBOR decodes");
    }
});

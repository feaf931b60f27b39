//! Compiles proto/ with protox (pure Rust), so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        proto_root.join("tributary/v1/stream.proto"),
        proto_root.join("tributary/v1/internal.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&proto_root])?;
    tonic_prost_build::configure()
        // Payloads stay `bytes::Bytes` from the decoder to storage and back.
        .bytes(".tributary.v1.PutRecordsRequestEntry.data")
        .bytes(".tributary.v1.PutRecordRequest.data")
        .bytes(".tributary.v1.Record.data")
        .bytes(".tributary.internal.v1")
        .compile_fds(descriptors)?;
    Ok(())
}

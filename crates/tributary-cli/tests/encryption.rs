//! Encryption at rest on a cluster of real node processes: a stream encrypted with a key of the
//! nodes' key ring keeps no trace of its records in any file the nodes write, while every read
//! path (gRPC, the CLI, the Kinesis endpoint through the AWS SDK) returns them, across a key
//! rotation and after StopStreamEncryption.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{EncryptionType, ShardIteratorType};
use common::*;
use tributary_client::{Client, v1};
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const ACCESS_KEY_ID: &str = "AKIDTRIBUTARYSSE";
const SECRET: &str = "tributary/sse+secret";

/// Every record of a one-shard stream through gRPC: (partition key, data, encryption type).
async fn read_shard(client: &Client, stream: &str) -> Vec<(String, String, String)> {
    let mut iterator = client
        .get_shard_iterator(stream, "shardId-000000000000", "TRIM_HORIZON", None)
        .await
        .expect("GetShardIterator");
    let mut out = Vec::new();
    loop {
        let page = client
            .get_records(&iterator, None)
            .await
            .expect("GetRecords");
        let done = page.records.is_empty();
        out.extend(page.records.into_iter().map(|r| {
            (
                r.partition_key,
                String::from_utf8(r.data.to_vec()).expect("text"),
                r.encryption_type,
            )
        }));
        match page.next_shard_iterator {
            Some(next) if !done => iterator = next,
            _ => return out,
        }
    }
}

fn entries(prefix: &str, range: std::ops::Range<usize>) -> Vec<v1::PutRecordsRequestEntry> {
    range
        .map(|i| v1::PutRecordsRequestEntry {
            partition_key: format!("{prefix}-key-{i}"),
            data: format!("{prefix}-data-{i}").into_bytes().into(),
            ..Default::default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_stream_leaves_no_plaintext_on_disk_while_reads_return_it() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = keys_dir.path().join("keys.toml");
    let created = std::process::Command::new(BINARY)
        .args(["keys", "create", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions {
            kinesis: true,
            node_args: vec![
                // Every node reads the shard back: more than 5 GetRecords/s.
                "--shard-limits=off".to_string(),
                format!("--key-ring={}", keys.display()),
                format!("--kinesis-access-key={ACCESS_KEY_ID}:{SECRET}"),
            ],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster starts");
    let client = cluster.client();
    for stream in ["secret", "plain"] {
        client.create_stream(stream, 1, None).await.unwrap();
        client.wait_for_active(stream, WAIT).await.unwrap();
    }
    // A marker no other byte on disk could hold by chance.
    let marker = format!("classified{}x{}", std::process::id(), unique_suffix());
    let control = format!("inclear{}x{}", std::process::id(), unique_suffix());

    // StartStreamEncryption through the AWS SDK, refusals first.
    let sdk = kinesis_sdk(&cluster.node(2).kinesis_address, ACCESS_KEY_ID, SECRET);
    let missing = sdk
        .start_stream_encryption()
        .stream_name("secret")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/no-such-key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("KMSNotFoundException"), "{missing:?}");
    let none = sdk
        .start_stream_encryption()
        .stream_name("secret")
        .encryption_type(EncryptionType::None)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some("InvalidArgumentException"), "{none:?}");
    sdk.start_stream_encryption()
        .stream_name("secret")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .expect("StartStreamEncryption");
    wait_encryption_everywhere(&cluster, "secret", "KMS").await;
    let summary = sdk
        .describe_stream_summary()
        .stream_name("secret")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(summary.key_id(), Some("alias/aws/kinesis"));

    // Puts through every node (each seals what it receives) and both APIs.
    for node in cluster.nodes() {
        let range = (node.id as usize - 1) * 10..node.id as usize * 10;
        let answer = cluster
            .client_of(node.id)
            .put_records("secret", entries(&marker, range))
            .await
            .unwrap();
        assert_eq!(answer.failed_record_count, 0);
        assert_eq!(answer.encryption_type, "KMS");
    }
    let put = sdk
        .put_record()
        .stream_name("secret")
        .partition_key(format!("{marker}-key-sdk"))
        .data(Blob::new(format!("{marker}-data-sdk")))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type(), Some(&EncryptionType::Kms));
    let plain = client
        .put_records("plain", entries(&control, 0..10))
        .await
        .unwrap();
    assert_eq!(plain.encryption_type, "NONE");

    // Rotate the key while the cluster runs: every node picks the new version up, new batches
    // use it and the old ones stay readable.
    let rotated = cluster
        .cli()
        .args(["keys", "rotate", "--file"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    for node in cluster.nodes() {
        wait_until(
            WAIT,
            &format!("node {} loads version 2 of the key", node.id),
            || async {
                let metrics = metrics_of(&node.http_address);
                if metrics.contains("tributary_key_ring_versions{key=\"default\"} 2") {
                    Ok(())
                } else {
                    Err("still version 1".to_string())
                }
            },
        )
        .await
        .unwrap();
    }
    let answer = client
        .put_records("secret", entries(&marker, 30..40))
        .await
        .unwrap();
    assert_eq!(answer.encryption_type, "KMS");

    // Every read path returns the records in clear, marked KMS.
    for node in cluster.nodes() {
        let records = read_shard(&cluster.client_of(node.id), "secret").await;
        assert_eq!(records.len(), 41, "node {}", node.id);
        for (i, (key, data, kind)) in records.iter().take(30).enumerate() {
            assert_eq!(key, &format!("{marker}-key-{i}"));
            assert_eq!(data, &format!("{marker}-data-{i}"));
            assert_eq!(kind, "KMS");
        }
        assert_eq!(records[30].1, format!("{marker}-data-sdk"));
        assert_eq!(records[40].1, format!("{marker}-data-39"));
    }
    let iterator = sdk
        .get_shard_iterator()
        .stream_name("secret")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let page = sdk
        .get_records()
        .shard_iterator(iterator.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 41);
    assert_eq!(
        page.records()[0].data().as_ref(),
        format!("{marker}-data-0").as_bytes()
    );
    assert_eq!(page.records()[0].partition_key(), format!("{marker}-key-0"));
    assert!(
        page.records()
            .iter()
            .all(|r| r.encryption_type() == Some(&EncryptionType::Kms))
    );
    let got = cli(&cluster, &["get", "secret", "--limit", "1"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(
        stdout(&got).contains(&format!("{marker}-data-0"))
            && stdout(&got).contains("\"encryption_type\":\"KMS\""),
        "{}",
        stdout(&got)
    );

    // No file under the cluster's directories (data dirs, logs, audit) holds a record of the
    // encrypted stream, while the unencrypted stream's records are on every node's disk.
    let leaked = files_holding(cluster.data_root(), marker.as_bytes());
    assert!(leaked.is_empty(), "plaintext found in {leaked:?}");
    for node in cluster.nodes() {
        assert!(
            !files_holding(&node.data_dir, control.as_bytes()).is_empty(),
            "the unencrypted stream's records are not on node {}'s disk: the scan proves nothing",
            node.id
        );
    }

    // StopStreamEncryption (CLI): new records are stored in clear; sealed ones stay readable.
    let stopped = cli_json(&cluster, &["stream", "stop-encryption", "secret", "--json"]);
    assert_eq!(stopped["encryption_type"], "NONE", "{stopped}");
    wait_encryption_everywhere(&cluster, "secret", "NONE").await;
    let answer = client
        .put_records("secret", entries("after-stop", 0..1))
        .await
        .unwrap();
    assert_eq!(answer.encryption_type, "NONE");
    let records = read_shard(&client, "secret").await;
    assert_eq!(records.len(), 42);
    assert_eq!(records[0].2, "KMS");
    assert_eq!(
        (records[41].1.as_str(), records[41].2.as_str()),
        ("after-stop-data-0", "NONE")
    );
}

/// Nanoseconds since the epoch, to make markers unique per run.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

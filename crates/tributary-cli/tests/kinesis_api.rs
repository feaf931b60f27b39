//! The Kinesis-compatible HTTP endpoint as its users meet it: the official AWS SDK for Rust,
//! configured with nothing but an endpoint URL and static credentials, against a cluster of
//! real node processes. Also a CBOR exchange as the Java SDK makes it, and requests signed
//! wrongly or not at all.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    MetricsName, PutRecordsRequestEntry, ScalingType, ShardIteratorType, StartingPosition,
    StreamStatus, SubscribeToShardEventStream,
};
use common::*;
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

const ACCESS_KEY_ID: &str = "AKIDTRIBUTARYTEST";
const SECRET: &str = "tributary/test+secret";
const REGION: &str = "us-east-1";
const WAIT: Duration = Duration::from_secs(30);

async fn start_kinesis_cluster() -> Cluster {
    Cluster::start(
        BINARY,
        ClusterOptions {
            kinesis: true,
            node_args: vec![format!("--kinesis-access-key={ACCESS_KEY_ID}:{SECRET}")],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster starts")
}

/// The AWS SDK for Rust pointed at one node, as a user would configure it.
fn sdk(cluster: &Cluster, node: u64, secret: &str) -> aws_sdk_kinesis::Client {
    kinesis_sdk(&cluster.node(node).kinesis_address, ACCESS_KEY_ID, secret)
}

async fn wait_active(client: &aws_sdk_kinesis::Client, stream: &str) {
    wait_until(WAIT, &format!("stream {stream} is ACTIVE"), || async {
        let summary = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = summary
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        match status {
            Some(StreamStatus::Active) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
}

/// A shard's records from `iterator` to the tip (or to the end of a closed shard), and the
/// children listed at its end.
async fn drain(
    client: &aws_sdk_kinesis::Client,
    mut iterator: String,
) -> (
    Vec<(String, Vec<u8>)>,
    Vec<aws_sdk_kinesis::types::ChildShard>,
) {
    let mut records = Vec::new();
    loop {
        let output = match client.get_records().shard_iterator(&iterator).send().await {
            Ok(output) => output,
            // 5 reads a second per shard, as in Kinesis: back off like a consumer does.
            Err(error) if error.code() == Some("ProvisionedThroughputExceededException") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(error) => panic!("GetRecords failed: {error:?}"),
        };
        for record in output.records() {
            records.push((
                record.sequence_number().to_string(),
                record.data().as_ref().to_vec(),
            ));
        }
        match output.next_shard_iterator() {
            Some(next)
                if !output.records().is_empty() || output.millis_behind_latest() != Some(0) =>
            {
                iterator = next.to_string()
            }
            Some(_) => return (records, Vec::new()),
            None => return (records, output.child_shards().to_vec()),
        }
    }
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence_opt: Option<&str>,
    timestamp_opt: Option<DateTime>,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(sequence_opt.map(str::to_string))
        .set_timestamp(timestamp_opt)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .expect("an iterator")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sdk_runs_streams_records_and_resharding_against_the_cluster() {
    let cluster = start_kinesis_cluster().await;
    let kinesis = sdk(&cluster, 1, SECRET);
    let grpc = cluster.client();

    // Create, then describe by name and by ARN.
    kinesis
        .create_stream()
        .stream_name("orders")
        .shard_count(2)
        .send()
        .await
        .expect("CreateStream");
    wait_active(&kinesis, "orders").await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";
    let description = kinesis
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .expect("DescribeStream by ARN");
    let description = description.stream_description().expect("a description");
    assert_eq!(description.stream_arn(), arn);
    assert_eq!(description.shards().len(), 2);
    assert_eq!(
        description.shards()[1]
            .hash_key_range()
            .unwrap()
            .ending_hash_key(),
        "340282366920938463463374607431768211455"
    );
    let listed = kinesis.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), ["orders"]);
    assert_eq!(listed.stream_summaries()[0].stream_arn(), arn);

    // PutRecord, then every iterator type reads it back.
    let before_put = DateTime::from(SystemTime::now() - Duration::from_secs(1));
    let put = kinesis
        .put_record()
        .stream_name("orders")
        .partition_key("customer-1")
        .data(Blob::new(b"first order".to_vec()))
        .send()
        .await
        .expect("PutRecord");
    let shard = put.shard_id().to_string();
    let first = put.sequence_number().to_string();
    let second = kinesis
        .put_record()
        .stream_arn(arn)
        .partition_key("customer-1")
        .data(Blob::new(vec![0u8, 1, 2, 255]))
        .sequence_number_for_ordering(&first)
        .send()
        .await
        .expect("PutRecord by ARN")
        .sequence_number()
        .to_string();
    assert!(second.parse::<u128>().unwrap() > first.parse::<u128>().unwrap());
    let read = |kind, seq: Option<&str>, ts| {
        let kinesis = kinesis.clone();
        let shard = shard.clone();
        let seq = seq.map(str::to_string);
        async move {
            let it = iterator(&kinesis, "orders", &shard, kind, seq.as_deref(), ts).await;
            drain(&kinesis, it).await.0
        }
    };
    let all = read(ShardIteratorType::TrimHorizon, None, None).await;
    assert_eq!(
        all,
        [
            (first.clone(), b"first order".to_vec()),
            (second.clone(), vec![0, 1, 2, 255])
        ]
    );
    assert_eq!(
        read(ShardIteratorType::AtSequenceNumber, Some(&second), None)
            .await
            .len(),
        1
    );
    assert_eq!(
        read(ShardIteratorType::AfterSequenceNumber, Some(&first), None).await,
        all[1..]
    );
    assert_eq!(
        read(ShardIteratorType::AtTimestamp, None, Some(before_put)).await,
        all
    );
    let latest = iterator(
        &kinesis,
        "orders",
        &shard,
        ShardIteratorType::Latest,
        None,
        None,
    )
    .await;
    assert!(drain(&kinesis, latest).await.0.is_empty());

    // The same data through gRPC, both ways.
    let through_grpc = read_all(&grpc, "orders").await.unwrap();
    assert!(through_grpc.iter().any(|r| r.data == "first order"));
    let (acked, failed) = put_records(&grpc, "orders", "grpc", 20).await;
    assert!(failed.is_empty(), "{failed:?}");
    let mut seen = BTreeSet::new();
    for shard in kinesis
        .list_shards()
        .stream_name("orders")
        .send()
        .await
        .expect("ListShards")
        .shards()
    {
        let it = iterator(
            &kinesis,
            "orders",
            shard.shard_id(),
            ShardIteratorType::TrimHorizon,
            None,
            None,
        )
        .await;
        seen.extend(drain(&kinesis, it).await.0.into_iter().map(|(seq, _)| seq));
    }
    for record in &acked {
        assert!(
            seen.contains(&record.sequence_number.to_string()),
            "{record:?} not read"
        );
    }

    // PutRecords with a partial failure: 2,000 records at one shard in quick succession go over
    // its 1,000 records a second; the refused ones carry Kinesis' error code.
    kinesis
        .create_stream()
        .stream_name("hot")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, "hot").await;
    let (mut admitted, mut throttled) = (0, 0);
    for batch in 0..4 {
        let entries: Vec<PutRecordsRequestEntry> = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{batch}-{i}"))
                    .data(Blob::new(format!("r{batch}-{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let output = kinesis
            .put_records()
            .stream_name("hot")
            .set_records(Some(entries))
            .send()
            .await
            .expect("PutRecords");
        let failed = output
            .records()
            .iter()
            .filter(|r| r.error_code().is_some())
            .count();
        assert_eq!(output.failed_record_count(), Some(failed as i32));
        for record in output.records() {
            match record.error_code() {
                Some(code) => {
                    assert_eq!(code, "ProvisionedThroughputExceededException");
                    assert!(record.sequence_number().is_none());
                    throttled += 1;
                }
                None => {
                    assert!(record.sequence_number().is_some() && record.shard_id().is_some());
                    admitted += 1;
                }
            }
        }
    }
    assert!(
        admitted > 0 && throttled > 0,
        "admitted {admitted}, throttled {throttled}"
    );

    // Split: the parent closes, reads reach its end with both children listed.
    kinesis
        .create_stream()
        .stream_name("lineage")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, "lineage").await;
    for i in 0..5 {
        kinesis
            .put_record()
            .stream_name("lineage")
            .partition_key(format!("p{i}"))
            .data(Blob::new(format!("before-split-{i}")))
            .send()
            .await
            .unwrap();
    }
    kinesis
        .split_shard()
        .stream_name("lineage")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .expect("SplitShard");
    wait_active(&kinesis, "lineage").await;
    let parent = iterator(
        &kinesis,
        "lineage",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await;
    let (records, children) = drain(&kinesis, parent).await;
    assert_eq!(records.len(), 5);
    let child_ids: Vec<&str> = children.iter().map(|c| c.shard_id()).collect();
    assert_eq!(child_ids, ["shardId-000000000001", "shardId-000000000002"]);
    for child in &children {
        assert_eq!(child.parent_shards(), ["shardId-000000000000"]);
    }

    // Merge the children back, then scale uniformly.
    kinesis
        .merge_shards()
        .stream_name("lineage")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .expect("MergeShards");
    wait_active(&kinesis, "lineage").await;
    let shards = kinesis
        .list_shards()
        .stream_name("lineage")
        .send()
        .await
        .unwrap();
    let merged = shards
        .shards()
        .iter()
        .find(|s| s.shard_id() == "shardId-000000000003")
        .expect("the merged child");
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000002")
    );
    let scaled = kinesis
        .update_shard_count()
        .stream_name("lineage")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    assert_eq!(
        (scaled.current_shard_count(), scaled.target_shard_count()),
        (Some(1), Some(2))
    );
    wait_active(&kinesis, "lineage").await;
    let summary = kinesis
        .describe_stream_summary()
        .stream_name("lineage")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );

    // Retention, tags (by name and by ARN), enhanced monitoring, limits.
    kinesis
        .increase_stream_retention_period()
        .stream_name("orders")
        .retention_period_hours(48)
        .send()
        .await
        .expect("IncreaseStreamRetentionPeriod");
    wait_active(&kinesis, "orders").await;
    let error = kinesis
        .decrease_stream_retention_period()
        .stream_name("orders")
        .retention_period_hours(72)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("InvalidArgumentException"), "{error:?}");
    kinesis
        .decrease_stream_retention_period()
        .stream_name("orders")
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
    kinesis
        .add_tags_to_stream()
        .stream_name("orders")
        .tags("team", "billing")
        .tags("env", "dev")
        .send()
        .await
        .unwrap();
    kinesis
        .tag_resource()
        .resource_arn(arn)
        .tags("tier", "gold")
        .send()
        .await
        .unwrap();
    kinesis
        .remove_tags_from_stream()
        .stream_name("orders")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = kinesis
        .list_tags_for_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["team", "tier"]);
    kinesis
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = kinesis
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].value(), Some("gold"));
    let monitoring = kinesis
        .enable_enhanced_monitoring()
        .stream_name("orders")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .shard_level_metrics(MetricsName::IteratorAgeMilliseconds)
        .send()
        .await
        .expect("EnableEnhancedMonitoring");
    assert_eq!(monitoring.desired_shard_level_metrics().len(), 2);
    let described = kinesis
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let recorded = described
        .stream_description()
        .unwrap()
        .enhanced_monitoring()[0]
        .shard_level_metrics();
    assert!(
        recorded.contains(&MetricsName::IncomingBytes),
        "{recorded:?}"
    );
    let limits = kinesis
        .describe_limits()
        .send()
        .await
        .expect("DescribeLimits");
    assert_eq!(limits.open_shard_count(), 2 + 1 + 2);

    // Bad input gets Kinesis' error names.
    let missing = kinesis
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        missing.code(),
        Some("ResourceNotFoundException"),
        "{missing:?}"
    );
    let duplicate = kinesis
        .create_stream()
        .stream_name("orders")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Some("ResourceInUseException"));
    let no_sequence = kinesis
        .get_shard_iterator()
        .stream_name("orders")
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        no_sequence.code(),
        Some("InvalidArgumentException"),
        "{no_sequence:?}"
    );
    let bad_count = kinesis
        .create_stream()
        .stream_name("zero")
        .shard_count(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        bad_count.code(),
        Some("ValidationException"),
        "{bad_count:?}"
    );
    let bad_name = kinesis
        .create_stream()
        .stream_name("no spaces")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_name.code(), Some("ValidationException"), "{bad_name:?}");
    assert!(
        bad_name
            .message()
            .unwrap()
            .starts_with("1 validation error detected: Value 'no spaces' at 'streamName'"),
        "{bad_name:?}"
    );

    // A wrong secret is refused and changes nothing.
    let forged = sdk(&cluster, 2, "not-the-secret");
    let refused = forged
        .delete_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some("InvalidSignatureException"),
        "{refused:?}"
    );
    assert!(
        kinesis
            .describe_stream_summary()
            .stream_name("orders")
            .send()
            .await
            .is_ok()
    );

    // Delete.
    kinesis
        .delete_stream()
        .stream_name("hot")
        .send()
        .await
        .expect("DeleteStream");
    wait_until(WAIT, "hot is gone", || async {
        match kinesis
            .describe_stream_summary()
            .stream_name("hot")
            .send()
            .await
        {
            Err(error) if error.code() == Some("ResourceNotFoundException") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_subscribe_and_get_records_pushed() {
    let cluster = start_kinesis_cluster().await;
    let kinesis = sdk(&cluster, 3, SECRET);
    kinesis
        .create_stream()
        .stream_name("events")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, "events").await;
    let stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/events";

    let registered = kinesis
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name("billing")
        .send()
        .await
        .expect("RegisterStreamConsumer");
    let consumer_arn = registered.consumer().unwrap().consumer_arn().to_string();
    assert!(
        consumer_arn.starts_with(&format!("{stream_arn}/consumer/billing:")),
        "{consumer_arn}"
    );
    let listed = kinesis
        .list_stream_consumers()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.consumers().len(), 1);
    let described = kinesis
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("DescribeStreamConsumer");
    assert_eq!(
        described.consumer_description().unwrap().stream_arn(),
        stream_arn
    );

    let mut subscription = kinesis
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("SubscribeToShard");
    // Records put after the subscription started are pushed to it, in order.
    let writer = sdk(&cluster, 1, SECRET);
    let mut put = Vec::new();
    for i in 0..10 {
        let output = writer
            .put_record()
            .stream_name("events")
            .partition_key(format!("p{i}"))
            .data(Blob::new(format!("event-{i}")))
            .send()
            .await
            .unwrap();
        put.push(output.sequence_number().to_string());
    }
    let mut pushed = Vec::new();
    let mut continuation_opt = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while pushed.len() < put.len() {
        let Ok(received) =
            tokio::time::timeout_at(deadline, subscription.event_stream.recv()).await
        else {
            panic!("only {} of {} records pushed", pushed.len(), put.len());
        };
        let event = received
            .expect("the event stream")
            .expect("the stream stays open");
        if let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event {
            pushed.extend(
                event
                    .records()
                    .iter()
                    .map(|r| r.sequence_number().to_string()),
            );
            continuation_opt = Some(event.continuation_sequence_number().to_string());
        }
    }
    assert_eq!(pushed, put);
    let continuation = continuation_opt.expect("a continuation sequence number");

    // A second subscription from the continuation takes over; the first ends with
    // ResourceInUseException, sent as an exception message in the event stream.
    let _takeover = kinesis
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(&continuation)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the second SubscribeToShard");
    let ended = loop {
        let Ok(received) =
            tokio::time::timeout_at(deadline, subscription.event_stream.recv()).await
        else {
            panic!("the first subscription was not ended by the second");
        };
        match received {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the first subscription ended without an exception"),
            Err(error) => break error,
        }
    };
    assert_eq!(ended.code(), Some("ResourceInUseException"), "{ended:?}");

    kinesis
        .deregister_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("DeregisterStreamConsumer");
    let gone = kinesis
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));
}

/// One raw HTTP/1.1 exchange with a node's Kinesis endpoint, signed unless `signed` is false.
async fn post(
    address: &str,
    operation: &str,
    content_type: &str,
    body: &[u8],
    signed: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tributary_server::kinesis_wire::sigv4;

    let mut headers = http::HeaderMap::new();
    headers.insert("host", address.parse().unwrap());
    headers.insert("content-type", content_type.parse().unwrap());
    headers.insert(
        "x-amz-target",
        format!("Kinesis_20131202.{operation}").parse().unwrap(),
    );
    let now = SystemTime::now();
    let amz_date = chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    headers.insert("x-amz-date", amz_date.parse().unwrap());
    if signed {
        let authorization = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query_opt: None,
                headers: &headers,
                authority_opt: None,
                body,
            },
            ACCESS_KEY_ID,
            SECRET,
            REGION,
            now,
        );
        headers.insert("authorization", authorization.parse().unwrap());
    }
    let mut request = format!(
        "POST / HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the endpoint answers")
        .unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let response_headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, response_headers, response[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn cbor(entries: Vec<(&str, ciborium::Value)>) -> Vec<u8> {
    let map = ciborium::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.to_string()), v))
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::ser::into_writer(&map, &mut out).unwrap();
    out
}

fn cbor_field(body: &[u8], name: &str) -> ciborium::Value {
    let value: ciborium::Value = ciborium::de::from_reader(body).expect("a CBOR body");
    let ciborium::Value::Map(entries) = value else {
        panic!("not a map: {value:?}")
    };
    entries
        .into_iter()
        .find(|(k, _)| k == &ciborium::Value::Text(name.to_string()))
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_requests_round_trip_and_protocol_errors_have_aws_names() {
    use ciborium::Value as C;
    const CBOR: &str = "application/x-amz-cbor-1.1";
    let cluster = start_kinesis_cluster().await;
    let address = cluster.node(2).kinesis_address.clone();

    // The Java SDK's default encoding, end to end.
    let body = cbor(vec![
        ("StreamName", C::Text("cbor".into())),
        ("ShardCount", C::Integer(1.into())),
    ]);
    let (status, headers, _) = post(&address, "CreateStream", CBOR, &body, true).await;
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(header(&headers, "content-type"), Some(CBOR));
    assert!(header(&headers, "x-amzn-requestid").is_some());
    wait_active(&sdk(&cluster, 1, SECRET), "cbor").await;
    let payload = vec![0u8, 159, 146, 150, 255, 10];
    let put = cbor(vec![
        ("StreamName", C::Text("cbor".into())),
        ("PartitionKey", C::Text("k".into())),
        ("Data", C::Bytes(payload.clone())),
    ]);
    let (status, _, body) = post(&address, "PutRecord", CBOR, &put, true).await;
    assert_eq!(status, 200);
    let C::Text(sequence_number) = cbor_field(&body, "SequenceNumber") else {
        panic!("no sequence number")
    };
    let request = cbor(vec![
        ("StreamName", C::Text("cbor".into())),
        ("ShardId", C::Text("shardId-000000000000".into())),
        ("ShardIteratorType", C::Text("TRIM_HORIZON".into())),
    ]);
    let (_, _, body) = post(&address, "GetShardIterator", CBOR, &request, true).await;
    let C::Text(iterator) = cbor_field(&body, "ShardIterator") else {
        panic!("no iterator")
    };
    let (status, _, body) = post(
        &address,
        "GetRecords",
        CBOR,
        &cbor(vec![("ShardIterator", C::Text(iterator))]),
        true,
    )
    .await;
    assert_eq!(status, 200);
    let C::Array(records) = cbor_field(&body, "Records") else {
        panic!("no records")
    };
    let mut record = Vec::new();
    ciborium::ser::into_writer(&records[0], &mut record).unwrap();
    assert_eq!(cbor_field(&record, "Data"), C::Bytes(payload.clone()));
    assert_eq!(
        cbor_field(&record, "SequenceNumber"),
        C::Text(sequence_number.clone())
    );
    let C::Integer(arrival) = cbor_field(&record, "ApproximateArrivalTimestamp") else {
        panic!("the arrival time is not integer milliseconds")
    };
    let arrival = i128::from(arrival);
    let now_ms = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i128;
    assert!(
        (now_ms - arrival).abs() < 60_000,
        "arrival {arrival} ms, now {now_ms} ms"
    );
    // gRPC reads the same bytes.
    let through_grpc = read_all(&cluster.client(), "cbor").await.unwrap();
    assert_eq!(through_grpc.len(), 1);
    assert_eq!(through_grpc[0].sequence_number.to_string(), sequence_number);
    assert_eq!(through_grpc[0].data, String::from_utf8_lossy(&payload));

    // Protocol errors.
    const JSON: &str = "application/x-amz-json-1.1";
    let (status, headers, body) = post(&address, "FlyToTheMoon", JSON, b"{}", true).await;
    assert_eq!(
        (status, header(&headers, "x-amzn-errortype")),
        (400, Some("UnknownOperationException"))
    );
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["__type"], "UnknownOperationException");
    let (status, headers, _) = post(&address, "ListStreams", JSON, b"{\"Limit\": ", true).await;
    assert_eq!(
        (status, header(&headers, "x-amzn-errortype")),
        (400, Some("SerializationException"))
    );
    let (status, headers, _) =
        post(&address, "ListStreams", JSON, b"{\"Limit\": \"ten\"}", true).await;
    assert_eq!(
        (status, header(&headers, "x-amzn-errortype")),
        (400, Some("SerializationException"))
    );
    let (status, headers, _) = post(&address, "ListStreams", JSON, b"{}", false).await;
    assert_eq!(
        (status, header(&headers, "x-amzn-errortype")),
        (403, Some("MissingAuthenticationTokenException"))
    );
    let (status, headers, _) = post(&address, "ListStreams", CBOR, &[0xff, 0x01], true).await;
    assert_eq!(
        (status, header(&headers, "x-amzn-errortype")),
        (400, Some("SerializationException"))
    );

    // Every operation listed is dispatched (an empty request is refused by its own rules, never
    // as unknown), and a target outside the list is counted as Unknown whatever it is.
    for operation in tributary_server::kinesis::OPERATIONS {
        let (status, headers, body) = post(&address, operation, JSON, b"{}", true).await;
        assert_ne!(
            header(&headers, "x-amzn-errortype"),
            Some("UnknownOperationException"),
            "{operation}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _, _) = post(&address, "MadeUpByAnAttacker", JSON, b"{}", false).await;
    assert_eq!(status, 403);

    // Every request was counted per operation and error name.
    let metrics = metrics_of(&cluster.node(2).http_address);
    assert!(
        counter_sum(
            &metrics,
            "tributary_kinesis_requests_total{operation=\"PutRecord\""
        ) >= 1.0
    );
    assert!(
        counter_sum(
            &metrics,
            "tributary_kinesis_errors_total{operation=\"Unknown\",type=\"UnknownOperationException\""
        ) >= 1.0
    );
    assert!(
        !metrics.contains("MadeUpByAnAttacker"),
        "an unsigned request named a metric label"
    );
}

#[test]
fn a_node_will_not_serve_signed_kinesis_without_access_keys() {
    let data_dir = tempfile::tempdir().unwrap();
    let node = |extra: &[&str]| {
        node_command(1, data_dir.path())
            .args(["--kinesis-listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = node(&[]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("no access key is configured") && message.contains("--kinesis-auth none"),
        "{message}"
    );
    let bad_account = node(&["--kinesis-auth", "none", "--account-id", "12"]);
    assert!(!bad_account.status.success());
    assert!(
        stderr(&bad_account).contains("must be 12 digits"),
        "{}",
        stderr(&bad_account)
    );
}

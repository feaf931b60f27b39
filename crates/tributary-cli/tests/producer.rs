//! The producer against a real cluster with Kinesis limits on: batching, retries of throttled
//! records until they succeed, per-key order, backpressure, flush.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use tributary_client::producer::{Producer, ProducerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_retries_throttled_records_in_order_until_acknowledged() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("prod", 2, None).await.unwrap();
    let producer = Producer::new(
        client.clone(),
        "prod",
        ProducerConfig {
            linger: Duration::from_millis(20),
            ..ProducerConfig::default()
        },
    );
    // 3,000 records over 2 shards as fast as the buffer takes them: about twice what the shards'
    // 1,000 records/s allow in the first second, so many are throttled and retried.
    let mut receipts = Vec::new();
    for n in 0..300 {
        for key in 0..10 {
            let data = Bytes::from(format!("key{key}:{n}"));
            receipts.push(
                producer
                    .put(&format!("key{key}"), data, None)
                    .await
                    .unwrap(),
            );
        }
    }
    producer.flush().await;
    let mut acked = 0;
    for receipt in receipts {
        receipt
            .await
            .expect("every record is acknowledged within its time-to-live");
        acked += 1;
    }
    assert_eq!(acked, 3_000);
    producer.close().await;
    // The shards did throttle: the producer's retries are what got every record in.
    let throttled: f64 = cluster
        .nodes()
        .iter()
        .map(|node| {
            counter_sum(
                &metrics_of(&node.http_address),
                "tributary_errors_total{code=\"PROVISIONED_THROUGHPUT_EXCEEDED\"}",
            )
        })
        .sum();
    assert!(
        throttled > 0.0,
        "no record was throttled: the test did not exercise retries"
    );

    let read = read_all(&client, "prod").await.unwrap();
    assert_eq!(read.len(), 3_000, "every record stored once");
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for record in &read {
        let (key, n) = record.data.split_once(':').unwrap();
        per_key
            .entry(key.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    for (key, numbers) in per_key {
        assert_eq!(
            numbers,
            (0..300).collect::<Vec<_>>(),
            "{key} stored in put order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_fails_fast_when_asked() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("small", 1, None).await.unwrap();
    let producer = Producer::new(
        client,
        "small",
        ProducerConfig {
            linger: Duration::from_secs(5),
            max_buffered_bytes: 100,
            fail_when_full: true,
            ..ProducerConfig::default()
        },
    );
    let first = producer
        .put("k", Bytes::from(vec![b'x'; 60]), None)
        .await
        .unwrap();
    let full = producer
        .put("k", Bytes::from(vec![b'y'; 60]), None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(full.code.as_str(), "LIMIT_EXCEEDED");
    // flush sends without waiting for the linger time; then there is room again.
    producer.flush().await;
    first.await.unwrap();
    producer
        .put("k", Bytes::from(vec![b'z'; 60]), None)
        .await
        .unwrap();
    producer.close().await;
}

//! The producer against a real cluster with Kinesis limits on: batching, retries of throttled
//! records until they succeed, per-key order, backpressure, flush.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use tributary_client::producer::{Producer, ProducerConfig};
use tributary_testkit::wait_until;

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

/// An idempotent PutRecords of records `first..=last` of producer `producer_id` (data `r{n}`),
/// aimed at one shard; answers each record's sequence number.
async fn idempotent_put(
    client: &tributary_client::Client,
    hash_key: &str,
    producer_id: u64,
    numbers: std::ops::RangeInclusive<u64>,
) -> Vec<String> {
    let records = numbers
        .clone()
        .map(|n| tributary_client::v1::PutRecordsRequestEntry {
            data: Bytes::from(format!("r{n}")),
            partition_key: format!("r{n}"),
            explicit_hash_key: Some(hash_key.to_string()),
        })
        .collect();
    let request = tributary_client::v1::PutRecordsRequest {
        stream_name: "idem".into(),
        records,
        producer_id: Some(producer_id),
        producer_sequence: Some(*numbers.start()),
    };
    // Retried as a producer would (while a new leader is elected, say): that is what
    // idempotence is for.
    wait_until(Duration::from_secs(20), "the idempotent put", || {
        let request = request.clone();
        async move {
            match client.put_records_request(request).await {
                Ok(response) if response.failed_record_count == 0 => Ok(response
                    .records
                    .into_iter()
                    .map(|r| r.sequence_number.expect("numbered"))
                    .collect()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("idempotent put")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_idempotent_put_is_stored_once_even_after_the_leader_dies() {
    let mut cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("idem", 1, None).await.unwrap();
    let hash_key = shard_start_keys(&client, "idem")
        .await
        .into_values()
        .next()
        .unwrap();

    let first = idempotent_put(&client, &hash_key, 42, 1..=3).await;
    // The producer never heard back, so it sends the same records again with two more.
    let retry = idempotent_put(&client, &hash_key, 42, 1..=5).await;
    assert_eq!(
        retry[..3],
        first[..],
        "a retry answers the original numbers"
    );
    // Another producer id is a sequence of its own: its record 1 is new.
    idempotent_put(&client, &hash_key, 43, 1..=1).await;

    // The de-duplication state is replicated: the next leader remembers it.
    let leaders = wait_for_leaders(&cluster, "idem").await;
    let leader = *leaders.values().next().unwrap();
    cluster.kill(leader).unwrap();
    let survivors = tributary_client::Client::from_list(&cluster.running_endpoints()).unwrap();
    let late = idempotent_put(&survivors, &hash_key, 42, 4..=6).await;
    assert_eq!(late[..2], retry[3..], "records 4 and 5 keep their numbers");

    let stored: Vec<String> = read_all(&survivors, "idem")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_eq!(stored, ["r1", "r2", "r3", "r4", "r5", "r1", "r6"]);

    // Half a stamp is refused.
    let half = tributary_client::v1::PutRecordsRequest {
        stream_name: "idem".into(),
        records: vec![tributary_client::v1::PutRecordsRequestEntry {
            data: Bytes::from_static(b"x"),
            partition_key: "x".into(),
            explicit_hash_key: None,
        }],
        producer_id: Some(1),
        producer_sequence: None,
    };
    let error = survivors.put_records_request(half).await.unwrap_err();
    assert_eq!(error.code(), "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_records_reach_workers_as_the_user_records_put() {
    let cluster = start_cluster_with(3, 3, &["--shard-limits", "off"]).await;
    let client = cluster.client();
    client.create_stream("agg", 2, None).await.unwrap();
    let producer = Producer::new(
        client.clone(),
        "agg",
        ProducerConfig {
            linger: Duration::from_millis(50),
            aggregate: true,
            ..ProducerConfig::default()
        },
    );
    let mut receipts = Vec::new();
    for n in 0..100 {
        for key in 0..20 {
            let data = Bytes::from(format!("k{key}:{n}"));
            receipts.push(producer.put(&format!("k{key}"), data, None).await.unwrap());
        }
    }
    producer.flush().await;
    let mut aggregated = 0;
    for receipt in receipts {
        let put = receipt.await.expect("acknowledged");
        aggregated += usize::from(put.sub_sequence_number_opt.is_some());
    }
    producer.close().await;
    assert!(
        aggregated >= 1_900,
        "only {aggregated} of 2,000 records were aggregated"
    );
    let stored = read_all(&client, "agg").await.unwrap();
    assert!(
        stored.len() <= 200,
        "2,000 user records took {} stored records",
        stored.len()
    );

    // A worker de-aggregates: every user record once, in put order per key, numbered.
    let consumer = JsonLines::start(
        &cluster,
        &[
            "consume",
            "agg",
            "--app",
            "agg-app",
            "--from",
            "trim-horizon",
        ],
    );
    wait_until(Duration::from_secs(30), "2,000 user records", || {
        let count = consumer.values().len();
        async move {
            if count >= 2_000 {
                Ok(())
            } else {
                Err(format!("{count} processed"))
            }
        }
    })
    .await
    .unwrap();
    let lines = consumer.values();
    assert_eq!(lines.len(), 2_000, "no user record twice");
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in &lines {
        let (key, n) = line["data"].as_str().unwrap().split_once(':').unwrap();
        assert_eq!(line["partition_key"].as_str(), Some(key));
        per_key
            .entry(key.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    assert_eq!(per_key.len(), 20);
    for (key, numbers) in per_key {
        assert_eq!(numbers, (0..100).collect::<Vec<_>>(), "{key} in put order");
    }
    assert!(
        lines
            .iter()
            .filter(|l| l["sub_sequence_number"].is_u64())
            .count()
            >= 1_900,
        "aggregated user records carry their sub-sequence numbers"
    );
}

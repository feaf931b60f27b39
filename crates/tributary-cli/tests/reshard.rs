//! Resharding under load, and enhanced fan-out. Producers and a fan-out subscriber run while a
//! stream is split, merged and scaled; afterwards every acknowledged record is found exactly
//! once, in order per partition key along each shard lineage, by both GetRecords and the
//! subscriber. A second test measures fan-out delivery and kills a shard leader mid-subscription.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tributary_client::{Client, v1};
use tributary_testkit::wait_until;

/// Puts records `{key}:{n}` for 20 keys, each key's numbers increasing, until told to stop;
/// returns the acknowledged ones per key, in acknowledgement order.
async fn produce(
    client: Client,
    stream: &str,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, Vec<u64>> {
    let mut acked: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let entries: Vec<v1::PutRecordsRequestEntry> = (0..20)
            .map(|k| v1::PutRecordsRequestEntry {
                data: Bytes::from(format!("key{k}:{round}")),
                partition_key: format!("key{k}"),
                explicit_hash_key: None,
            })
            .collect();
        if let Ok(response) = client.put_records(stream, entries).await {
            for (k, result) in response.records.iter().enumerate() {
                if result.sequence_number.is_some() {
                    acked.entry(format!("key{k}")).or_default().push(round);
                }
            }
        }
        round += 1;
    }
    acked
}

/// Per key, the numbers in the order `data` lists them.
fn per_key(data: &[String]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for item in data {
        let (key, n) = item.split_once(':').expect("key:n");
        out.entry(key.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    out
}

/// Every shard (open or closed) read from TRIM_HORIZON to its end, shards in id order: a child
/// always has a higher id than its parents, so this reads each lineage parents first.
async fn read_lineage(client: &Client, stream: &str) -> (Vec<String>, BTreeMap<String, Vec<u128>>) {
    let mut data = Vec::new();
    let mut numbers: BTreeMap<String, Vec<u128>> = BTreeMap::new();
    let description = client.describe_stream(stream).await.unwrap();
    for shard in description.shards {
        let mut iterator = client
            .get_shard_iterator(stream, &shard.shard_id, "TRIM_HORIZON", None)
            .await
            .unwrap();
        loop {
            let response = get_records_retrying(client, &iterator).await.unwrap();
            for record in &response.records {
                data.push(String::from_utf8_lossy(&record.data).to_string());
                numbers
                    .entry(shard.shard_id.clone())
                    .or_default()
                    .push(record.sequence_number.parse().unwrap());
            }
            match response.next_shard_iterator {
                // Closed shards end with their children; open ones when caught up.
                None => {
                    assert_eq!(shard.status, "CLOSED", "only a closed shard ends");
                    assert!(
                        !response.child_shards.is_empty(),
                        "{} ended without children",
                        shard.shard_id
                    );
                    break;
                }
                Some(_)
                    if response.records.is_empty()
                        && response.millis_behind_latest == 0
                        && shard.status == "OPEN" =>
                {
                    break;
                }
                Some(next) => iterator = next,
            }
        }
    }
    (data, numbers)
}

fn assert_every_ack_once_in_order(
    what: &str,
    acked: &BTreeMap<String, Vec<u64>>,
    seen: &BTreeMap<String, Vec<u64>>,
) {
    for (key, numbers) in acked {
        let got = seen.get(key).cloned().unwrap_or_default();
        // Unacknowledged (timed-out) puts may still have landed: compare the acked subsequence.
        let got_acked: Vec<u64> = got
            .iter()
            .copied()
            .filter(|n| numbers.binary_search(n).is_ok())
            .collect();
        assert_eq!(
            &got_acked, numbers,
            "{what}: {key} lost or reordered records"
        );
        let unique: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "{what}: {key} has duplicates");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{what}: {key} out of order: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_merge_and_scale_under_load_lose_and_reorder_nothing() {
    let cluster = start_cluster_with(3, 3, &["--shard-limits", "off"]).await;
    let client = cluster.client();
    client.create_stream("rs", 2, None).await.unwrap();
    client.register_consumer("rs", "fan").await.unwrap();
    let subscriber = JsonLines::start(
        &cluster,
        &[
            "subscribe",
            "rs",
            "--consumer",
            "fan",
            "--from",
            "trim-horizon",
        ],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(cluster.client_of(2), "rs", stop.clone()));

    // Split shard 0 in the middle of its range.
    let before_split = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let description = client.describe_stream("rs").await.unwrap();
    let end0: u128 = description.shards[0].ending_hash_key.parse().unwrap();
    let middle = (end0 / 2).to_string();
    let split = cli_json(
        &cluster,
        &[
            "stream",
            "split",
            "rs",
            "--shard",
            "shardId-000000000000",
            "--new-starting-hash-key",
            &middle,
            "--json",
        ],
    );
    assert_eq!(split["status"], "ACTIVE");
    let open: Vec<&str> = split["open_shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        open,
        [
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    let output = cli(
        &cluster,
        &[
            "stream",
            "split",
            "rs",
            "--shard",
            "0",
            "--new-starting-hash-key",
            &middle,
        ],
    );
    assert!(
        !output.status.success() && stderr(&output).contains("INVALID_ARGUMENT"),
        "a closed shard cannot be split"
    );

    // Merge the upper child with its neighbour, then scale 2 -> 4.
    let merged = cli_json(
        &cluster,
        &[
            "stream",
            "merge",
            "rs",
            "--shard",
            "shardId-000000000003",
            "--adjacent-shard",
            "shardId-000000000001",
            "--json",
        ],
    );
    assert_eq!(merged["open_shards"].as_array().unwrap().len(), 2);
    let output = cli(
        &cluster,
        &[
            "stream",
            "merge",
            "rs",
            "--shard",
            "shardId-000000000002",
            "--adjacent-shard",
            "shardId-000000000001",
        ],
    );
    assert!(
        !output.status.success() && stderr(&output).contains("INVALID_ARGUMENT"),
        "shard 1 is closed"
    );
    let scaled = cli_json(
        &cluster,
        &["stream", "scale", "rs", "--target", "4", "--json"],
    );
    assert_eq!(scaled["open_shards"].as_array().unwrap().len(), 4);

    // Keep producing into the children for a moment, then stop.
    let (after_scale, _) = put_records(&client, "rs", "after", 50).await;
    assert_eq!(after_scale.len(), 50);
    stop.store(true, Ordering::Relaxed);
    let acked = producer.await.unwrap();
    assert!(
        acked.values().all(|n| n.len() > 3),
        "the producer ran throughout: {acked:?}"
    );

    // Parents are closed and sealed; children number above them; lineage is recorded.
    let description = client.describe_stream("rs").await.unwrap();
    let by_id: BTreeMap<&str, &v1::Shard> = description
        .shards
        .iter()
        .map(|s| (s.shard_id.as_str(), s))
        .collect();
    assert_eq!(
        by_id["shardId-000000000002"].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    assert_eq!(
        by_id["shardId-000000000004"].parent_shard_id.as_deref(),
        Some("shardId-000000000003")
    );
    assert_eq!(
        by_id["shardId-000000000004"]
            .adjacent_parent_shard_id
            .as_deref(),
        Some("shardId-000000000001")
    );
    for shard in description.shards.iter().filter(|s| s.status == "CLOSED") {
        assert!(
            shard.ending_sequence_number.is_some(),
            "{} is sealed",
            shard.shard_id
        );
    }

    // GetRecords along each lineage: every acknowledged record once, in order per key.
    let (data, numbers) = read_lineage(&client, "rs").await;
    let produced: Vec<String> = data.iter().filter(|d| d.contains(':')).cloned().collect();
    assert_every_ack_once_in_order("GetRecords", &acked, &per_key(&produced));
    for record in &after_scale {
        assert_eq!(
            data.iter().filter(|d| **d == record.data).count(),
            1,
            "{}",
            record.data
        );
    }
    // Every child's numbers exceed every parent's.
    for shard in &description.shards {
        for parent in [&shard.parent_shard_id, &shard.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
        {
            if let (Some(child), Some(parent_numbers)) =
                (numbers.get(&shard.shard_id), numbers.get(parent))
            {
                assert!(
                    child.iter().min() > parent_numbers.iter().max(),
                    "{} vs parent {parent}",
                    shard.shard_id
                );
            }
        }
    }

    // The fan-out subscriber saw the same, parents before children.
    let expected: usize = acked.values().map(Vec::len).sum::<usize>() + after_scale.len();
    wait_until(
        Duration::from_secs(20),
        "the subscriber to receive every record",
        || {
            let received = subscriber.data().len();
            async move {
                if received >= expected {
                    Ok(())
                } else {
                    Err(format!("{received} of {expected} records"))
                }
            }
        },
    )
    .await
    .unwrap();
    let pushed: Vec<String> = subscriber
        .data()
        .into_iter()
        .filter(|d| d.contains(':'))
        .collect();
    assert_every_ack_once_in_order("SubscribeToShard", &acked, &per_key(&pushed));

    // ListShards filters see the lineage.
    let list = |filter: &str| {
        let value = cli_json(&cluster, &["shards", "rs", "--filter", filter, "--json"]);
        value["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["shard_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list("at-latest").len(), 4);
    assert_eq!(
        list(&format!("at-timestamp:{before_split}")),
        ["shardId-000000000000", "shardId-000000000001"],
        "the shards open before the split"
    );
    assert_eq!(
        list(&format!("from-timestamp:{before_split}")).len(),
        description.shards.len(),
        "every shard closed after that time, and the open ones"
    );
    assert_eq!(
        list("at-trim-horizon"),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    assert_eq!(list("from-trim-horizon").len(), description.shards.len());
    assert!(
        list("after-shard:shardId-000000000003")
            .iter()
            .all(|id| id.as_str() > "shardId-000000000003")
    );
    let page = client
        .list_shards_page(v1::ListShardsRequest {
            stream_name: Some("rs".into()),
            max_results: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.shards.len(), 2);
    let next = client
        .list_shards_page(v1::ListShardsRequest {
            next_token: page.next_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.shards[0].shard_id, "shardId-000000000002");
    let both = client
        .list_shards_page(v1::ListShardsRequest {
            stream_name: Some("rs".into()),
            next_token: page.next_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), "INVALID_ARGUMENT");
}

/// A subscription of `consumer` to the one shard of stream "live", from LATEST.
fn latest_subscription(consumer: &str) -> v1::SubscribeToShardRequest {
    v1::SubscribeToShardRequest {
        stream_name: "live".into(),
        consumer_name: consumer.into(),
        shard_id: "shardId-000000000000".into(),
        starting_position: Some(v1::StartingPosition {
            r#type: "LATEST".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_pushes_at_once_and_survives_a_leader_change() {
    let mut cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("live", 1, None).await.unwrap();
    client.register_consumer("live", "watcher").await.unwrap();

    // Unregistered consumers are refused.
    let refused = client
        .subscribe_to_shard(latest_subscription("stranger"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "RESOURCE_NOT_FOUND");

    // Delivery: a record put after subscribing arrives pushed, without polling.
    let mut events = client
        .subscribe_to_shard(latest_subscription("watcher"))
        .await
        .unwrap();
    let first = events.message().await.unwrap().expect("an initial event");
    assert!(first.continuation_sequence_number.is_some());
    let mut delays = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        let put = client
            .put_records(
                "live",
                vec![v1::PutRecordsRequestEntry {
                    data: Bytes::from(format!("ping-{i}")),
                    partition_key: "p".into(),
                    explicit_hash_key: None,
                }],
            )
            .await
            .unwrap();
        let number = put.records[0].sequence_number.clone().unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.message())
                .await
                .expect("pushed within 5 s")
                .unwrap()
                .unwrap();
            assert!(event.continuation_sequence_number.is_some());
            if event.records.iter().any(|r| r.sequence_number == number) {
                break;
            }
        }
        delays.push(sent.elapsed());
    }
    eprintln!("put-to-push delays: {delays:?}");

    // A second subscription of the same consumer to the shard takes over; the first ends with
    // RESOURCE_IN_USE.
    let _second = client
        .subscribe_to_shard(latest_subscription("watcher"))
        .await
        .unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .expect("the first subscription ends within 5 s")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the first subscription ended without an error"),
            Err(status) => break tributary_client::error_from_status(&status),
        }
    };
    assert_eq!(ended.code.as_str(), "RESOURCE_IN_USE", "{ended}");
    drop(events);

    // A CLI subscriber keeps going across a crash of the shard's leader.
    let subscriber = JsonLines::start(
        &cluster,
        &[
            "subscribe",
            "live",
            "--consumer",
            "watcher",
            "--from",
            "trim-horizon",
        ],
    );
    wait_until(
        Duration::from_secs(10),
        "the subscriber to catch up",
        || {
            let received = subscriber.data().len();
            async move {
                if received >= 5 {
                    Ok(())
                } else {
                    Err(format!("{received} of 5"))
                }
            }
        },
    )
    .await
    .unwrap();
    let leaders = wait_for_leaders(&cluster, "live").await;
    let leader = leaders["shardId-000000000000"];
    // The CLI talks to node 1 first: kill another node if node 1 leads, so the relay path and
    // the leader change are both exercised.
    cluster.kill(leader).unwrap();
    let survivors = cluster.running_endpoints();
    let client = Client::from_list(&survivors).unwrap();
    let (after, failed) = put_records(&client, "live", "after", 30).await;
    assert!(
        failed.is_empty(),
        "one AZ down keeps writes going: {failed:?}"
    );
    let expected: Vec<String> = (0..5)
        .map(|i| format!("ping-{i}"))
        .chain(after.iter().map(|a| a.data.clone()))
        .collect();
    wait_until(
        Duration::from_secs(20),
        "the subscriber to receive the records put after the crash",
        || {
            let data = subscriber.data();
            let expected = expected.clone();
            async move {
                if data.len() >= expected.len() {
                    Ok(())
                } else {
                    Err(format!("{} of {} records", data.len(), expected.len()))
                }
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        subscriber.data(),
        expected,
        "no record lost, repeated or reordered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_streams_split_hot_shards_and_merge_cold_ones_back() {
    // A 2-second scaling window instead of 60.
    let cluster = start_cluster_with(3, 3, &["--scaling-window-ms", "2000"]).await;
    let client = cluster.client();
    let created = cli_json(
        &cluster,
        &["stream", "create", "auto", "--on-demand", "--json"],
    );
    assert_eq!(created["shards"], 4);

    // ~700 records/s into shard 0 (70% of its write limit), paced, until it is split.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let client = cluster.client_of(2);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(100));
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let entries = (0..70)
                    .map(|i| v1::PutRecordsRequestEntry {
                        data: Bytes::from(format!("hot-{sent}-{i}")),
                        partition_key: "hot".into(),
                        explicit_hash_key: Some("1".into()),
                    })
                    .collect();
                if client.put_records("auto", entries).await.is_ok() {
                    sent += 70;
                }
            }
            sent
        })
    };
    let open_shards = |client: Client| async move {
        let shards = client
            .list_shards(
                "auto",
                Some(v1::ShardFilter {
                    r#type: "AT_LATEST".into(),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(shards)
    };
    let split = wait_until(Duration::from_secs(30), "the hot shard to be split", || {
        let client = client.clone();
        async move {
            let shards = open_shards(client).await?;
            if shards.len() == 5 {
                Ok(shards)
            } else {
                Err(format!("{} open shards", shards.len()))
            }
        }
    })
    .await
    .unwrap();
    let children: Vec<&v1::Shard> = split
        .iter()
        .filter(|s| s.parent_shard_id.as_deref() == Some("shardId-000000000000"))
        .collect();
    assert_eq!(children.len(), 2, "shard 0 was the hot one: {split:?}");
    stop.store(true, Ordering::Relaxed);
    assert!(producer.await.unwrap() > 0);

    // Quiet now: a cold adjacent pair merges, back to the initial 4 shards and no fewer.
    wait_until(Duration::from_secs(30), "a cold pair to be merged", || {
        let client = client.clone();
        async move {
            let shards = open_shards(client).await?;
            match shards.len() {
                4 => Ok(()),
                n if n > 4 => Err(format!("{n} open shards")),
                n => panic!("merged below the initial 4 shards: {n}"),
            }
        }
    })
    .await
    .unwrap();
    let summary = cli_json(&cluster, &["stream", "summary", "auto", "--json"]);
    assert_eq!(summary["mode"], "ON_DEMAND");
    assert_eq!(summary["open_shard_count"], 4);
}

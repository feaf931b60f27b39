//! Consumer workers sharing a stream through a lease table: balancing, failover after a crash,
//! and graceful hand-off — real `tributary consume` processes against a real cluster.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use tributary_client::{AttributeValue, Client};
use tributary_testkit::{Cluster, wait_until};

/// A short failover time keeps the tests quick; intervals derive from it (take every 1 s).
const FAILOVER_MS: u64 = 2_000;

fn worker(cluster: &Cluster, stream: &str, app: &str, id: &str) -> JsonLines {
    let failover = FAILOVER_MS.to_string();
    JsonLines::start(
        cluster,
        &[
            "consume",
            stream,
            "--app",
            app,
            "--worker-id",
            id,
            "--from",
            "trim-horizon",
            "--failover-ms",
            &failover,
        ],
    )
}

/// Lease owners and how many leases each holds (unowned leases under "").
async fn owners(client: &Client, app: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in client.scan(app).await.unwrap_or_default() {
        let owner = match lease.get("leaseOwner") {
            Some(AttributeValue::S(owner)) => owner.clone(),
            _ => String::new(),
        };
        *counts.entry(owner).or_insert(0) += 1;
    }
    counts
}

async fn wait_for_split(
    client: &Client,
    app: &str,
    want: &[usize],
    within: Duration,
) -> BTreeMap<String, usize> {
    wait_until(within, "the leases to settle", || {
        let client = client.clone();
        let want = want.to_vec();
        async move {
            let counts = owners(&client, app).await;
            let mut split: Vec<usize> = counts
                .iter()
                .filter(|(o, _)| !o.is_empty())
                .map(|(_, n)| *n)
                .collect();
            split.sort();
            if split == want {
                Ok(counts)
            } else {
                Err(format!("{counts:?}"))
            }
        }
    })
    .await
    .unwrap()
}

/// Every put record's data, and how often the workers processed each.
fn processed(workers: &[&JsonLines]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for worker in workers {
        for data in worker.data() {
            *seen.entry(data).or_insert(0) += 1;
        }
    }
    seen
}

async fn wait_all_processed(workers: &[&JsonLines], expected: &[Acked]) {
    wait_until(
        Duration::from_secs(30),
        "every record to be processed",
        || {
            let seen = processed(workers);
            let missing = expected
                .iter()
                .filter(|r| !seen.contains_key(&r.data))
                .count();
            async move {
                if missing == 0 {
                    Ok(())
                } else {
                    Err(format!("{missing} records not processed"))
                }
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_balance_fail_over_and_hand_off() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("work", 8, None).await.unwrap();
    let (first, failed) = put_records(&client, "work", "before", 200).await;
    assert!(failed.is_empty(), "{failed:?}");

    // 1. Three workers settle to 3/3/2 within three failover periods.
    let w1 = worker(&cluster, "work", "app", "w1");
    let w2 = worker(&cluster, "work", "app", "w2");
    let mut w3 = worker(&cluster, "work", "app", "w3");
    let started = Instant::now();
    wait_for_split(
        &client,
        "app",
        &[2, 3, 3],
        Duration::from_millis(3 * FAILOVER_MS + 5_000),
    )
    .await;
    eprintln!("settled 3/3/2 in {:?}", started.elapsed());
    wait_all_processed(&[&w1, &w2, &w3], &first).await;

    // 3. A graceful shutdown hands its leases off at once, with nothing processed twice. (While
    //    the workers balance, a stolen lease may redeliver what its victim had not checkpointed
    //    yet: delivery is at-least-once, as with the KCL. So only records put after the
    //    hand-off are held to exactly once.)
    let status = w3.terminate();
    assert!(status.success(), "w3 exits cleanly");
    let handoff = Instant::now();
    wait_for_split(&client, "app", &[4, 4], Duration::from_secs(5)).await;
    let handoff_time = handoff.elapsed();
    eprintln!("graceful hand-off took {handoff_time:?}");
    assert!(
        handoff_time < Duration::from_secs(2),
        "hand-off took {handoff_time:?}"
    );
    let (second, failed) = put_records(&client, "work", "after-handoff", 200).await;
    assert!(failed.is_empty());
    wait_all_processed(&[&w1, &w2, &w3], &second).await;
    let counts = processed(&[&w1, &w2, &w3]);
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(d, n)| d.starts_with("after-handoff") && **n > 1)
        .map(|(d, _)| d)
        .collect();
    assert!(
        twice.is_empty(),
        "a graceful hand-off processes nothing twice: {twice:?}"
    );

    // 2. Killing a worker (no shutdown) moves its leases within failover time + a take interval;
    //    processing resumes from the last checkpoint and every record is processed.
    let mut w2 = w2;
    w2.child.kill().unwrap();
    w2.child.wait().unwrap();
    let crash = Instant::now();
    let (third, failed) = put_records(&client, "work", "after-crash", 200).await;
    assert!(failed.is_empty());
    wait_for_split(
        &client,
        "app",
        &[8],
        Duration::from_millis(FAILOVER_MS * 3 + 5_000),
    )
    .await;
    let failover_time = crash.elapsed();
    eprintln!("failover after a crash took {failover_time:?}");
    assert!(
        failover_time < Duration::from_millis(FAILOVER_MS + FAILOVER_MS / 2 + 2_000),
        "failover took {failover_time:?}"
    );
    wait_all_processed(&[&w1, &w2, &w3], &third).await;
    let counts = processed(&[&w1, &w2, &w3]);
    let twice = counts.values().filter(|n| **n > 1).count();
    let by_dead_worker = w2.data().len();
    eprintln!(
        "{twice} records processed twice after the crash (the dead worker processed {by_dead_worker})"
    );
    assert!(
        twice <= by_dead_worker,
        "duplicates come only from the dead worker's unacknowledged work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_wait_for_their_parents_across_a_split_and_a_merge() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("lineage", 2, None).await.unwrap();
    let put_round = |round: u32| {
        let client = client.clone();
        async move {
            let entries = (0..10)
                .map(|k| tributary_client::v1::PutRecordsRequestEntry {
                    data: bytes::Bytes::from(format!("key{k}:{round}")),
                    partition_key: format!("key{k}"),
                    explicit_hash_key: None,
                })
                .collect();
            let response = client.put_records("lineage", entries).await.unwrap();
            assert_eq!(response.failed_record_count, 0);
        }
    };
    // One worker, fan-out retrieval: its output is one total order to check.
    let failover = FAILOVER_MS.to_string();
    let consumer = JsonLines::start(
        &cluster,
        &[
            "consume",
            "lineage",
            "--app",
            "ordered",
            "--worker-id",
            "only",
            "--from",
            "trim-horizon",
            "--failover-ms",
            &failover,
            "--retrieval",
            "fan-out",
        ],
    );
    for round in 0..5 {
        put_round(round).await;
    }
    let end0: u128 = client.describe_stream("lineage").await.unwrap().shards[0]
        .ending_hash_key
        .parse()
        .unwrap();
    let middle = (end0 / 2).to_string();
    cli_json(
        &cluster,
        &[
            "stream",
            "split",
            "lineage",
            "--shard",
            "0",
            "--new-starting-hash-key",
            &middle,
            "--json",
        ],
    );
    for round in 5..10 {
        put_round(round).await;
    }
    cli_json(
        &cluster,
        &[
            "stream",
            "merge",
            "lineage",
            "--shard",
            "3",
            "--adjacent-shard",
            "1",
            "--json",
        ],
    );
    for round in 10..15 {
        put_round(round).await;
    }
    wait_until(
        Duration::from_secs(30),
        "every record to be processed",
        || {
            let count = consumer.data().len();
            async move {
                if count >= 150 {
                    Ok(())
                } else {
                    Err(format!("{count} of 150"))
                }
            }
        },
    )
    .await
    .unwrap();
    // Per key, the processed order is the put order.
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for data in consumer.data() {
        let (key, round) = data.split_once(':').unwrap();
        per_key
            .entry(key.to_string())
            .or_default()
            .push(round.parse().unwrap());
    }
    for (key, rounds) in &per_key {
        assert_eq!(rounds, &(0..15).collect::<Vec<_>>(), "{key}");
    }
    // Parents finished with SHARD_END and name their children.
    let leases = client.scan("ordered").await.unwrap();
    let checkpoint = |id: &str| {
        leases
            .iter()
            .find(|l| l.get("leaseKey") == Some(&AttributeValue::S(id.to_string())))
            .and_then(|l| l.get("checkpoint").cloned())
    };
    for parent in [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000003",
    ] {
        assert_eq!(
            checkpoint(parent),
            Some(AttributeValue::S("SHARD_END".into())),
            "{parent}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_id_takes_its_leases_back() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("again", 2, None).await.unwrap();
    let (first, failed) = put_records(&client, "again", "first", 50).await;
    assert!(failed.is_empty(), "{failed:?}");
    let mut solo = worker(&cluster, "again", "app", "solo");
    wait_all_processed(&[&solo], &first).await;

    // The only worker crashes and comes back under the same id (a restarted pod, say): its
    // leases name it as owner, yet no one renews them. It must take them back and go on.
    solo.child.kill().unwrap();
    solo.child.wait().unwrap();
    let (second, failed) = put_records(&client, "again", "second", 50).await;
    assert!(failed.is_empty(), "{failed:?}");
    let restarted = Instant::now();
    let again = worker(&cluster, "again", "app", "solo");
    wait_all_processed(&[&again], &second).await;
    eprintln!(
        "the restarted worker went on after {:?}",
        restarted.elapsed()
    );
    assert!(
        restarted.elapsed() < Duration::from_millis(FAILOVER_MS * 3 + 5_000),
        "took {:?}",
        restarted.elapsed()
    );
}

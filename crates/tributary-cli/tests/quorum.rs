//! The quorum promises with real processes: one AZ down keeps writing, a lost majority turns
//! shards read-only fast, restarts converge, a full restart loses nothing, SIGTERM hands off
//! leadership, and losing the metadata quorum leaves healthy shards working.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tributary_client::{Client, v1};
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

/// Puts one record to every shard (concurrently) until all succeed; returns how long that took.
async fn time_until_every_shard_writes(
    client: &Client,
    stream: &str,
    keys: &[String],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut round = 0;
    loop {
        round += 1;
        let mut probes = tokio::task::JoinSet::new();
        for key in keys {
            let (client, stream, key) = (client.clone(), stream.to_string(), key.clone());
            let data = format!("probe-{round}-{key}");
            probes.spawn(async move { matches!(put_to(&client, &stream, &key, &data).await, Ok(r) if r.sequence_number.is_some()) });
        }
        let outcomes = probes.join_all().await;
        if outcomes.iter().all(|ok| *ok) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "writes did not resume on every shard within {limit:?}"
        );
    }
}

fn data_set(records: &[Acked]) -> BTreeSet<String> {
    records.iter().map(|r| r.data.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_recovery_and_restart() {
    let mut cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("q", 3, None).await.unwrap();
    let leaders = wait_for_leaders(&cluster, "q").await;
    let keys: Vec<String> = shard_start_keys(&client, "q").await.into_values().collect();

    let (mut acked, failed) = put_records(&client, "q", "before", 300).await;
    assert!(failed.is_empty(), "{failed:?}");

    // One AZ down: kill -9 the leader of shard 0; every shard takes writes again within 5 s.
    let first_victim = leaders["shardId-000000000000"];
    cluster.kill(first_victim).unwrap();
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    let resumed =
        time_until_every_shard_writes(&survivors, "q", &keys, Duration::from_secs(5)).await;
    eprintln!(
        "measured: writes resumed on every shard {resumed:?} after kill -9 of shard leader node {first_victim}"
    );
    // The CLI fails over past the dead endpoint.
    let dead = cluster.node(first_victim).address.clone();
    let alive = cluster.running_endpoints();
    let status = cluster
        .cli()
        .args([
            "cluster",
            "status",
            "--json",
            "--endpoint",
            &format!("{dead},{alive}"),
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let down: Vec<&serde_json::Value> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == false)
        .collect();
    assert_eq!(
        down.len(),
        1,
        "cluster status shows the killed node down: {status}"
    );
    let (more, failed) = put_records(&survivors, "q", "one-down", 150).await;
    assert!(failed.is_empty(), "{failed:?}");
    acked.extend(more);
    let read = read_all(&survivors, "q").await.unwrap();
    assert!(
        data_set(&acked).is_subset(&data_set(&read)),
        "an acknowledged record is missing with one node down"
    );
    assert_ordered(&read);

    // Majority down: wait until the last survivor has applied everything acknowledged (records
    // acknowledged within a heartbeat of the loss may otherwise still be only on the dead nodes),
    // then kill a second node.
    let second_victim = cluster
        .nodes()
        .iter()
        .find(|n| n.is_running())
        .map(|n| n.id)
        .unwrap();
    let survivor = cluster
        .nodes()
        .iter()
        .find(|n| n.is_running() && n.id != second_victim)
        .map(|n| n.id)
        .unwrap();
    let survivor_client = cluster.client_of(survivor);
    let expected = data_set(&acked);
    wait_until(
        Duration::from_secs(10),
        "the survivor to apply every acknowledged record",
        || {
            let survivor_client = survivor_client.clone();
            let expected = expected.clone();
            async move {
                let read = read_all(&survivor_client, "q")
                    .await
                    .map_err(|e| e.to_string())?;
                let missing = expected.difference(&data_set(&read)).count();
                if missing == 0 {
                    Ok(())
                } else {
                    Err(format!("{missing} records not applied yet"))
                }
            }
        },
    )
    .await
    .unwrap();
    cluster.kill(second_victim).unwrap();

    let mut attempted = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let started = Instant::now();
        let data = format!("lost-quorum-{i}");
        attempted.push(data.clone());
        let result = put_to(&survivor_client, "q", key, &data)
            .await
            .expect("the survivor answers");
        let took = started.elapsed();
        assert_eq!(
            result.error_code.as_deref(),
            Some("WRITE_QUORUM_UNAVAILABLE"),
            "{result:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "a put without quorum took {took:?}"
        );
        eprintln!("measured: put without quorum failed in {took:?}");
    }
    let read = read_all(&survivor_client, "q").await.unwrap();
    assert_eq!(
        data_set(&read)
            .difference(&expected)
            .filter(|d| !d.starts_with("probe-"))
            .count(),
        0,
        "read-only survivor shows only committed records"
    );
    assert!(
        expected.is_subset(&data_set(&read)),
        "the survivor serves every acknowledged record"
    );

    // Recovery: restart both; writes come back and replicas converge.
    cluster.start_node(first_victim).unwrap();
    cluster.start_node(second_victim).unwrap();
    time_until_every_shard_writes(&cluster.client(), "q", &keys, Duration::from_secs(20)).await;
    let (more, failed) = put_records(&cluster.client(), "q", "recovered", 90).await;
    assert!(failed.is_empty(), "{failed:?}");
    acked.extend(more);
    wait_until(Duration::from_secs(15), "all replicas to converge", || {
        let clients: Vec<Client> = (1..=3).map(|id| cluster.client_of(id)).collect();
        async move {
            let mut views = Vec::new();
            for client in &clients {
                let description = client
                    .describe_stream("q")
                    .await
                    .map_err(|e| e.to_string())?;
                views.push(
                    description
                        .shards
                        .iter()
                        .map(|s| s.latest_sequence_number.clone())
                        .collect::<Vec<_>>(),
                );
            }
            if views.windows(2).all(|w| w[0] == w[1]) {
                Ok(())
            } else {
                Err(format!("{views:?}"))
            }
        }
    })
    .await
    .unwrap();

    // A full stop and start from the data dirs loses nothing.
    for id in 1..=3 {
        let status = cluster.stop(id).await.unwrap();
        assert!(status.success(), "node {id} exited with {status}");
    }
    for id in 1..=3 {
        cluster.start_node(id).unwrap();
    }
    cluster.wait_ready().await.unwrap();
    let read = read_all(&cluster.client(), "q").await.unwrap();
    assert_ordered(&read);
    let read_set = data_set(&read);
    let missing: Vec<String> = data_set(&acked).difference(&read_set).cloned().collect();
    assert!(missing.is_empty(), "lost acknowledged records: {missing:?}");
    let allowed: BTreeSet<String> = data_set(&acked).into_iter().chain(attempted).collect();
    let unexpected: Vec<&String> = read_set
        .iter()
        .filter(|d| !allowed.contains(*d) && !d.starts_with("probe-"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "records nobody wrote: {unexpected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_to_a_healthy_replica() {
    let mut cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("handoff", 1, None).await.unwrap();
    let leaders = wait_for_leaders(&cluster, "handoff").await;
    let leader = leaders["shardId-000000000000"];
    let (acked, failed) = put_records(&client, "handoff", "before", 50).await;
    assert!(failed.is_empty());

    let status = cluster.stop(leader).await.unwrap();
    assert!(status.success(), "SIGTERM exits cleanly, got {status}");
    // Leadership moved before the process exited: a put succeeds at once, well inside the
    // 1 s minimum election timeout an unannounced loss would cost.
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    let started = Instant::now();
    let result = put_to(&survivors, "handoff", "0", "after-stop")
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(result.sequence_number.is_some(), "{result:?}");
    eprintln!("measured: first put after SIGTERM of the leader took {took:?}");
    assert!(
        took < Duration::from_millis(1000),
        "the put waited {took:?}: leadership was not handed off"
    );

    cluster.start_node(leader).unwrap();
    cluster.wait_ready().await.unwrap();
    let read = read_all(&cluster.client_of(leader), "handoff")
        .await
        .unwrap();
    assert!(data_set(&acked).is_subset(&data_set(&read)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_metadata_quorum_keeps_healthy_shards_working() {
    // Nodes 1..3 (one per AZ) are the metadata voters; 4..6 replicate metadata as learners.
    let options = ClusterOptions {
        nodes: 6,
        azs: 3,
        metadata_voters_opt: Some(3),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(BINARY, options).await.unwrap();
    let client = cluster.client();
    client.create_stream("independent", 6, None).await.unwrap();
    wait_for_leaders(&cluster, "independent").await;
    let description = client.describe_stream("independent").await.unwrap();

    cluster.kill(1).unwrap();
    cluster.kill(2).unwrap();
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();

    let started = Instant::now();
    let refused = cli(&cluster, &["stream", "create", "another", "--shards", "1"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("WRITE_QUORUM_UNAVAILABLE") && message.contains("metadata"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "admin failure took {:?}",
        started.elapsed()
    );

    let healthy: Vec<_> = description
        .shards
        .iter()
        .filter(|s| {
            s.replicas
                .iter()
                .filter(|r| r.node_id == 1 || r.node_id == 2)
                .count()
                <= 1
        })
        .collect();
    assert!(
        !healthy.is_empty(),
        "placement left no shard with a quorum outside nodes 1 and 2"
    );
    for shard in healthy {
        let result = wait_until(
            Duration::from_secs(8),
            "a put to a shard that kept its quorum",
            || {
                let survivors = survivors.clone();
                let key = shard.starting_hash_key.clone();
                async move {
                    match put_to(&survivors, "independent", &key, "still-writing").await {
                        Ok(r) if r.sequence_number.is_some() => Ok(r),
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await
        .unwrap();
        let iterator = survivors
            .get_shard_iterator(
                "independent",
                &shard.shard_id,
                "AT_SEQUENCE_NUMBER",
                result.sequence_number.as_deref(),
            )
            .await
            .unwrap();
        let records = survivors.get_records(&iterator, Some(1)).await.unwrap();
        assert_eq!(records.records[0].data.as_ref(), b"still-writing");
    }
}

/// A follower that missed 160 MiB catches up (in AppendEntries of bounded size) and forms the
/// majority with the leader once the other follower dies. openraft batches up to 300 entries
/// (here 150 MiB) per AppendEntries and gives each the heartbeat interval: sent whole, the
/// backlog timed out on every attempt and the shard stayed unwritable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_and_forms_the_majority() {
    const PUTS: usize = 320;
    const RECORDS_PER_PUT: usize = 8;
    const RECORD_BYTES: usize = 64 * 1024;
    let mut cluster = start_cluster_with(3, 3, &["--shard-limits", "off"]).await;
    let client = cluster.client();
    client.create_stream("behind", 1, None).await.unwrap();
    let leader = wait_for_leaders(&cluster, "behind").await["shardId-000000000000"];
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (laggard, other) = (followers[0], followers[1]);

    cluster.kill(laggard).unwrap();
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    let data = Bytes::from(vec![b'b'; RECORD_BYTES]);
    for put in 0..PUTS {
        let entries = (0..RECORDS_PER_PUT)
            .map(|i| v1::PutRecordsRequestEntry {
                data: data.clone(),
                partition_key: format!("{put}-{i}"),
                explicit_hash_key: None,
            })
            .collect();
        let response = survivors.put_records("behind", entries).await.unwrap();
        assert_eq!(response.failed_record_count, 0, "put {put}");
    }

    cluster.start_node(laggard).unwrap();
    cluster.wait_ready().await.unwrap();
    cluster.kill(other).unwrap();
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    let started = Instant::now();
    // About 5 s here; the limit leaves room for a slower machine.
    wait_until(
        Duration::from_secs(20),
        "a put acknowledged by the leader and the follower that was behind",
        || {
            let survivors = survivors.clone();
            async move {
                match put_to(&survivors, "behind", "0", "after").await {
                    Ok(result) if result.sequence_number.is_some() => Ok(()),
                    Ok(result) => Err(format!("{:?}", result.error_code)),
                    Err(error) => Err(error.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", cluster.logs()));
    eprintln!(
        "measured: the follower caught up on {} MiB and writes resumed after {:?}",
        PUTS * RECORDS_PER_PUT * RECORD_BYTES / (1024 * 1024),
        started.elapsed()
    );
    // Every acknowledged record is there once; the probe may have been stored more than once
    // (an attempt that timed out can still commit: at-least-once without a producer id).
    let read = read_all(&survivors, "behind").await.unwrap();
    let probes = read.iter().filter(|r| r.data == "after").count();
    assert!(probes >= 1, "the acknowledged probe is missing");
    let bulk: BTreeSet<&str> = read
        .iter()
        .filter(|r| r.data != "after")
        .map(|r| r.partition_key.as_str())
        .collect();
    assert_eq!(read.len() - probes, PUTS * RECORDS_PER_PUT);
    assert_eq!(
        bulk.len(),
        PUTS * RECORDS_PER_PUT,
        "a record is missing or doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_with_one_node_down_takes_writes() {
    let mut cluster = start_cluster(3, 3).await;
    cluster.kill(1).unwrap();
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    // Node 1 is still placed (placement does not know liveness) and is the preferred leader of
    // one shard; the other replicas must form that shard without it.
    wait_until(
        Duration::from_secs(10),
        "stream creation with one node down",
        || {
            let survivors = survivors.clone();
            async move {
                survivors
                    .create_stream("degraded", 3, None)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await
    .unwrap();
    let keys: Vec<String> = shard_start_keys(&survivors, "degraded")
        .await
        .into_values()
        .collect();
    let took =
        time_until_every_shard_writes(&survivors, "degraded", &keys, Duration::from_secs(15)).await;
    eprintln!(
        "measured: every shard of a stream created with one node down took writes after {took:?}"
    );

    cluster.start_node(1).unwrap();
    cluster.wait_ready().await.unwrap();
    let (acked, failed) = put_records(&cluster.client(), "degraded", "after", 60).await;
    assert!(failed.is_empty(), "{failed:?}");
    let node_one = cluster.client_of(1);
    let expected = data_set(&acked);
    wait_until(Duration::from_secs(10), "node 1 to catch up", || {
        let node_one = node_one.clone();
        let expected = expected.clone();
        async move {
            let read = read_all(&node_one, "degraded")
                .await
                .map_err(|e| e.to_string())?;
            if expected.is_subset(&data_set(&read)) {
                Ok(())
            } else {
                Err(format!("{} records", read.len()))
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_during_delete_drops_the_stream_data_when_back() {
    let mut cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("gone", 2, None).await.unwrap();
    wait_for_leaders(&cluster, "gone").await;
    let (_, failed) = put_records(&client, "gone", "doomed", 40).await;
    assert!(failed.is_empty(), "{failed:?}");

    cluster.kill(3).unwrap();
    Client::from_list(&cluster.running_endpoints())
        .unwrap()
        .delete_stream("gone", false)
        .await
        .unwrap();
    cluster.start_node(3).unwrap();
    cluster.wait_ready().await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "node 3 to remove the deleted stream's shards",
        || {
            let logs = cluster.node_log(3);
            async move {
                let removed = logs
                    .lines()
                    .filter(|l| l.contains("removing the data of a deleted stream's shard"))
                    .count();
                if removed == 2 {
                    Ok(())
                } else {
                    Err(format!("{removed} of 2 shards removed"))
                }
            }
        },
    )
    .await
    .unwrap();
    // The stream leaves the catalogue (RESOURCE_NOT_FOUND) on the returned node too.
    cluster
        .client_of(3)
        .wait_for_deleted("gone", Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_node_is_cut_off_moves_to_the_majority_side() {
    let options = ClusterOptions {
        fault_injection: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(BINARY, options).await.unwrap();
    let client = cluster.client();
    client.create_stream("moving", 1, None).await.unwrap();
    let leaders = wait_for_leaders(&cluster, "moving").await;
    let leader = leaders["shardId-000000000000"];
    // Clients reach every node, but the shard's leader is alone: it can commit nothing.
    cluster.partition(&[leader]).await.unwrap();
    let endpoints: Vec<String> = std::iter::once(leader)
        .chain((1..=3).filter(|id| *id != leader))
        .map(|id| cluster.node(id).address.clone())
        .collect();
    let pinned = Client::new(&endpoints).unwrap();
    let entry = |data: &str| v1::PutRecordsRequestEntry {
        data: Bytes::copy_from_slice(data.as_bytes()),
        partition_key: data.to_string(),
        explicit_hash_key: None,
    };
    let first = pinned.put_records("moving", vec![entry("first")]).await;
    let code = match &first {
        Ok(response) => response.records[0].error_code.clone().unwrap_or_default(),
        Err(error) => error.code().to_string(),
    };
    assert_eq!(code, "WRITE_QUORUM_UNAVAILABLE", "{first:?}");
    // The caller retries; the client now starts at another node, on the majority side.
    let retried = wait_until(Duration::from_secs(10), "a retried put to succeed", || {
        let pinned = pinned.clone();
        async move {
            match pinned.put_records("moving", vec![entry("retried")]).await {
                Ok(response) if response.failed_record_count == 0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    cluster.heal().await.unwrap();
    retried.unwrap();
}

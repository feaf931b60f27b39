//! Placement on a 6-node/3-AZ cluster: three replicas in three AZs per shard, replicas and
//! leaders spread evenly. Nodes joining, and nodes removed with their replicas moved.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use tributary_testkit::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_spread_replicas_and_leaders() {
    let mut cluster = start_cluster(6, 3).await;
    let client = cluster.client();
    let shard_count = 12u64;
    client
        .create_stream("spread", shard_count as u32, None)
        .await
        .expect("create");
    let leaders = wait_for_leaders(&cluster, "spread").await;

    let description = client.describe_stream("spread").await.unwrap();
    assert_eq!(description.shards.len(), shard_count as usize);
    let az_of: BTreeMap<u64, String> = cluster
        .nodes()
        .iter()
        .map(|n| (n.id, n.az.clone()))
        .collect();
    let mut replicas_per_node: BTreeMap<u64, u64> = BTreeMap::new();
    for shard in &description.shards {
        assert_eq!(shard.replicas.len(), 3, "{}", shard.shard_id);
        let azs: BTreeSet<&str> = shard
            .replicas
            .iter()
            .map(|r| az_of[&r.node_id].as_str())
            .collect();
        assert_eq!(
            azs.len(),
            3,
            "{} has replicas in 3 distinct AZs",
            shard.shard_id
        );
        for replica in &shard.replicas {
            assert_eq!(replica.az, az_of[&replica.node_id]);
            *replicas_per_node.entry(replica.node_id).or_default() += 1;
        }
    }
    let replica_cap = (shard_count * 3).div_ceil(6) + 1;
    assert_eq!(
        replicas_per_node.len(),
        6,
        "every node holds replicas: {replicas_per_node:?}"
    );
    assert!(
        replicas_per_node.values().all(|&n| n <= replica_cap),
        "{replicas_per_node:?} exceeds {replica_cap}"
    );

    let mut leaders_per_node: BTreeMap<u64, u64> = BTreeMap::new();
    for leader in leaders.values() {
        *leaders_per_node.entry(*leader).or_default() += 1;
    }
    let leader_cap = shard_count.div_ceil(6) + 1;
    assert!(
        leaders_per_node.values().all(|&n| n <= leader_cap),
        "leaders {leaders_per_node:?} exceed {leader_cap}"
    );

    // Any node accepts any put: write through every node, read everything back.
    for node in cluster.nodes() {
        let (acked, failed) = put_records(
            &cluster.client_of(node.id),
            "spread",
            &format!("via-{}", node.id),
            30,
        )
        .await;
        assert!(
            failed.is_empty(),
            "puts through node {} failed: {failed:?}",
            node.id
        );
        assert_eq!(acked.len(), 30);
    }
    let records = read_all(&client, "spread").await.unwrap();
    assert_eq!(records.len(), 180);
    assert_ordered(&records);

    // A stream created while a node is down is placed on the live nodes of its AZ instead.
    cluster.kill(4).unwrap();
    let survivors = tributary_client::Client::from_list(&cluster.running_endpoints()).unwrap();
    survivors
        .create_stream("avoids-down", 6, None)
        .await
        .expect("create with a node down");
    let description = survivors.describe_stream("avoids-down").await.unwrap();
    for shard in &description.shards {
        assert!(
            shard.replicas.iter().all(|r| r.node_id != 4),
            "{} placed on the dead node 4",
            shard.shard_id
        );
        let azs: BTreeSet<&str> = shard.replicas.iter().map(|r| r.az.as_str()).collect();
        assert_eq!(azs.len(), 3);
    }
    let (acked, failed) = put_records(&survivors, "avoids-down", "live", 60).await;
    assert!(failed.is_empty() && acked.len() == 60, "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_through_any_node_and_takes_replicas_of_new_streams() {
    let mut cluster = start_cluster(3, 3).await;
    let joined = cluster.join_node("az-1", 2).unwrap();
    cluster
        .wait_ready()
        .await
        .expect("the joined node registers");

    // Placement now spreads new shards over four nodes.
    let client = cluster.client();
    client.create_stream("grown", 8, None).await.unwrap();
    wait_for_leaders(&cluster, "grown").await;
    let description = client.describe_stream("grown").await.unwrap();
    let on_joined = description
        .shards
        .iter()
        .filter(|s| s.replicas.iter().any(|r| r.node_id == joined))
        .count();
    assert!(
        on_joined > 0,
        "node {joined} holds no replica: {description:?}"
    );
    let via_joined = cluster.client_of(joined);
    let entry = tributary_client::v1::PutRecordsRequestEntry {
        data: b"through the new node".to_vec().into(),
        partition_key: "k".to_string(),
        explicit_hash_key: None,
    };
    let put = via_joined.put_records("grown", vec![entry]).await.unwrap();
    assert_eq!(put.failed_record_count, 0, "{put:?}");

    // An id the cluster knows is refused, even with a fresh data dir: a wiped node comes back
    // under a new id.
    let dir = tempfile::tempdir().unwrap();
    let refused = node_command(2, dir.path())
        .args(["--join", &cluster.node(1).address])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("node id 2 is already known to the cluster"),
        "{message}"
    );
}

/// Records put through `client` in batches of 20 until `stop` is set; every put must succeed.
async fn keep_writing(
    client: tributary_client::Client,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<Acked>, Vec<String>) {
    let (mut acked, mut failed) = (Vec::new(), Vec::new());
    let mut round = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (ok, bad) = put_records(&client, "moving", &format!("during-{round}"), 20).await;
        acked.extend(ok);
        failed.extend(bad);
        round += 1;
    }
    (acked, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_moves_its_replicas_to_its_az_while_writes_go_on() {
    // The writer puts as fast as it can: without limits off, a fast machine goes over a shard's
    // 1,000 records a second, and throttled records are not what this test is about.
    let mut cluster = start_cluster_with(3, 3, &["--shard-limits", "off"]).await;
    let via_2 = cluster.client_of(2);
    via_2.create_stream("moving", 4, None).await.unwrap();
    wait_for_leaders(&cluster, "moving").await;
    let (mut acked, failed) = put_records(&via_2, "moving", "before", 200).await;
    assert!(failed.is_empty(), "{failed:?}");
    let joined = cluster.join_node("az-1", 2).unwrap();
    cluster.wait_ready().await.expect("the new node registers");

    // Removal is refused where it would break the AZ rule: node 2 is alone in az-2.
    let refused = via_2.remove_node(2).await.unwrap_err();
    assert_eq!(refused.code(), "RESOURCE_IN_USE", "{refused}");
    let unknown = via_2.remove_node(99).await.unwrap_err();
    assert_eq!(unknown.code(), "RESOURCE_NOT_FOUND", "{unknown}");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(keep_writing(via_2.clone(), stop.clone()));

    // An operator watches the whole removal live, through node 2 (node 1 stops hearing of the
    // cluster once it has left).
    let mut watch = JsonLines::start(
        &cluster,
        &[
            "cluster",
            "status",
            "--watch",
            "--interval-ms",
            "200",
            "--json",
            "--endpoint",
            &cluster.node(2).address,
        ],
    );

    // With the new node frozen, node 1's replicas cannot move yet: the moves wait, and show.
    cluster.pause(joined).unwrap();
    let endpoint = cluster.node(2).address.clone();
    let accepted = cli_json(
        &cluster,
        &[
            "cluster",
            "remove-node",
            "1",
            "--no-wait",
            "--json",
            "--endpoint",
            &endpoint,
        ],
    );
    assert_eq!(accepted["replicas_to_move"], 4, "{accepted}");
    wait_until(
        Duration::from_secs(20),
        "moves from node 1 to the new node",
        || {
            let via_2 = via_2.clone();
            async move {
                let status = via_2.cluster_status().await.map_err(|e| e.to_string())?;
                let moving = status
                    .moves
                    .iter()
                    .filter(|m| m.from_node == 1 && m.to_node == joined)
                    .count();
                let removing = status.nodes.iter().any(|n| n.id == 1 && n.removing);
                (moving > 0 && removing)
                    .then_some(())
                    .ok_or(format!("{status:?}"))
            }
        },
    )
    .await
    .unwrap();
    let text = stdout(&cli(
        &cluster,
        &["cluster", "status", "--endpoint", &endpoint],
    ));
    assert!(
        text.contains("MOVING STREAM") && text.contains("removing"),
        "{text}"
    );

    // The watch shows them too, while they wait.
    wait_until(
        Duration::from_secs(10),
        "the watch shows the moves",
        || async {
            let lines = watch.values();
            match lines
                .iter()
                .any(|l| l["moves"].as_array().is_some_and(|m| !m.is_empty()))
            {
                true => Ok(()),
                false => Err(format!("{} refreshes, none with moves", lines.len())),
            }
        },
    )
    .await
    .unwrap();

    // Then the new node catches up and takes every replica; the CLI waits for the end.
    cluster.resume(joined).await.unwrap();
    let mut wait = cluster.cli();
    wait.args(["cluster", "remove-node", "1", "--timeout-s", "120"])
        .args(["--endpoint", &endpoint]);
    let waited = tokio::task::spawn_blocking(move || wait.output().unwrap())
        .await
        .unwrap();
    assert!(
        waited.status.success() && stdout(&waited).contains("Node 1 has left the cluster"),
        "{}{}",
        stdout(&waited),
        stderr(&waited)
    );
    // The watch refreshed through it all: it showed moves under way, then node 1 gone.
    wait_until(
        Duration::from_secs(10),
        "the watch shows node 1 removed",
        || async {
            let lines = watch.values();
            let removed = lines.iter().position(|l| {
                l["removed_nodes"]
                    .as_array()
                    .is_some_and(|ids| ids.contains(&serde_json::json!(1)))
            });
            match removed {
                Some(_) => Ok(()),
                None => Err(format!(
                    "{} refreshes, none with node 1 removed",
                    lines.len()
                )),
            }
        },
    )
    .await
    .unwrap();
    let lines = watch.values();
    let moving = lines
        .iter()
        .position(|l| l["moves"].as_array().is_some_and(|m| !m.is_empty()))
        .expect("a refresh showed the moves under way");
    let left = lines
        .iter()
        .position(|l| {
            l["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().all(|n| n["id"] != 1))
        })
        .expect("a refresh showed node 1 gone");
    assert!(
        moving < left,
        "moves at refresh {moving}, node 1 gone at {left}"
    );
    assert!(
        watch.terminate().success(),
        "the watch stops cleanly on SIGTERM"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (during, failed) = writer.await.unwrap();
    assert!(
        failed.is_empty(),
        "puts failed while replicas moved: {failed:?}"
    );
    assert!(!during.is_empty());
    acked.extend(during);

    let status = via_2.cluster_status().await.unwrap();
    assert!(status.removed_node_ids.contains(&1), "{status:?}");
    assert!(status.nodes.iter().all(|n| n.id != 1), "{status:?}");
    let voters: BTreeSet<u64> = status
        .nodes
        .iter()
        .filter(|n| n.metadata_voter)
        .map(|n| n.id)
        .collect();
    assert_eq!(voters, BTreeSet::from([2, 3, joined]), "{status:?}");
    let description = via_2.describe_stream("moving").await.unwrap();
    for shard in &description.shards {
        let nodes: BTreeSet<u64> = shard.replicas.iter().map(|r| r.node_id).collect();
        assert_eq!(nodes, BTreeSet::from([2, 3, joined]), "{}", shard.shard_id);
        let azs: BTreeSet<&str> = shard.replicas.iter().map(|r| r.az.as_str()).collect();
        assert_eq!(azs.len(), 3);
    }

    // Node 1 goes; every acknowledged record is still there, read through the new node, and
    // writes go on without it.
    cluster.stop(1).await.unwrap();
    let (after, failed) = put_records(&via_2, "moving", "after", 100).await;
    assert!(failed.is_empty(), "{failed:?}");
    acked.extend(after);
    let records = read_all(&cluster.client_of(joined), "moving")
        .await
        .unwrap();
    assert_ordered(&records);
    let read: BTreeSet<(String, String)> = records
        .iter()
        .map(|r| (r.shard_id.clone(), r.sequence_number.to_string()))
        .collect();
    for record in &acked {
        let key = (record.shard_id.clone(), record.sequence_number.to_string());
        assert!(read.contains(&key), "acknowledged {record:?} is missing");
    }
    let read_data: BTreeSet<&str> = records.iter().map(|r| r.data.as_str()).collect();
    let acked_data: BTreeSet<&str> = acked.iter().map(|r| r.data.as_str()).collect();
    assert_eq!(
        read_data, acked_data,
        "records read that were never acknowledged"
    );

    // A removed id never comes back, not even with a fresh data dir.
    let dir = tempfile::tempdir().unwrap();
    let refused = node_command(1, dir.path())
        .args(["--join", &endpoint])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("node id 1 was removed from the cluster"),
        "{}",
        stderr(&refused)
    );
}

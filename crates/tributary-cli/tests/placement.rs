//! Placement on a 6-node/3-AZ cluster: three replicas in three AZs per shard, replicas and
//! leaders spread evenly.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

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
    let refused = std::process::Command::new(BINARY)
        .args([
            "node",
            "--id",
            "2",
            "--az",
            "az-2",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
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

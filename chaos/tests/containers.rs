//! The chaos suite on node containers: the image built from `scratch`, the container cluster's
//! handle (kill, stop, start, pause, resume, partition, heal), the quorum scenarios and a short
//! chaos run. Where no Docker engine answers, each test says it was skipped and why.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{CHAOS, tributary_binary};
use tributary_chaos::scenarios::{AZ_DOWN_RESUME_LIMIT, quorum_scenarios};
use tributary_testkit::{
    ClusterControl, ContainerCluster, ContainerOptions, docker_available, wait_until,
};

/// The tag these tests build (never the user's `tributary:dev`).
const IMAGE: &str = "tributary:chaos-test";

/// Builds the image from the binary under test; `false` (after saying why) without Docker.
async fn image_ready() -> bool {
    if let Err(why) = docker_available().await {
        println!("SKIPPED: no Docker engine here ({why}); the container tests did not run");
        return false;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(root.join("cluster/build-image.sh"))
        .env("BINARY", tributary_binary())
        .env("IMAGE", IMAGE)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cluster/build-image.sh failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

async fn start(nodes: u64) -> ContainerCluster {
    ContainerCluster::start(ContainerOptions {
        image: IMAGE.to_string(),
        nodes,
        ..ContainerOptions::default()
    })
    .await
    .unwrap()
}

/// Puts one record through `client`; whether it was acknowledged.
async fn put_ok(client: &tributary_client::Client, stream: &str, data: &str) -> bool {
    let entry = tributary_client::v1::PutRecordsRequestEntry {
        data: data.as_bytes().to_vec().into(),
        partition_key: data.to_string(),
        explicit_hash_key: None,
    };
    matches!(client.put_records(stream, vec![entry]).await, Ok(r) if r.failed_record_count == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_handle_kills_pauses_partitions_and_heals() {
    if !image_ready().await {
        return;
    }
    let mut cluster = start(3).await;
    let client = cluster.client();
    client.create_stream("handle", 1, None).await.unwrap();
    client
        .wait_for_active("handle", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(put_ok(&client, "handle", "first").await);

    // A killed node comes back with its data and rejoins.
    cluster.kill(1).await.unwrap();
    assert!(!cluster.is_up(1));
    let survivors =
        tributary_client::Client::new(&[cluster.endpoint_of(2), cluster.endpoint_of(3)]).unwrap();
    wait_until(Duration::from_secs(15), "a put with node 1 killed", || {
        let survivors = survivors.clone();
        async move {
            put_ok(&survivors, "handle", "killed")
                .await
                .then_some(())
                .ok_or_else(|| "refused".to_string())
        }
    })
    .await
    .unwrap();
    cluster.start(1).await.unwrap();
    cluster.wait_ready().await.unwrap();

    // A paused node answers nothing until resumed.
    cluster.pause(2).await.unwrap();
    let frozen = cluster
        .client_of(2)
        .with_call_timeout(Duration::from_millis(500));
    assert!(
        frozen.cluster_status().await.is_err(),
        "a paused node answered"
    );
    cluster.resume(2).await.unwrap();
    cluster.wait_ready().await.unwrap();

    // A node cut off still answers clients, but not as part of the cluster: it sees its peers
    // dead. Heal and it sees them alive again.
    cluster.partition(&[3]).await.unwrap();
    let isolated = cluster.client_of(3);
    wait_until(
        Duration::from_secs(30),
        "node 3 to see its peers dead",
        || {
            let isolated = isolated.clone();
            async move {
                let status = isolated.cluster_status().await.map_err(|e| e.to_string())?;
                let dead = status.nodes.iter().filter(|n| !n.alive).count();
                (dead >= 2).then_some(()).ok_or(format!("{status:?}"))
            }
        },
    )
    .await
    .unwrap();
    cluster.heal().await.unwrap();
    cluster.wait_ready().await.unwrap();

    // A clean stop, a start, and every record is still there.
    cluster.stop(2).await.unwrap();
    cluster.start(2).await.unwrap();
    cluster.wait_ready().await.unwrap();
    assert!(put_ok(&client, "handle", "last").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_scenarios_hold_on_containers() {
    if !image_ready().await {
        return;
    }
    let mut cluster = start(3).await;
    let measured = quorum_scenarios(&mut cluster).await.unwrap();
    println!("measured on containers: {measured:?}");
    assert!(measured.az_down_resume <= AZ_DOWN_RESUME_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_on_six_containers_holds_every_property() {
    if !image_ready().await {
        return;
    }
    let report = tempfile::tempdir().unwrap();
    let output = Command::new(CHAOS)
        .args([
            "--duration",
            "45",
            "--nemesis",
            "kill,pause,partition,az,majority,wipe",
            "--seed",
            "6",
            "--nodes",
            "6",
            "--shards",
            "6",
            "--containers",
            "--image",
            IMAGE,
        ])
        .arg("--report")
        .arg(report.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "the container chaos run failed:\n{text}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["lost"], 0);
}

#[test]
fn the_compose_file_is_valid_and_spreads_six_nodes_over_three_azs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose = root.join("cluster/compose.yaml");
    let output = match Command::new("docker-compose")
        .arg("-f")
        .arg(&compose)
        .args(["config"])
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            println!("SKIPPED: no docker-compose here ({error}); compose.yaml was not checked");
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "docker-compose rejects compose.yaml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for id in 1..=6 {
        assert!(
            text.contains(&format!("  node{id}:")),
            "node{id} missing:\n{text}"
        );
        let volume = format!("node{id}-data:/data");
        assert!(
            text.contains(&volume),
            "node{id}'s data is not on a volume:\n{text}"
        );
    }
    for az in ["az-1", "az-2", "az-3"] {
        let nodes = text.matches(&format!("tributary.az: {az}")).count();
        assert_eq!(nodes, 2, "{az} should hold two nodes:\n{text}");
    }
    assert_eq!(text.matches("healthcheck:").count(), 6, "{text}");
}

//! The command-line contract on a 3-node/3-AZ cluster: JSON shapes, placement, routing, puts from
//! arguments and stdin, gets, bad input, and the operations port.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use bytes::Bytes;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_client::v1;
use tributary_types::{HashKeyRange, hash_partition_key};

fn shard_for(description: &Value, hash_key: u128) -> String {
    description["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            let start: u128 = s["starting_hash_key"].as_str().unwrap().parse().unwrap();
            let end: u128 = s["ending_hash_key"].as_str().unwrap().parse().unwrap();
            start <= hash_key && hash_key <= end
        })
        .map(|s| s["shard_id"].as_str().unwrap().to_string())
        .expect("a shard covers every hash key")
}

async fn http_get(address: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the HTTP port");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_contract_routing_and_bad_input() {
    let cluster = start_cluster(3, 3).await;

    // cluster status --json
    let status = cli_json(&cluster, &["cluster", "status", "--json"]);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert!(node["id"].is_u64() && node["az"].is_string() && node["address"].is_string());
        assert_eq!(node["alive"], Value::Bool(true));
    }
    let azs: BTreeSet<&str> = nodes.iter().map(|n| n["az"].as_str().unwrap()).collect();
    assert_eq!(azs.len(), 3);
    assert!(status["metadata_leader"].is_u64());

    // stream create + describe --json: Kinesis' hash split, 3 replicas in 3 AZs per shard
    let created = cli(&cluster, &["stream", "create", "orders", "--shards", "3"]);
    assert!(created.status.success(), "{}", stderr(&created));
    wait_for_leaders(&cluster, "orders").await;
    let description = cli_json(&cluster, &["stream", "describe", "orders", "--json"]);
    assert_eq!(description["name"], "orders");
    assert_eq!(description["status"], "ACTIVE");
    assert_eq!(description["retention_hours"], 24);
    let shards = description["shards"].as_array().unwrap();
    let expected = HashKeyRange::split_evenly(3);
    for (i, shard) in shards.iter().enumerate() {
        assert_eq!(shard["shard_id"], format!("shardId-{i:012}"));
        assert_eq!(
            shard["starting_hash_key"],
            expected[i].start_inclusive.to_string()
        );
        assert_eq!(
            shard["ending_hash_key"],
            expected[i].end_inclusive.to_string()
        );
        assert_eq!(shard["status"], "OPEN");
        assert!(shard["parent_shard_id"].is_null() && shard["adjacent_parent_shard_id"].is_null());
        assert!(shard["ending_sequence_number"].is_null());
        assert!(shard["starting_sequence_number"].is_string());
        let replica_azs: BTreeSet<&str> = shard["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["az"].as_str().unwrap())
            .collect();
        assert_eq!(replica_azs.len(), 3, "replicas in 3 distinct AZs: {shard}");
        assert!(shard["leader"].is_u64());
    }
    assert_eq!(shards[2]["ending_hash_key"], u128::MAX.to_string());
    let listed = cli_json(&cluster, &["stream", "list", "--json"]);
    assert_eq!(listed["streams"], serde_json::json!(["orders"]));

    // put from arguments: MD5 routing and explicit hash keys
    let put = cli_json(
        &cluster,
        &[
            "put",
            "orders",
            "--partition-key",
            "customer-42",
            "first",
            "--json",
        ],
    );
    assert_eq!(
        put["shard_id"],
        shard_for(&description, hash_partition_key("customer-42").0)
    );
    let first_sequence: u128 = put["sequence_number"].as_str().unwrap().parse().unwrap();
    let low = cli_json(
        &cluster,
        &[
            "put",
            "orders",
            "--partition-key",
            "x",
            "--explicit-hash-key",
            "0",
            "low",
            "--json",
        ],
    );
    assert_eq!(low["shard_id"], "shardId-000000000000");
    let max = u128::MAX.to_string();
    let high = cli_json(
        &cluster,
        &[
            "put",
            "orders",
            "--partition-key",
            "x",
            "--explicit-hash-key",
            &max,
            "high",
            "--json",
        ],
    );
    assert_eq!(high["shard_id"], "shardId-000000000002");

    // put from stdin: one result per line, in order; a malformed line fails alone
    let mut input = String::new();
    for i in 0..20 {
        input.push_str(&format!("key-{i}\tvalue-{i}\n"));
    }
    input.push_str("no tab on this line\n");
    let mut child = cluster
        .cli()
        .args(["put", "orders", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "a failed line makes the exit status non-zero"
    );
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21);
    for (i, line) in lines.iter().take(20).enumerate() {
        assert_eq!(
            line["shard_id"],
            shard_for(&description, hash_partition_key(&format!("key-{i}")).0),
            "line {i}"
        );
    }
    assert_eq!(lines[20]["error_code"], "INVALID_ARGUMENT");

    // get --json: every record, in order per shard, with the contract's keys
    let got = cli(&cluster, &["get", "orders", "--json"]);
    assert!(got.status.success(), "{}", stderr(&got));
    let records: Vec<Value> = stdout(&got)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 23);
    let datas: BTreeSet<&str> = records
        .iter()
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    assert!(
        datas.contains("first")
            && datas.contains("low")
            && datas.contains("high")
            && datas.contains("value-19")
    );
    for record in &records {
        assert!(record["approximate_arrival_timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(record["partition_key"].is_string() && record["sequence_number"].is_string());
    }
    let parsed: Vec<Acked> = records
        .iter()
        .map(|r| Acked {
            shard_id: r["shard_id"].as_str().unwrap().to_string(),
            sequence_number: r["sequence_number"].as_str().unwrap().parse().unwrap(),
            partition_key: r["partition_key"].as_str().unwrap().to_string(),
            data: r["data"].as_str().unwrap().to_string(),
        })
        .collect();
    assert_ordered(&parsed);
    let first_shard = put["shard_id"].as_str().unwrap();
    let after = cli(
        &cluster,
        &[
            "get",
            "orders",
            "--shard",
            first_shard,
            "--from",
            &format!("at:{first_sequence}"),
            "--limit",
            "1",
        ],
    );
    let after_line: Value =
        serde_json::from_str(stdout(&after).lines().next().expect("one record")).unwrap();
    assert_eq!(after_line["data"], "first");

    // binary data comes back as data_base64
    let client = cluster.client();
    let binary = v1::PutRecordsRequestEntry {
        data: Bytes::from_static(&[0xff, 0x00, 0xfe]),
        partition_key: "bin".into(),
        explicit_hash_key: Some("0".into()),
    };
    let answer = client.put_records("orders", vec![binary]).await.unwrap();
    let sequence = answer.records[0].sequence_number.clone().unwrap();
    let got = cli(
        &cluster,
        &[
            "get",
            "orders",
            "--shard",
            "0",
            "--from",
            &format!("at:{sequence}"),
            "--limit",
            "1",
        ],
    );
    let line: Value = serde_json::from_str(stdout(&got).lines().next().unwrap()).unwrap();
    assert_eq!(line["data_base64"], "/wD+");

    // bad input: a typed code, a clear message, nothing written, the node keeps serving
    let before = read_all(&client, "orders").await.unwrap().len();
    let expect_error = |args: &[&str], code: &str| {
        let output = cli(&cluster, args);
        assert!(!output.status.success(), "{args:?} should fail");
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(all.contains(code), "{args:?} should report {code}: {all}");
    };
    expect_error(
        &["put", "missing", "--partition-key", "k", "v"],
        "RESOURCE_NOT_FOUND",
    );
    expect_error(
        &["put", "orders", "--partition-key", "", "v"],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &["put", "orders", "--partition-key", &"k".repeat(257), "v"],
        "INVALID_ARGUMENT",
    );
    let too_big = (u128::MAX).to_string() + "0";
    expect_error(
        &[
            "put",
            "orders",
            "--partition-key",
            "k",
            "--explicit-hash-key",
            &too_big,
            "v",
        ],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &[
            "put",
            "orders",
            "--partition-key",
            "k",
            "--explicit-hash-key",
            "340282366920938463463374607431768211456",
            "v",
        ],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &["get", "orders", "--shard", "0", "--from", "at:not-a-number"],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &["get", "orders", "--shard", "0", "--from", "at:12345"],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &["get", "orders", "--shard", "shardId-000000000009"],
        "RESOURCE_NOT_FOUND",
    );
    expect_error(
        &["stream", "create", "orders", "--shards", "1"],
        "RESOURCE_IN_USE",
    );
    expect_error(
        &["stream", "create", "empty", "--shards", "0"],
        "INVALID_ARGUMENT",
    );
    expect_error(
        &["stream", "create", "bad name!", "--shards", "1"],
        "INVALID_ARGUMENT",
    );
    expect_error(&["stream", "describe", "missing"], "RESOURCE_NOT_FOUND");
    let oversized = v1::PutRecordsRequestEntry {
        data: Bytes::from(vec![b'x'; 1024 * 1024]),
        partition_key: "k".into(),
        explicit_hash_key: None,
    };
    let refused = client
        .put_records("orders", vec![oversized])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "INVALID_ARGUMENT", "{refused}");
    let refused = client.put_records("orders", vec![]).await.unwrap_err();
    assert_eq!(refused.code(), "INVALID_ARGUMENT", "{refused}");
    let refused = client
        .get_records("garbage-iterator", None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "INVALID_ARGUMENT", "{refused}");
    assert_eq!(
        read_all(&client, "orders").await.unwrap().len(),
        before,
        "bad input wrote nothing"
    );
    assert!(
        cli(&cluster, &["cluster", "status"]).status.success(),
        "the node still serves"
    );

    // operations port: health and metrics
    let http = cluster.node(1).http_address.clone();
    assert!(http_get(&http, "/health").await.starts_with("HTTP/1.0 200"));
    // `tributary health` is the containers' health check: 0 for a serving node, 1 otherwise.
    let probe = cli(&cluster, &["health", "--http", &http]);
    assert!(probe.status.success(), "{}", stderr(&probe));
    assert!(stdout(&probe).contains("200"), "{}", stdout(&probe));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap().to_string();
    drop(closed);
    let probe = cli(&cluster, &["health", "--http", &nobody]);
    assert!(!probe.status.success(), "no node at {nobody}");
    let metrics = http_get(&http, "/metrics").await;
    for name in [
        "tributary_shard_incoming_records_total",
        "tributary_shard_incoming_bytes_total",
        "tributary_put_latency_seconds",
        "tributary_raft_term",
        "tributary_raft_is_leader",
        "tributary_raft_commit_index",
        "tributary_errors_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    // retention is settable within Kinesis' bounds
    let kept = cli(
        &cluster,
        &[
            "stream",
            "create",
            "kept",
            "--shards",
            "1",
            "--retention-hours",
            "48",
        ],
    );
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert_eq!(
        cli_json(&cluster, &["stream", "describe", "kept", "--json"])["retention_hours"],
        48
    );
    expect_error(
        &[
            "stream",
            "create",
            "short",
            "--shards",
            "1",
            "--retention-hours",
            "10",
        ],
        "INVALID_ARGUMENT",
    );

    // get --follow prints records put after it started
    wait_for_leaders(&cluster, "kept").await;
    let mut follower = cluster
        .cli()
        .args(["get", "kept", "--from", "latest", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let follower_out = follower.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(follower_out)
            .lines()
            .map_while(Result::ok)
        {
            let _ = line_tx.send(line);
        }
    });
    let followed = tributary_testkit::wait_until(
        std::time::Duration::from_secs(10),
        "get --follow to print a new record",
        || {
            let put = cli(
                &cluster,
                &["put", "kept", "--partition-key", "f", "followed"],
            );
            let line = line_rx
                .try_recv()
                .map_err(|e| format!("{e} (put ok: {})", put.status.success()));
            async move { line }
        },
    )
    .await
    .unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert!(followed.contains("\"data\":\"followed\""), "{followed}");

    assert!(
        cli(&cluster, &["stream", "delete", "orders"])
            .status
            .success()
    );
    expect_error(&["stream", "describe", "orders"], "RESOURCE_NOT_FOUND");
    expect_error(
        &["put", "orders", "--partition-key", "k", "v"],
        "RESOURCE_NOT_FOUND",
    );
}

/// `cluster/node.toml` documents every setting: each `tributary node` flag has its key there,
/// except the few that are flags only (secrets, the file itself, fault injection).
#[test]
fn every_node_flag_is_documented_in_cluster_node_toml() {
    const FLAG_ONLY: &[&str] = &[
        "help",
        "config",
        "kinesis-access-key",
        "fault-injection",
        "fault-cut",
        "fault-ack-before-commit",
    ];
    let help = std::process::Command::new(BINARY)
        .args(["node", "--help"])
        .output()
        .expect("the CLI runs");
    assert!(help.status.success());
    let doc = include_str!("../../../cluster/node.toml");
    let flags: BTreeSet<String> = stdout(&help)
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|word| {
            word.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect::<String>()
        })
        .filter(|flag| !flag.is_empty())
        .collect();
    assert!(flags.contains("tls-ca"), "{flags:?}");
    let undocumented: Vec<&String> = flags
        .iter()
        .filter(|flag| !FLAG_ONLY.contains(&flag.as_str()))
        .filter(|flag| !doc.contains(&format!("# {} = ", flag.replace('-', "_"))))
        .collect();
    assert!(
        undocumented.is_empty(),
        "flags missing from cluster/node.toml: {undocumented:?}"
    );
}

//! Helpers shared by the integration tests: the CLI, bulk puts and full reads through the SDK.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tributary_client::{Client, v1};
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

pub const BINARY: &str = env!("CARGO_BIN_EXE_tributary");

pub async fn start_cluster(nodes: u64, azs: u64) -> Cluster {
    start_cluster_with(nodes, azs, &[]).await
}

/// A cluster whose nodes all get `node_args` (e.g. `--retention-hour-ms 100`).
pub async fn start_cluster_with(nodes: u64, azs: u64, node_args: &[&str]) -> Cluster {
    Cluster::start(
        BINARY,
        ClusterOptions {
            nodes,
            azs,
            node_args: node_args.iter().map(ToString::to_string).collect(),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster starts")
}

/// `tributary node --id ID --az az-1 --listen 127.0.0.1:0 --data-dir DIR`, for tests of what a
/// node refuses at start; add the flags under test.
pub fn node_command(id: u64, data_dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(BINARY);
    command
        .args(["node", "--id", &id.to_string(), "--az", "az-1"])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir);
    command
}

/// Runs the CLI and returns its output.
pub fn cli(cluster: &Cluster, args: &[&str]) -> Output {
    cluster.cli().args(args).output().expect("the CLI runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Runs a CLI command that must succeed and prints one JSON document.
pub fn cli_json(cluster: &Cluster, args: &[&str]) -> Value {
    let output = cli(cluster, args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_str(stdout(&output).trim())
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", stdout(&output)))
}

/// A record as a test remembers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acked {
    pub shard_id: String,
    pub sequence_number: u128,
    pub partition_key: String,
    pub data: String,
}

/// Puts `count` records named `{prefix}-{i}` in batches of up to 100; returns the acknowledged
/// ones and, for the ones that failed (outcome unknown), their name and error.
pub async fn put_records(
    client: &Client,
    stream: &str,
    prefix: &str,
    count: usize,
) -> (Vec<Acked>, Vec<String>) {
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(100) {
        let entries = chunk
            .iter()
            .map(|name| v1::PutRecordsRequestEntry {
                data: Bytes::from(name.clone().into_bytes()),
                partition_key: name.clone(),
                explicit_hash_key: None,
            })
            .collect();
        match client.put_records(stream, entries).await {
            Ok(response) => {
                for (name, result) in chunk.iter().zip(response.records) {
                    match (result.shard_id, result.sequence_number) {
                        (Some(shard_id), Some(sequence_number)) => acked.push(Acked {
                            shard_id,
                            sequence_number: sequence_number
                                .parse()
                                .expect("decimal sequence number"),
                            partition_key: name.clone(),
                            data: name.clone(),
                        }),
                        _ => failed.push(format!(
                            "{name}: {:?} {:?}",
                            result.error_code, result.error_message
                        )),
                    }
                }
            }
            Err(error) => failed.extend(chunk.iter().map(|name| format!("{name}: {error}"))),
        }
    }
    (acked, failed)
}

/// Reads every shard of a stream from TRIM_HORIZON until caught up.
pub async fn read_all(client: &Client, stream: &str) -> anyhow::Result<Vec<Acked>> {
    let description = client.describe_stream(stream).await?;
    let mut out = Vec::new();
    for shard in description.shards {
        let mut iterator = client
            .get_shard_iterator(stream, &shard.shard_id, "TRIM_HORIZON", None)
            .await?;
        loop {
            let response = get_records_retrying(client, &iterator).await?;
            let empty = response.records.is_empty();
            for record in response.records {
                out.push(Acked {
                    shard_id: shard.shard_id.clone(),
                    sequence_number: record.sequence_number.parse()?,
                    partition_key: record.partition_key,
                    data: String::from_utf8_lossy(&record.data).to_string(),
                });
            }
            match response.next_shard_iterator {
                Some(next) if !(empty && response.millis_behind_latest == 0) => iterator = next,
                _ => break,
            }
        }
    }
    Ok(out)
}

/// GetRecords (up to 1,000 records), retried while the shard's read limit throttles it, as a
/// Kinesis consumer does.
pub async fn get_records_retrying(
    client: &Client,
    iterator: &str,
) -> Result<tributary_client::v1::GetRecordsResponse, tributary_client::ClientError> {
    loop {
        match client.get_records(iterator, Some(1000)).await {
            Err(error) if error.code() == "PROVISIONED_THROUGHPUT_EXCEEDED" => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

/// Asserts sequence numbers strictly increase within each shard, in read order.
pub fn assert_ordered(records: &[Acked]) {
    let mut last: BTreeMap<&str, u128> = BTreeMap::new();
    for record in records {
        if let Some(previous) = last.insert(&record.shard_id, record.sequence_number) {
            assert!(
                previous < record.sequence_number,
                "{} went backwards: {previous} then {}",
                record.shard_id,
                record.sequence_number
            );
        }
    }
}

/// Waits until every shard of `stream` has a leader (as seen by any node) and returns them.
pub async fn wait_for_leaders(cluster: &Cluster, stream: &str) -> BTreeMap<String, u64> {
    let clients: Vec<Client> = cluster
        .nodes()
        .iter()
        .filter(|n| n.is_running())
        .map(|n| cluster.client_of(n.id))
        .collect();
    wait_until(Duration::from_secs(20), "a leader for every shard", || {
        let clients = clients.clone();
        async move {
            let mut leaders = BTreeMap::new();
            let mut shards = 0;
            for client in &clients {
                let Ok(description) = client.describe_stream(stream).await else {
                    continue;
                };
                // Shards created and merged within one scaling never open and have no group.
                let grouped: Vec<_> = description
                    .shards
                    .into_iter()
                    .filter(|shard| !shard.replicas.is_empty())
                    .collect();
                shards = grouped.len();
                for shard in grouped {
                    if let Some(leader) = shard.leader {
                        leaders.insert(shard.shard_id, leader);
                    }
                }
            }
            if shards > 0 && leaders.len() == shards {
                Ok(leaders)
            } else {
                Err(format!("{leaders:?} of {shards} shards"))
            }
        }
    })
    .await
    .expect("every shard elects a leader")
}

/// The smallest hash key of each shard, to aim puts at a given shard.
pub async fn shard_start_keys(client: &Client, stream: &str) -> BTreeMap<String, String> {
    let description = client.describe_stream(stream).await.expect("describe");
    description
        .shards
        .into_iter()
        .map(|s| (s.shard_id, s.starting_hash_key))
        .collect()
}

/// Puts one record aimed at a shard by explicit hash key.
pub async fn put_to(
    client: &Client,
    stream: &str,
    hash_key: &str,
    data: &str,
) -> Result<v1::PutRecordsResultEntry, tributary_client::ClientError> {
    let entry = v1::PutRecordsRequestEntry {
        data: Bytes::from(data.to_string().into_bytes()),
        partition_key: data.to_string(),
        explicit_hash_key: Some(hash_key.to_string()),
    };
    let mut response = client.put_records(stream, vec![entry]).await?;
    Ok(response.records.pop().expect("one result per record"))
}

/// A long-running CLI process (`subscribe`, `consume`) whose JSON lines are collected as they
/// arrive; killed when dropped.
pub struct JsonLines {
    pub child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl JsonLines {
    pub fn start(cluster: &Cluster, args: &[&str]) -> JsonLines {
        use std::io::BufRead;
        let mut child = cluster
            .cli()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the CLI runs");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let value: Value = serde_json::from_str(&line).expect("JSON line");
                sink.lock().expect("lines lock").push(value);
            }
        });
        JsonLines { child, lines }
    }

    pub fn values(&self) -> Vec<Value> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// The `data` field of every line.
    pub fn data(&self) -> Vec<String> {
        self.values()
            .iter()
            .map(|l| l["data"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.child.wait().expect("the process exits")
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET http://address/metrics with a plain HTTP/1.1 request (the node's exporter).
pub fn metrics_of(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("metrics endpoint");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response read");
    body
}

/// The sum of a counter over all its label sets, from a node's metrics text.
pub fn counter_sum(metrics: &str, name_with_labels_prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name_with_labels_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The AWS SDK for Rust pointed at one node's Kinesis endpoint over plain HTTP, configured as a
/// user would: an endpoint URL, a region and static credentials.
pub fn kinesis_sdk(address: &str, access_key_id: &str, secret: &str) -> aws_sdk_kinesis::Client {
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{address}"))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Every file under `dir` whose bytes hold `needle` (files that vanish while the walk runs, as
/// RocksDB's do, are skipped).
pub fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

/// Waits until every node's catalogue reports the stream's encryption as `expected` (a node
/// seals what it receives by its own catalogue, as Kinesis' "within seconds").
pub async fn wait_encryption_everywhere(cluster: &Cluster, stream: &str, expected: &str) {
    for node in cluster.nodes() {
        let client = cluster.client_of(node.id);
        wait_until(
            Duration::from_secs(30),
            &format!("node {} reports {stream} as {expected}", node.id),
            || async {
                let summary = client
                    .describe_stream_summary(stream)
                    .await
                    .map_err(|e| e.to_string())?;
                if summary.encryption_type == expected && summary.stream_status == "ACTIVE" {
                    Ok(())
                } else {
                    Err(format!(
                        "{} {}",
                        summary.encryption_type, summary.stream_status
                    ))
                }
            },
        )
        .await
        .unwrap();
    }
}

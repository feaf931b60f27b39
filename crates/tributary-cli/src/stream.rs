//! `tributary cluster status` and `tributary stream create|list|describe|delete`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_client::v1;

use crate::ClientArgs;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Nodes (id, AZ, address, alive, replicas, roles), the metadata leader and replica moves
    /// under way.
    Status {
        /// Refresh until Ctrl-C or SIGTERM: the screen is redrawn on a terminal; with --json,
        /// one JSON line per refresh.
        #[arg(long)]
        watch: bool,
        /// How often --watch refreshes.
        #[arg(long, default_value_t = 2000, requires = "watch")]
        interval_ms: u64,
    },
    /// Decommission a node: its replicas move to other nodes (same AZ first; every shard keeps
    /// its replicas in distinct AZs and its majority), then it leaves the cluster for good. Waits
    /// until it has left; stop the node afterwards.
    RemoveNode {
        /// The node's id.
        id: u64,
        /// Return once the removal is accepted, with replicas still moving.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the removal carries on).
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
}

#[derive(clap::Subcommand)]
pub enum StreamCommand {
    /// Create a stream split evenly into shards and wait until it is ACTIVE.
    Create {
        name: String,
        /// The shard count of a PROVISIONED stream.
        #[arg(
            long,
            required_unless_present = "on_demand",
            conflicts_with = "on_demand"
        )]
        shards: Option<u32>,
        /// An ON_DEMAND stream (starts with 4 shards and scales itself).
        #[arg(long)]
        on_demand: bool,
        /// 24..8760; default 24.
        #[arg(long)]
        retention_hours: Option<u32>,
        /// Return once the request is accepted, with the stream still CREATING.
        #[arg(long)]
        no_wait: bool,
    },
    /// Every stream name.
    List,
    /// Shards with hash ranges, replicas, leaders and sequence ranges.
    Describe { name: String },
    /// Status, mode, retention, open shard and consumer counts.
    Summary { name: String },
    /// Delete a stream and every shard's data on every replica.
    Delete {
        name: String,
        /// Also deregister its consumers (needed when it has any).
        #[arg(long)]
        enforce_consumer_deletion: bool,
        /// Return once the request is accepted, with the stream still DELETING.
        #[arg(long)]
        no_wait: bool,
    },
    /// Split a shard in two at a hash key; waits until the stream is ACTIVE again.
    Split {
        name: String,
        #[arg(long)]
        shard: String,
        /// The first hash key of the second child (decimal).
        #[arg(long)]
        new_starting_hash_key: String,
        /// Return once the request is accepted, with the stream still UPDATING.
        #[arg(long)]
        no_wait: bool,
    },
    /// Merge two adjacent shards; waits until the stream is ACTIVE again.
    Merge {
        name: String,
        #[arg(long)]
        shard: String,
        #[arg(long)]
        adjacent_shard: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Scale to a target open shard count (½× to 2×, uniform); waits until ACTIVE again.
    Scale {
        name: String,
        #[arg(long)]
        target: u32,
        #[arg(long)]
        no_wait: bool,
    },
    /// Set the retention period (24..8760 hours); longer or shorter than now.
    Retention {
        name: String,
        #[arg(long)]
        hours: u32,
    },
    /// Switch the capacity mode.
    Mode {
        name: String,
        #[arg(value_parser = ["on-demand", "provisioned"])]
        mode: String,
    },
    /// Encrypt new records at rest with a key of the nodes' key ring (StartStreamEncryption);
    /// waits until the stream is ACTIVE again.
    StartEncryption {
        name: String,
        /// A key ring key: its name, alias/NAME, a KMS key or alias ARN; alias/aws/kinesis is
        /// the key named "default".
        #[arg(long, default_value = "alias/aws/kinesis")]
        key_id: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Store new records in clear again (StopStreamEncryption); encrypted ones stay readable.
    StopEncryption {
        name: String,
        #[arg(long, default_value = "alias/aws/kinesis")]
        key_id: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Add or overwrite tags (1..10 per call, 50 per stream).
    Tag {
        name: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Remove tags by key (missing keys are ignored).
    Untag {
        name: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// A stream's tags.
    Tags { name: String },
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

pub async fn run_cluster(command: ClusterCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        ClusterCommand::Status {
            watch: false,
            interval_ms: _,
        } => {
            let status = client.cluster_status().await?;
            if args.json {
                print_json(&status_json(&status));
            } else {
                print_status(&status);
            }
        }
        ClusterCommand::Status {
            watch: true,
            interval_ms,
        } => {
            watch_status(
                &client,
                args.json,
                Duration::from_millis(interval_ms.max(100)),
            )
            .await?
        }
        ClusterCommand::RemoveNode {
            id,
            no_wait,
            timeout_s,
        } => {
            let replicas_to_move = client.remove_node(id).await?;
            if !args.json {
                println!("Removing node {id}: {replicas_to_move} replicas to move");
            }
            if !no_wait {
                let mut last_left = None;
                let progress = |status: &v1::ClusterStatusResponse| {
                    let left = status
                        .nodes
                        .iter()
                        .find(|n| n.id == id)
                        .map(|n| n.replica_count);
                    if left != last_left && !args.json {
                        let moving = status.moves.iter().filter(|m| m.from_node == id).count();
                        if let Some(left) = left {
                            eprintln!("node {id}: {left} replicas left, {moving} moving");
                        }
                    }
                    last_left = left;
                };
                let timeout = std::time::Duration::from_secs(timeout_s);
                client.wait_for_removed(id, timeout, progress).await?;
                if !args.json {
                    println!("Node {id} has left the cluster; stop it now");
                }
            }
            if args.json {
                print_json(
                    &json!({"node_id": id, "replicas_to_move": replicas_to_move, "removed": !no_wait}),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cluster status --watch`: a refresh every `interval` until Ctrl-C or SIGTERM. A failed
/// refresh is shown and the watch goes on (the cluster may be failing over).
async fn watch_status(
    client: &tributary_client::Client,
    json: bool,
    interval: Duration,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate())?;
    let redraw = !json && std::io::stdout().is_terminal();
    loop {
        let refreshed = client.cluster_status().await;
        let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        match (&refreshed, json) {
            (Ok(status), true) => {
                let mut line = status_json(status);
                line["at"] = Value::String(at.to_string());
                println!("{line}");
            }
            (Err(error), true) => println!(
                "{}",
                json!({ "at": at.to_string(), "error": error.to_string() })
            ),
            (_, false) => {
                if redraw {
                    // Clear the screen and go home, as `watch` does.
                    print!("\x1b[2J\x1b[H");
                }
                println!(
                    "tributary cluster status at {at}, every {:.1} s (Ctrl-C to stop)\n",
                    interval.as_secs_f64()
                );
                match &refreshed {
                    Ok(status) => print_status(status),
                    Err(error) => println!("no answer: {error}"),
                }
                if !redraw {
                    println!();
                }
            }
        }
        std::io::stdout().flush()?;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

fn status_json(status: &v1::ClusterStatusResponse) -> Value {
    let nodes: Vec<Value> = status
        .nodes
        .iter()
        .map(|n| {
            json!({"id": n.id, "az": n.az, "address": n.address, "alive": n.alive,
                "removing": n.removing, "metadata_voter": n.metadata_voter,
                "replicas": n.replica_count, "shard_leaders": n.shard_leaders,
                "lag_entries": n.lag_entries})
        })
        .collect();
    let moves: Vec<Value> = status
        .moves
        .iter()
        .map(|m| {
            json!({"stream": m.stream_name, "shard_id": m.shard_id, "from": m.from_node,
                "to": m.to_node, "started_at_ms": m.started_at_ms})
        })
        .collect();
    json!({"nodes": nodes, "metadata_leader": status.metadata_leader,
        "auth": status.auth, "tls": status.tls,
        "answered_by": status.answered_by, "moves": moves,
        "removed_nodes": status.removed_node_ids})
}

fn print_status(status: &v1::ClusterStatusResponse) {
    println!(
        "auth: {}, tls: {} (node {})\n",
        if status.auth.is_empty() {
            "unknown"
        } else {
            status.auth.as_str()
        },
        if status.tls { "on" } else { "off" },
        status.answered_by
    );
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            let mut roles = Vec::new();
            if status.metadata_leader == Some(n.id) {
                roles.push("metadata leader");
            } else if n.metadata_voter {
                roles.push("metadata voter");
            }
            if n.removing {
                roles.push("removing");
            }
            vec![
                n.id.to_string(),
                n.az.clone(),
                n.address.clone(),
                alive_text(n.alive).to_string(),
                n.replica_count.to_string(),
                n.shard_leaders.to_string(),
                n.lag_entries.to_string(),
                roles.join(", "),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "AZ", "ADDRESS", "STATE", "REPLICAS", "LEADS", "LAG", "ROLE",
        ],
        &rows,
    );
    if !status.moves.is_empty() {
        println!();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let rows: Vec<Vec<String>> = status
            .moves
            .iter()
            .map(|m| {
                let seconds = (now_ms - m.started_at_ms).max(0) / 1000;
                vec![
                    m.stream_name.clone(),
                    m.shard_id.clone(),
                    m.from_node.to_string(),
                    m.to_node.to_string(),
                    format!("{seconds}s"),
                ]
            })
            .collect();
        print_table(&["MOVING STREAM", "SHARD", "FROM", "TO", "FOR"], &rows);
    }
}

fn alive_text(alive: bool) -> &'static str {
    if alive { "alive" } else { "down" }
}

pub async fn run_stream(command: StreamCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        StreamCommand::Create {
            name,
            shards,
            on_demand,
            retention_hours,
            no_wait,
        } => {
            let request = v1::CreateStreamRequest {
                stream_name: name.clone(),
                shard_count: shards.unwrap_or(0),
                retention_period_hours: retention_hours,
                stream_mode: on_demand.then(|| "ON_DEMAND".to_string()),
                ..Default::default()
            };
            client.create_stream_request(request).await?;
            if !no_wait {
                client
                    .wait_for_active(&name, tributary_client::DEFAULT_ACTIVE_WAIT)
                    .await?;
            }
            let summary = client.describe_stream_summary(&name).await?;
            if args.json {
                print_json(&json!({
                    "name": name,
                    "created": true,
                    "status": summary.stream_status,
                    "mode": summary.stream_mode,
                    "shards": summary.open_shard_count,
                }));
            } else {
                println!(
                    "created stream {name} with {} shards ({}, {})",
                    summary.open_shard_count, summary.stream_mode, summary.stream_status
                );
            }
        }
        StreamCommand::List => {
            let names = client.list_streams().await?;
            if args.json {
                print_json(&json!({"streams": names}));
            } else {
                names.iter().for_each(|name| println!("{name}"));
            }
        }
        StreamCommand::Describe { name } => {
            let description = client.describe_stream(&name).await?;
            if args.json {
                print_json(&description_json(&description));
            } else {
                print_description(&description);
            }
        }
        StreamCommand::Summary { name } => {
            let summary = client.describe_stream_summary(&name).await?;
            let value = json!({
                "name": summary.stream_name,
                "status": summary.stream_status,
                "mode": summary.stream_mode,
                "retention_hours": summary.retention_period_hours,
                "creation_timestamp": summary.stream_creation_timestamp_ms,
                "open_shard_count": summary.open_shard_count,
                "consumer_count": summary.consumer_count,
                "encryption_type": summary.encryption_type,
                "key_id": summary.key_id,
            });
            if args.json {
                print_json(&value);
            } else {
                println!(
                    "stream {}  status {}  mode {}  retention {} h  open shards {}  consumers {}  encryption {}",
                    summary.stream_name,
                    summary.stream_status,
                    summary.stream_mode,
                    summary.retention_period_hours,
                    summary.open_shard_count,
                    summary.consumer_count,
                    summary.key_id.as_deref().unwrap_or("NONE")
                );
            }
        }
        StreamCommand::Delete {
            name,
            enforce_consumer_deletion,
            no_wait,
        } => {
            client
                .delete_stream(&name, enforce_consumer_deletion)
                .await?;
            if !no_wait {
                client
                    .wait_for_deleted(&name, tributary_client::DEFAULT_ACTIVE_WAIT)
                    .await?;
            }
            if args.json {
                print_json(&json!({"name": name, "deleted": true}));
            } else {
                println!("deleted stream {name}");
            }
        }
        StreamCommand::Split {
            name,
            shard,
            new_starting_hash_key,
            no_wait,
        } => {
            client
                .split_shard(&name, &shard, &new_starting_hash_key)
                .await?;
            reshard_done(&client, args, &name, no_wait).await?;
        }
        StreamCommand::Merge {
            name,
            shard,
            adjacent_shard,
            no_wait,
        } => {
            client.merge_shards(&name, &shard, &adjacent_shard).await?;
            reshard_done(&client, args, &name, no_wait).await?;
        }
        StreamCommand::Scale {
            name,
            target,
            no_wait,
        } => {
            client.update_shard_count(&name, target).await?;
            reshard_done(&client, args, &name, no_wait).await?;
        }
        StreamCommand::Retention { name, hours } => {
            client.set_retention(&name, hours).await?;
            if args.json {
                print_json(&json!({"name": name, "retention_hours": hours}));
            } else {
                println!("stream {name} keeps records for {hours} hours");
            }
        }
        StreamCommand::Mode { name, mode } => {
            let wire = if mode == "on-demand" {
                "ON_DEMAND"
            } else {
                "PROVISIONED"
            };
            client.update_stream_mode(&name, wire).await?;
            if args.json {
                print_json(&json!({"name": name, "mode": wire}));
            } else {
                println!("stream {name} is now {wire}");
            }
        }
        StreamCommand::StartEncryption {
            name,
            key_id,
            no_wait,
        } => {
            client.start_stream_encryption(&name, &key_id).await?;
            encryption_done(&client, args, &name, no_wait).await?;
        }
        StreamCommand::StopEncryption {
            name,
            key_id,
            no_wait,
        } => {
            client.stop_stream_encryption(&name, &key_id).await?;
            encryption_done(&client, args, &name, no_wait).await?;
        }
        StreamCommand::Tag { name, tags } => {
            let count = tags.len();
            client.add_tags(&name, tags.into_iter().collect()).await?;
            if args.json {
                print_json(&json!({"name": name, "tagged": count}));
            } else {
                println!("tagged stream {name} ({count} tags)");
            }
        }
        StreamCommand::Untag { name, keys } => {
            let count = keys.len();
            client.remove_tags(&name, keys).await?;
            if args.json {
                print_json(&json!({"name": name, "untagged": count}));
            } else {
                println!("untagged stream {name} ({count} keys)");
            }
        }
        StreamCommand::Tags { name } => {
            let tags = client.list_tags(&name).await?;
            if args.json {
                let map: serde_json::Map<String, Value> = tags
                    .into_iter()
                    .map(|tag| (tag.key, Value::String(tag.value)))
                    .collect();
                print_json(&json!({"name": name, "tags": map}));
            } else {
                let rows: Vec<Vec<String>> = tags
                    .into_iter()
                    .map(|tag| vec![tag.key, tag.value])
                    .collect();
                print_table(&["KEY", "VALUE"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The stream's summary once it is ACTIVE again after a change (at once with `no_wait`).
async fn summary_after_change(
    client: &tributary_client::Client,
    name: &str,
    no_wait: bool,
) -> anyhow::Result<v1::StreamDescriptionSummary> {
    if !no_wait {
        client
            .wait_for_active(name, tributary_client::DEFAULT_ACTIVE_WAIT)
            .await?;
    }
    Ok(client.describe_stream_summary(name).await?)
}

/// Waits (unless told not to) for an encryption change to take effect and prints how new
/// records are stored.
async fn encryption_done(
    client: &tributary_client::Client,
    args: &ClientArgs,
    name: &str,
    no_wait: bool,
) -> anyhow::Result<()> {
    let summary = summary_after_change(client, name, no_wait).await?;
    if args.json {
        print_json(&json!({
            "name": name,
            "status": summary.stream_status,
            "encryption_type": summary.encryption_type,
            "key_id": summary.key_id,
        }));
    } else {
        match &summary.key_id {
            Some(key_id) => println!(
                "stream {name}: new records are encrypted with {key_id} ({})",
                summary.stream_status
            ),
            None => println!(
                "stream {name}: new records are stored unencrypted ({})",
                summary.stream_status
            ),
        }
    }
    Ok(())
}

/// Waits (unless told not to) for a reshard to finish and prints the open shards.
async fn reshard_done(
    client: &tributary_client::Client,
    args: &ClientArgs,
    name: &str,
    no_wait: bool,
) -> anyhow::Result<()> {
    let summary = summary_after_change(client, name, no_wait).await?;
    let open = client
        .list_shards(
            name,
            Some(v1::ShardFilter {
                r#type: "AT_LATEST".to_string(),
                ..Default::default()
            }),
        )
        .await?;
    if args.json {
        print_json(&json!({
            "name": name,
            "status": summary.stream_status,
            "open_shards": open.iter().map(shard_json).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "stream {name} is {} with {} open shards",
            summary.stream_status,
            open.len()
        );
        print_shards(&open);
    }
    Ok(())
}

/// `tributary shards NAME [--filter ...]`: ListShards, every page.
pub async fn run_shards(args: ShardsArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let filter_opt = match &args.filter {
        Some(text) => Some(parse_shard_filter(text)?),
        None => None,
    };
    let shards = client.list_shards(&args.stream, filter_opt).await?;
    if args.client.json {
        print_json(&json!({"shards": shards.iter().map(shard_json).collect::<Vec<_>>()}));
    } else {
        print_shards(&shards);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ShardsArgs {
    stream: String,
    /// at-latest, at-trim-horizon, from-trim-horizon (default), after-shard:ID, at-timestamp:T
    /// or from-timestamp:T (T: epoch milliseconds or RFC 3339).
    #[arg(long)]
    filter: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_shard_filter(text: &str) -> anyhow::Result<v1::ShardFilter> {
    let filter = |kind: &str| v1::ShardFilter {
        r#type: kind.to_string(),
        ..Default::default()
    };
    Ok(match text.split_once(':') {
        None => match text {
            "at-latest" => filter("AT_LATEST"),
            "at-trim-horizon" => filter("AT_TRIM_HORIZON"),
            "from-trim-horizon" => filter("FROM_TRIM_HORIZON"),
            other => anyhow::bail!("unknown --filter '{other}'"),
        },
        Some(("after-shard", id)) => v1::ShardFilter {
            shard_id: Some(id.to_string()),
            ..filter("AFTER_SHARD_ID")
        },
        Some(("at-timestamp", t)) => v1::ShardFilter {
            timestamp_ms: Some(crate::time::parse_timestamp_ms(t)?),
            ..filter("AT_TIMESTAMP")
        },
        Some(("from-timestamp", t)) => v1::ShardFilter {
            timestamp_ms: Some(crate::time::parse_timestamp_ms(t)?),
            ..filter("FROM_TIMESTAMP")
        },
        Some(_) => anyhow::bail!("unknown --filter '{text}'"),
    })
}

fn shard_json(shard: &v1::Shard) -> Value {
    json!({
        "shard_id": shard.shard_id,
        "starting_hash_key": shard.starting_hash_key,
        "ending_hash_key": shard.ending_hash_key,
        "status": shard.status,
        "parent_shard_id": shard.parent_shard_id,
        "adjacent_parent_shard_id": shard.adjacent_parent_shard_id,
        "replicas": shard.replicas.iter().map(|r| json!({"node_id": r.node_id, "az": r.az})).collect::<Vec<_>>(),
        "leader": shard.leader,
        "starting_sequence_number": shard.starting_sequence_number,
        "ending_sequence_number": shard.ending_sequence_number,
        "latest_sequence_number": shard.latest_sequence_number,
    })
}

pub fn description_json(description: &v1::StreamDescription) -> Value {
    json!({
        "name": description.stream_name,
        "status": description.stream_status,
        "retention_hours": description.retention_period_hours,
        "creation_timestamp": description.stream_creation_timestamp_ms,
        "mode": description.stream_mode,
        "encryption_type": description.encryption_type,
        "key_id": description.key_id,
        "shards": description.shards.iter().map(shard_json).collect::<Vec<_>>(),
    })
}

fn print_description(description: &v1::StreamDescription) {
    println!(
        "stream {}  status {}  mode {}  retention {} h  shards {}",
        description.stream_name,
        description.stream_status,
        description.stream_mode,
        description.retention_period_hours,
        description.shards.len()
    );
    print_shards(&description.shards);
}

fn print_shards(shards: &[v1::Shard]) {
    let rows: Vec<Vec<String>> = shards
        .iter()
        .map(|shard| {
            let replicas: Vec<String> = shard
                .replicas
                .iter()
                .map(|r| format!("{}@{}", r.node_id, r.az))
                .collect();
            vec![
                shard.shard_id.clone(),
                shard.status.clone(),
                format!("{}..{}", shard.starting_hash_key, shard.ending_hash_key),
                replicas.join(","),
                shard.leader.map_or("none".to_string(), |l| l.to_string()),
            ]
        })
        .collect();
    print_table(
        &["SHARD", "STATUS", "HASH KEYS", "REPLICAS", "LEADER"],
        &rows,
    );
}

//! `tributary cluster status` and `tributary stream create|list|describe|delete`.

use std::process::ExitCode;

use serde_json::{Value, json};
use tributary_client::v1;

use crate::ClientArgs;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Nodes (id, AZ, address, alive) and the metadata leader.
    Status,
}

#[derive(clap::Subcommand)]
pub enum StreamCommand {
    /// Create a stream split evenly into shards.
    Create {
        name: String,
        #[arg(long)]
        shards: u32,
        /// 24..8760; default 24.
        #[arg(long)]
        retention_hours: Option<u32>,
    },
    List,
    /// Shards with hash ranges, replicas, leaders and sequence ranges.
    Describe {
        name: String,
    },
    Delete {
        name: String,
    },
}

pub async fn run_cluster(command: ClusterCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        ClusterCommand::Status => {
            let status = client.cluster_status().await?;
            if args.json {
                let nodes: Vec<Value> = status
                    .nodes
                    .iter()
                    .map(
                        |n| json!({"id": n.id, "az": n.az, "address": n.address, "alive": n.alive}),
                    )
                    .collect();
                print_json(
                    &json!({"nodes": nodes, "metadata_leader": status.metadata_leader, "answered_by": status.answered_by}),
                );
            } else {
                let rows: Vec<Vec<String>> = status
                    .nodes
                    .iter()
                    .map(|n| {
                        let leader = if status.metadata_leader == Some(n.id) {
                            "metadata leader"
                        } else {
                            ""
                        };
                        vec![
                            n.id.to_string(),
                            n.az.clone(),
                            n.address.clone(),
                            alive_text(n.alive).to_string(),
                            leader.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "AZ", "ADDRESS", "STATE", "ROLE"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
            retention_hours,
        } => {
            client.create_stream(&name, shards, retention_hours).await?;
            if args.json {
                print_json(&json!({"name": name, "created": true}));
            } else {
                println!("created stream {name} with {shards} shards");
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
        StreamCommand::Delete { name } => {
            client.delete_stream(&name).await?;
            if args.json {
                print_json(&json!({"name": name, "deleted": true}));
            } else {
                println!("deleted stream {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
        "shards": description.shards.iter().map(shard_json).collect::<Vec<_>>(),
    })
}

fn print_description(description: &v1::StreamDescription) {
    println!(
        "stream {}  status {}  retention {} h  shards {}",
        description.stream_name,
        description.stream_status,
        description.retention_period_hours,
        description.shards.len()
    );
    let rows: Vec<Vec<String>> = description
        .shards
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

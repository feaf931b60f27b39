//! `tributary consumer register|deregister|describe|list`: enhanced fan-out consumers.

use std::process::ExitCode;

use serde_json::{Value, json};
use tributary_client::v1;

use crate::ClientArgs;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand)]
pub enum ConsumerCommand {
    /// Register a consumer (at most 20 per stream).
    Register { stream: String, consumer: String },
    /// Deregister a consumer.
    Deregister { stream: String, consumer: String },
    /// One consumer's status and creation time.
    Describe { stream: String, consumer: String },
    /// Every consumer of a stream.
    List { stream: String },
}

fn consumer_json(consumer: &v1::Consumer) -> Value {
    json!({
        "stream": consumer.stream_name,
        "name": consumer.consumer_name,
        "status": consumer.consumer_status,
        "creation_timestamp": consumer.consumer_creation_timestamp_ms,
    })
}

fn print_consumers(consumers: &[v1::Consumer]) {
    let rows: Vec<Vec<String>> = consumers
        .iter()
        .map(|c| {
            vec![
                c.consumer_name.clone(),
                c.consumer_status.clone(),
                c.consumer_creation_timestamp_ms.to_string(),
            ]
        })
        .collect();
    print_table(&["CONSUMER", "STATUS", "CREATED (ms)"], &rows);
}

pub async fn run(command: ConsumerCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        ConsumerCommand::Register { stream, consumer } => {
            let registered = client.register_consumer(&stream, &consumer).await?;
            if args.json {
                print_json(&consumer_json(&registered));
            } else {
                println!("registered consumer {consumer} of stream {stream}");
            }
        }
        ConsumerCommand::Deregister { stream, consumer } => {
            client.deregister_consumer(&stream, &consumer).await?;
            if args.json {
                print_json(&json!({"stream": stream, "name": consumer, "deregistered": true}));
            } else {
                println!("deregistered consumer {consumer} of stream {stream}");
            }
        }
        ConsumerCommand::Describe { stream, consumer } => {
            let described = client.describe_consumer(&stream, &consumer).await?;
            if args.json {
                print_json(&consumer_json(&described));
            } else {
                print_consumers(&[described]);
            }
        }
        ConsumerCommand::List { stream } => {
            let consumers = client.list_consumers(&stream).await?;
            if args.json {
                print_json(&json!({
                    "stream": stream,
                    "consumers": consumers.iter().map(consumer_json).collect::<Vec<_>>(),
                }));
            } else {
                print_consumers(&consumers);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tributary get`: read records as JSON lines, from one shard or all, until caught up (or forever
//! with `--follow`).

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tributary_client::{Client, v1};

use crate::ClientArgs;

/// Pause between polls of a caught-up shard while following.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(clap::Args)]
pub struct GetArgs {
    stream: String,
    /// Read one shard (shardId-000000000000 or 0); default every shard.
    #[arg(long)]
    shard: Option<String>,
    /// trim-horizon, latest, at:SEQ or after:SEQ.
    #[arg(long, default_value = "trim-horizon")]
    from: String,
    /// Stop after this many records in all.
    #[arg(long)]
    limit: Option<u64>,
    /// Keep reading new records until interrupted.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_from(from: &str) -> anyhow::Result<(&'static str, Option<String>)> {
    match from {
        "trim-horizon" => Ok(("TRIM_HORIZON", None)),
        "latest" => Ok(("LATEST", None)),
        other => match other.split_once(':') {
            Some(("at", seq)) => Ok(("AT_SEQUENCE_NUMBER", Some(seq.to_string()))),
            Some(("after", seq)) => Ok(("AFTER_SEQUENCE_NUMBER", Some(seq.to_string()))),
            _ => anyhow::bail!(
                "--from must be trim-horizon, latest, at:SEQ or after:SEQ (got '{other}')"
            ),
        },
    }
}

fn print_record(shard_id: &str, record: &v1::Record) {
    let mut line = json!({
        "shard_id": shard_id,
        "sequence_number": record.sequence_number,
        "partition_key": record.partition_key,
        "approximate_arrival_timestamp": record.approximate_arrival_timestamp_ms,
    });
    match std::str::from_utf8(&record.data) {
        Ok(text) => line["data"] = json!(text),
        Err(_) => line["data_base64"] = json!(STANDARD.encode(&record.data)),
    }
    println!("{line}");
}

struct ShardReader {
    shard_id: String,
    iterator_opt: Option<String>,
    caught_up: bool,
}

pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let (iterator_type, sequence_number_opt) = parse_from(&args.from)?;
    let shard_ids: Vec<String> = match &args.shard {
        Some(shard) => vec![shard.clone()],
        None => client
            .describe_stream(&args.stream)
            .await?
            .shards
            .into_iter()
            .map(|s| s.shard_id)
            .collect(),
    };
    let mut readers = Vec::with_capacity(shard_ids.len());
    for shard_id in shard_ids {
        let iterator = client
            .get_shard_iterator(
                &args.stream,
                &shard_id,
                iterator_type,
                sequence_number_opt.as_deref(),
            )
            .await?;
        readers.push(ShardReader {
            shard_id,
            iterator_opt: Some(iterator),
            caught_up: false,
        });
    }
    let mut remaining = args.limit.unwrap_or(u64::MAX);
    loop {
        for reader in &mut readers {
            read_until_caught_up(&client, reader, &mut remaining).await?;
            if remaining == 0 {
                return Ok(ExitCode::SUCCESS);
            }
        }
        let done = readers
            .iter()
            .all(|r| r.caught_up || r.iterator_opt.is_none());
        if done && !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if args.follow {
            tokio::time::sleep(FOLLOW_POLL_INTERVAL).await;
            readers.iter_mut().for_each(|r| r.caught_up = false);
        }
    }
}

async fn read_until_caught_up(
    client: &Client,
    reader: &mut ShardReader,
    remaining: &mut u64,
) -> anyhow::Result<()> {
    while !reader.caught_up && *remaining > 0 {
        let Some(iterator) = reader.iterator_opt.clone() else {
            return Ok(());
        };
        let limit = u32::try_from((*remaining).min(10_000)).unwrap_or(10_000);
        let response = client.get_records(&iterator, Some(limit)).await?;
        for record in &response.records {
            print_record(&reader.shard_id, record);
        }
        *remaining -= response.records.len() as u64;
        reader.caught_up = response.records.is_empty() && response.millis_behind_latest == 0;
        reader.iterator_opt = response.next_shard_iterator;
    }
    Ok(())
}

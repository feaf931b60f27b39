//! `tributary get`: read records as JSON lines, from one shard or all, until caught up (or forever
//! with `--follow`).

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tributary_client::{Client, v1};

use crate::ClientArgs;

/// Pause between polls of a caught-up shard while following (a shard serves 5 GetRecords calls
/// a second to all its readers).
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// First pause after a throttled call; doubled per throttled retry up to the maximum.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_THROTTLE_BACKOFF: Duration = Duration::from_secs(2);

#[derive(clap::Args)]
pub struct GetArgs {
    stream: String,
    /// Read one shard (shardId-000000000000 or 0); default every shard.
    #[arg(long)]
    shard: Option<String>,
    /// trim-horizon, latest, at:SEQ, after:SEQ or at-timestamp:T (T: epoch milliseconds or
    /// RFC 3339).
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

/// Where to start reading: an iterator type and its argument.
pub struct StartingPosition {
    pub iterator_type: &'static str,
    pub sequence_number_opt: Option<String>,
    pub timestamp_ms_opt: Option<u64>,
}

pub fn parse_from(from: &str) -> anyhow::Result<StartingPosition> {
    let position = |iterator_type, sequence_number_opt, timestamp_ms_opt| StartingPosition {
        iterator_type,
        sequence_number_opt,
        timestamp_ms_opt,
    };
    match from {
        "trim-horizon" => Ok(position("TRIM_HORIZON", None, None)),
        "latest" => Ok(position("LATEST", None, None)),
        other => match other.split_once(':') {
            Some(("at", seq)) => Ok(position("AT_SEQUENCE_NUMBER", Some(seq.to_string()), None)),
            Some(("after", seq)) => Ok(position(
                "AFTER_SEQUENCE_NUMBER",
                Some(seq.to_string()),
                None,
            )),
            Some(("at-timestamp", t)) => Ok(position(
                "AT_TIMESTAMP",
                None,
                Some(crate::time::parse_timestamp_ms(t)?),
            )),
            _ => anyhow::bail!(
                "--from must be trim-horizon, latest, at:SEQ, after:SEQ or at-timestamp:T (got '{other}')"
            ),
        },
    }
}

pub fn print_record(shard_id: &str, record: &v1::Record) {
    println!("{}", record_json(shard_id, record));
}

/// A record as `get` prints it.
pub fn record_json(shard_id: &str, record: &v1::Record) -> serde_json::Value {
    let mut line = json!({
        "shard_id": shard_id,
        "sequence_number": record.sequence_number,
        "partition_key": record.partition_key,
        "approximate_arrival_timestamp": record.approximate_arrival_timestamp_ms,
        "encryption_type": record.encryption_type,
    });
    match std::str::from_utf8(&record.data) {
        Ok(text) => line["data"] = json!(text),
        Err(_) => line["data_base64"] = json!(STANDARD.encode(&record.data)),
    }
    line
}

struct ShardReader {
    shard_id: String,
    iterator_opt: Option<String>,
    caught_up: bool,
}

pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let start = parse_from(&args.from)?;
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
            .shard_iterator(v1::GetShardIteratorRequest {
                stream_name: args.stream.clone(),
                shard_id: shard_id.clone(),
                shard_iterator_type: start.iterator_type.to_string(),
                starting_sequence_number: start.sequence_number_opt.clone(),
                timestamp_ms: start.timestamp_ms_opt,
            })
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
        let response = get_records_with_backoff(client, &iterator, limit).await?;
        for record in &response.records {
            print_record(&reader.shard_id, record);
        }
        *remaining -= response.records.len() as u64;
        reader.caught_up = response.records.is_empty() && response.millis_behind_latest == 0;
        reader.iterator_opt = response.next_shard_iterator;
    }
    Ok(())
}

/// GetRecords, waiting and retrying while the shard's read limit throttles the call.
async fn get_records_with_backoff(
    client: &Client,
    iterator: &str,
    limit: u32,
) -> Result<v1::GetRecordsResponse, tributary_client::ClientError> {
    let mut backoff = THROTTLE_BACKOFF;
    loop {
        match client.get_records(iterator, Some(limit)).await {
            Err(tributary_client::ClientError::Api(error))
                if error.code == tributary_client::ErrorCode::ProvisionedThroughputExceeded =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_THROTTLE_BACKOFF);
            }
            other => return other,
        }
    }
}

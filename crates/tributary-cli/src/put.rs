//! `tributary put`: one record from the arguments, or one per stdin line (PARTITION_KEY<TAB>DATA)
//! sent in PutRecords batches, with one result line per input line, in order.

use std::io::BufRead;
use std::process::ExitCode;

use bytes::Bytes;
use serde_json::json;
use tributary_client::v1::{PutRecordRequest, PutRecordsRequestEntry, PutRecordsResultEntry};
use tributary_types::{
    MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_ENTRIES, PutRecordEntry, validate_put_entry,
};

use crate::ClientArgs;

#[derive(clap::Args)]
pub struct PutArgs {
    stream: String,
    /// The record's partition key (omit to read records from stdin).
    #[arg(long)]
    partition_key: Option<String>,
    /// Route by this decimal hash key instead of the partition key's MD5.
    #[arg(long)]
    explicit_hash_key: Option<String>,
    /// With --partition-key: the sequence number of your previous record for this key; the new
    /// record numbers strictly above it (PutRecord's SequenceNumberForOrdering).
    #[arg(long, requires = "partition_key")]
    sequence_number_for_ordering: Option<String>,
    /// The record's data (UTF-8).
    data: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// One input line's outcome.
enum LineResult {
    Ok {
        shard_id: String,
        sequence_number: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

fn print_result(result: &LineResult, as_json: bool) {
    match (result, as_json) {
        (
            LineResult::Ok {
                shard_id,
                sequence_number,
            },
            true,
        ) => {
            println!(
                "{}",
                json!({"shard_id": shard_id, "sequence_number": sequence_number})
            )
        }
        (
            LineResult::Ok {
                shard_id,
                sequence_number,
            },
            false,
        ) => println!("{shard_id} {sequence_number}"),
        (LineResult::Failed { code, message }, true) => {
            println!("{}", json!({"error_code": code, "error_message": message}))
        }
        (LineResult::Failed { code, message }, false) => println!("{code} {message}"),
    }
}

fn from_entry(entry: PutRecordsResultEntry) -> LineResult {
    match (entry.shard_id, entry.sequence_number) {
        (Some(shard_id), Some(sequence_number)) => LineResult::Ok {
            shard_id,
            sequence_number,
        },
        _ => LineResult::Failed {
            code: entry
                .error_code
                .unwrap_or_else(|| "INTERNAL_FAILURE".to_string()),
            message: entry.error_message.unwrap_or_default(),
        },
    }
}

pub async fn run(args: PutArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    if let Some(partition_key) = args.partition_key {
        let data = args.data.unwrap_or_default();
        let request = PutRecordRequest {
            stream_name: args.stream.clone(),
            data: Bytes::from(data.into_bytes()),
            partition_key,
            explicit_hash_key: args.explicit_hash_key,
            sequence_number_for_ordering: args.sequence_number_for_ordering,
        };
        let result = match client.put_record(request).await {
            Ok(put) => LineResult::Ok {
                shard_id: put.shard_id,
                sequence_number: put.sequence_number,
            },
            Err(tributary_client::ClientError::Api(error)) => LineResult::Failed {
                code: error.code.to_string(),
                message: error.message,
            },
            Err(other) => return Err(other.into()),
        };
        print_result(&result, args.client.json);
        return Ok(if matches!(result, LineResult::Ok { .. }) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if args.data.is_some() {
        anyhow::bail!("DATA needs --partition-key; without it records are read from stdin");
    }

    // Lines are read, checked and sent in batches; results print in input order.
    let mut any_failed = false;
    let mut pending: Vec<Result<PutRecordsRequestEntry, LineResult>> = Vec::new();
    let mut pending_bytes = 0usize;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        let parsed = parse_line(&line);
        let size = parsed
            .as_ref()
            .map_or(0, |e| e.data.len() + e.partition_key.len());
        let batch_full = pending.len() >= MAX_PUT_RECORDS_ENTRIES
            || pending_bytes + size > MAX_PUT_RECORDS_BYTES;
        if batch_full {
            any_failed |= flush(
                &client,
                &args.stream,
                std::mem::take(&mut pending),
                args.client.json,
            )
            .await?;
            pending_bytes = 0;
        }
        pending_bytes += size;
        pending.push(parsed);
    }
    any_failed |= flush(&client, &args.stream, pending, args.client.json).await?;
    Ok(if any_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_line(line: &str) -> Result<PutRecordsRequestEntry, LineResult> {
    let Some((partition_key, data)) = line.split_once('\t') else {
        return Err(LineResult::Failed {
            code: "INVALID_ARGUMENT".to_string(),
            message: "expected PARTITION_KEY<TAB>DATA".to_string(),
        });
    };
    let entry = PutRecordEntry {
        partition_key: partition_key.to_string(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        explicit_hash_key: None,
    };
    validate_put_entry(&entry).map_err(|e| LineResult::Failed {
        code: e.code.to_string(),
        message: e.message,
    })?;
    Ok(PutRecordsRequestEntry {
        data: entry.data,
        partition_key: entry.partition_key,
        explicit_hash_key: None,
    })
}

/// Sends the valid lines of a batch and prints every line's result; returns whether any failed.
async fn flush(
    client: &tributary_client::Client,
    stream: &str,
    lines: Vec<Result<PutRecordsRequestEntry, LineResult>>,
    as_json: bool,
) -> anyhow::Result<bool> {
    if lines.is_empty() {
        return Ok(false);
    }
    let entries: Vec<PutRecordsRequestEntry> = lines
        .iter()
        .filter_map(|l| l.as_ref().ok().cloned())
        .collect();
    let mut answers = if entries.is_empty() {
        Vec::new().into_iter()
    } else {
        client
            .put_records(stream, entries)
            .await?
            .records
            .into_iter()
    };
    let mut any_failed = false;
    for line in lines {
        let result = match line {
            Ok(_) => from_entry(answers.next().unwrap_or_default()),
            Err(failed) => failed,
        };
        any_failed |= matches!(result, LineResult::Failed { .. });
        print_result(&result, as_json);
    }
    Ok(any_failed)
}

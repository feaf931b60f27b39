//! `tributary subscribe`: enhanced fan-out. Subscribes a registered consumer to shards and prints
//! records as JSON lines (as `get` does) the moment they are pushed. A subscription that ends
//! (after 5 minutes, a leader change, a node stopping) is renewed from its continuation sequence
//! number, so nothing is skipped or repeated; at a closed shard's end its children are followed
//! once all their parents are read, keeping each key's records in order across reshards.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;
use tributary_client::{Client, ClientError, ErrorCode, v1};

use crate::ClientArgs;
use crate::get::print_record;

/// Pause before renewing a subscription that ended with an error.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);

#[derive(clap::Args)]
pub struct SubscribeArgs {
    stream: String,
    /// The registered consumer (`tributary consumer register`).
    #[arg(long)]
    consumer: String,
    /// One shard (and its children); default every shard.
    #[arg(long)]
    shard: Option<String>,
    /// trim-horizon, latest (default), at:SEQ, after:SEQ (with --shard) or at-timestamp:T.
    #[arg(long, default_value = "latest")]
    from: String,
    /// Stop after this many records in all.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

/// What a shard's subscription task reports.
enum Report {
    Records(String, Vec<v1::Record>),
    /// The shard is closed and read to its end.
    Ended(String, Vec<v1::ChildShard>),
    Failed(ClientError),
}

pub async fn run(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let start = crate::get::parse_from(&args.from)?;
    let position = v1::StartingPosition {
        r#type: start.iterator_type.to_string(),
        sequence_number: start.sequence_number_opt.clone(),
        timestamp_ms: start.timestamp_ms_opt,
    };
    let shards: Vec<String> = match &args.shard {
        Some(shard) => vec![shard.clone()],
        None => {
            if start.sequence_number_opt.is_some() {
                anyhow::bail!("--from at:SEQ and after:SEQ need --shard");
            }
            // Where the lineage starts for this position: the oldest shards, the open ones, or
            // those open at the timestamp.
            let filter = match start.timestamp_ms_opt {
                Some(t) => v1::ShardFilter {
                    r#type: "AT_TIMESTAMP".into(),
                    timestamp_ms: Some(t),
                    ..Default::default()
                },
                None if start.iterator_type == "LATEST" => v1::ShardFilter {
                    r#type: "AT_LATEST".into(),
                    ..Default::default()
                },
                None => v1::ShardFilter {
                    r#type: "AT_TRIM_HORIZON".into(),
                    ..Default::default()
                },
            };
            client
                .list_shards(&args.stream, Some(filter))
                .await?
                .into_iter()
                .map(|shard| shard.shard_id)
                .collect()
        }
    };
    let (reports_tx, mut reports) = mpsc::channel(64);
    for shard in shards {
        spawn_shard(&client, &args, shard, position.clone(), reports_tx.clone());
    }
    let mut remaining = args.limit.unwrap_or(u64::MAX);
    let mut ended: BTreeSet<String> = BTreeSet::new();
    let mut started_children: BTreeSet<String> = BTreeSet::new();
    let mut waiting: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(report) = reports.recv().await {
        match report {
            Report::Records(shard, records) => {
                for record in records
                    .iter()
                    .take(remaining.min(usize::MAX as u64) as usize)
                {
                    print_record(&shard, record);
                }
                remaining = remaining.saturating_sub(records.len() as u64);
                if remaining == 0 {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Report::Ended(shard, children) => {
                ended.insert(shard);
                for child in children {
                    waiting.insert(child.shard_id, child.parent_shards);
                }
                let ready: Vec<String> = waiting
                    .iter()
                    .filter(|(child, parents)| {
                        !started_children.contains(*child)
                            && parents.iter().all(|p| ended.contains(p))
                    })
                    .map(|(child, _)| child.clone())
                    .collect();
                for child in ready {
                    started_children.insert(child.clone());
                    let from_start = v1::StartingPosition {
                        r#type: "TRIM_HORIZON".into(),
                        ..Default::default()
                    };
                    spawn_shard(&client, &args, child, from_start, reports_tx.clone());
                }
            }
            Report::Failed(error) => return Err(error.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn spawn_shard(
    client: &Client,
    args: &SubscribeArgs,
    shard: String,
    position: v1::StartingPosition,
    reports: mpsc::Sender<Report>,
) {
    let client = client.clone();
    let request = v1::SubscribeToShardRequest {
        stream_name: args.stream.clone(),
        consumer_name: args.consumer.clone(),
        shard_id: shard.clone(),
        starting_position: Some(position),
    };
    tokio::spawn(async move {
        let report = follow_shard(&client, request, &reports).await;
        let _ = reports.send(report).await;
    });
}

/// Subscribes to one shard, renewing the subscription from its continuation, until the shard
/// ends or an error that retrying cannot fix.
async fn follow_shard(
    client: &Client,
    mut request: v1::SubscribeToShardRequest,
    reports: &mpsc::Sender<Report>,
) -> Report {
    let shard = request.shard_id.clone();
    loop {
        let ended_with = match client.subscribe_to_shard(request.clone()).await {
            Ok(mut events) => loop {
                match events.message().await {
                    Ok(Some(event)) => {
                        if !event.records.is_empty() {
                            let records = Report::Records(shard.clone(), event.records);
                            if reports.send(records).await.is_err() {
                                return Report::Ended(shard, Vec::new());
                            }
                        }
                        match event.continuation_sequence_number {
                            Some(continuation) => {
                                request.starting_position = Some(v1::StartingPosition {
                                    r#type: "AT_SEQUENCE_NUMBER".into(),
                                    sequence_number: Some(continuation),
                                    timestamp_ms: None,
                                })
                            }
                            None => return Report::Ended(shard, event.child_shards),
                        }
                    }
                    // The subscription's lifetime is over: renew at once.
                    Ok(None) => break None,
                    Err(status) => {
                        break Some(ClientError::Api(tributary_client::error_from_status(
                            &status,
                        )));
                    }
                }
            },
            Err(error) => Some(error),
        };
        match ended_with {
            Some(ClientError::Api(error)) if !retryable(error.code) => {
                return Report::Failed(ClientError::Api(error));
            }
            Some(_) => tokio::time::sleep(RESUBSCRIBE_BACKOFF).await,
            None => {}
        }
    }
}

/// RESOURCE_IN_USE (another subscriber of this consumer took the shard over) is final: two
/// subscribers must not take a shard from each other forever.
fn retryable(code: ErrorCode) -> bool {
    code.is_retryable()
}

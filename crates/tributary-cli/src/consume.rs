//! `tributary consume`: a consumer worker (lease tables, like a KCL application). It prints every
//! record it processes as a JSON line (the `get` shape plus `worker_id`), checkpoints after each
//! batch, and on SIGTERM or Ctrl-C checkpoints and hands its leases off at once. Start several
//! with the same `--app` and they share the stream's shards.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tributary_client::consumer::{
    Checkpointer, InitialPosition, ProcessorFactory, Retrieval, ShardRecordProcessor, UserRecord,
    Worker, WorkerConfig,
};
use tributary_client::v1;

use crate::ClientArgs;

#[derive(clap::Args)]
pub struct ConsumeArgs {
    stream: String,
    /// The application: names the lease table (created if missing).
    #[arg(long)]
    app: String,
    /// This worker's id (default: hostname-pid).
    #[arg(long)]
    worker_id: Option<String>,
    /// Where shards without a checkpoint start: trim-horizon, latest (default) or
    /// at-timestamp:T.
    #[arg(long, default_value = "latest")]
    from: String,
    /// A lease not renewed for this long moves to another worker (default 10000).
    #[arg(long, default_value_t = 10_000)]
    failover_ms: u64,
    /// The most leases this worker holds.
    #[arg(long)]
    max_leases: Option<usize>,
    /// polling (GetRecords, default) or fan-out (SubscribeToShard as consumer --app).
    #[arg(long, default_value = "polling", value_parser = ["polling", "fan-out"])]
    retrieval: String,
    #[command(flatten)]
    client: ClientArgs,
}

struct Printer {
    worker_id: String,
    shard_id: String,
}

impl ShardRecordProcessor for Printer {
    async fn initialize(&mut self, shard_id: &str) {
        self.shard_id = shard_id.to_string();
    }

    async fn process_records(
        &mut self,
        records: Vec<UserRecord>,
        _millis_behind_latest: u64,
        checkpointer: &Checkpointer,
    ) {
        for record in &records {
            let stored = v1::Record {
                sequence_number: record.sequence_number.clone(),
                approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
                data: record.data.clone(),
                partition_key: record.partition_key.clone(),
                encryption_type: record.encryption_type.clone(),
            };
            let mut line = crate::get::record_json(&self.shard_id, &stored);
            if record.is_aggregated() {
                line["sub_sequence_number"] = json!(record.sub_sequence_number);
            }
            line["worker_id"] = json!(self.worker_id);
            println!("{line}");
        }
        if let Some(last) = records.last()
            && let Err(error) = checkpointer.checkpoint_record(last).await
        {
            eprintln!("{}: checkpoint failed: {error}", self.shard_id);
        }
    }

    async fn lease_lost(&mut self) {}

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        if let Err(error) = checkpointer.checkpoint_shard_end().await {
            eprintln!("{}: SHARD_END checkpoint failed: {error}", self.shard_id);
        }
    }

    async fn shutdown_requested(&mut self, _checkpointer: &Checkpointer) {}
}

struct Printers {
    worker_id: String,
}

impl ProcessorFactory for Printers {
    type Processor = Printer;

    fn create(&self) -> Printer {
        Printer {
            worker_id: self.worker_id.clone(),
            shard_id: String::new(),
        }
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let start = crate::get::parse_from(&args.from)?;
    let initial_position = match (start.iterator_type, start.timestamp_ms_opt) {
        ("TRIM_HORIZON", _) => InitialPosition::TrimHorizon,
        ("LATEST", _) => InitialPosition::Latest,
        (_, Some(t)) => InitialPosition::AtTimestamp(t),
        _ => anyhow::bail!("--from must be trim-horizon, latest or at-timestamp:T"),
    };
    let mut config = WorkerConfig::new(&args.app, &args.stream, &worker_id);
    config.initial_position = initial_position;
    config.failover_time = Duration::from_millis(args.failover_ms.max(300));
    config.max_leases = args.max_leases.unwrap_or(usize::MAX).max(1);
    config.retrieval = if args.retrieval == "fan-out" {
        Retrieval::FanOut
    } else {
        Retrieval::Polling
    };
    let worker = Worker::new(client, config, Printers { worker_id });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stop_tx.send_replace(true);
    });
    worker.run(stop_rx).await?;
    Ok(ExitCode::SUCCESS)
}

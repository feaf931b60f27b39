//! `tributary-bench`: named benchmark scenarios against a running cluster (`produce`), and
//! `suite`, which starts a local 3-node/3-AZ cluster (throughput limits off, durable acks on) and
//! runs the standard scenarios, writing `results.json` and `results.md`.
//!
//! Latency is put → acknowledgement of each record through the producer (its linger included:
//! `--linger-ms`, default 0 here), recorded in an HDR histogram.
//!
//! The suite also runs the peer the targets are set against, NATS JetStream (`nats`), in the
//! same run, and checks each target.

mod nats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tributary_client::Client;
use tributary_client::producer::{Producer, ProducerConfig};

#[derive(Parser)]
#[command(name = "tributary-bench", about = "Tributary's benchmark scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Put records as fast as allowed (or at --rate) and report throughput and latency.
    Produce(ProduceArgs),
    /// Start a local 3-node cluster, and SIGKILL a shard's leader under load, --runs times:
    /// how long until puts succeed again.
    Failover {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Start a local 3-node cluster, write --mib MiB into --shards shards, then read everything
    /// from TRIM_HORIZON (one reader per shard) and report the read rate.
    Catchup {
        #[arg(long, default_value_t = 256)]
        mib: usize,
        #[arg(long, default_value_t = 3)]
        shards: u32,
        #[arg(long, default_value_t = 10 * 1024)]
        record_size: usize,
        #[arg(long)]
        json: bool,
    },
    /// Start a local 3-node cluster; put a record every --interval-ms for --duration seconds and
    /// measure put → consumer latency with polling GetRecords and with fan-out.
    E2e {
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// Start a local 3-node cluster and run the standard scenarios, then the peer's (NATS
    /// JetStream) and the targets against it.
    Suite {
        /// Where results.json and results.md go.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// Seconds per scenario.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[command(flatten)]
        peer: PeerArgs,
        /// Leader kills in the failover scenario.
        #[arg(long, default_value_t = 10)]
        failover_runs: usize,
    },
    /// Start three local nats-servers (JetStream, 3-replica file stream) and run the peer's
    /// scenarios on them alone.
    Peer {
        #[command(flatten)]
        peer: PeerArgs,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Clone)]
struct PeerArgs {
    /// The nats-server binary (default: `nats-server` on PATH).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Run without the peer (the suite then checks no target against it).
    #[arg(long)]
    no_peer: bool,
}

impl PeerArgs {
    fn binary_opt(&self) -> anyhow::Result<Option<PathBuf>> {
        if self.no_peer {
            return Ok(None);
        }
        match &self.nats_server {
            Some(path) => Ok(Some(path.clone())),
            None => nats::find_server().map(Some),
        }
    }
}

#[derive(clap::Args, Clone)]
struct ProduceArgs {
    #[arg(long, env = "TRIBUTARY_ENDPOINT", default_value = "127.0.0.1:7101")]
    endpoint: String,
    #[arg(long)]
    stream: String,
    /// Create the stream first (with --shards).
    #[arg(long)]
    create: bool,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Target records/s over all producers (open loop); default: as fast as --in-flight allows.
    #[arg(long)]
    rate: Option<u64>,
    /// Records each producer keeps unacknowledged.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Pack small records into KPL aggregated records (the producer's `aggregate`).
    #[arg(long)]
    aggregate: bool,
    /// The producer's linger time.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Produce(args) => {
            let report = produce(&args).await?;
            print_report(&args, &report);
        }
        Command::Suite {
            out,
            duration,
            peer,
            failover_runs,
        } => suite(&out, duration, peer.binary_opt()?, failover_runs).await?,
        Command::Peer {
            peer,
            duration,
            json,
        } => {
            let binary = peer
                .binary_opt()?
                .context("--no-peer leaves nothing to run")?;
            for (name, report) in nats::run(&binary, Duration::from_secs(duration)).await? {
                if json {
                    println!("{}", json!({"scenario": name, "result": report}));
                } else {
                    println!("nats {name}: {}", summary_line(&report));
                }
            }
        }
        Command::Catchup {
            mib,
            shards,
            record_size,
            json,
        } => {
            let report = catchup(mib, shards, record_size).await?;
            if json {
                println!("{report}");
            } else {
                println!(
                    "read {:.0} MiB from TRIM_HORIZON in {:.2} s: {:.1} MiB/s ({:.0} records/s)",
                    num(&report, "mib"),
                    num(&report, "seconds"),
                    num(&report, "mib_per_s"),
                    num(&report, "records_per_s"),
                );
            }
        }
        Command::E2e {
            duration,
            interval_ms,
            json,
        } => {
            let report = e2e(duration, interval_ms).await?;
            if json {
                println!("{report}");
            } else {
                for mode in ["polling", "fan_out"] {
                    println!(
                        "{mode}: put -> consumer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} records)",
                        num(&report[mode], "p50_ms"),
                        num(&report[mode], "p99_ms"),
                        num(&report[mode], "max_ms"),
                        report[mode]["records"],
                    );
                }
            }
        }
        Command::Failover { runs, json } => {
            let report = failover(runs).await?;
            if json {
                println!("{report}");
            } else {
                println!(
                    "puts succeed again after a leader's SIGKILL: median {:.0} ms, max {:.0} ms over {runs} runs",
                    num(&report, "median_ms"),
                    num(&report, "max_ms"),
                );
            }
        }
    }
    Ok(())
}

fn print_report(args: &ProduceArgs, report: &Value) {
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} producers, {} B records: {}",
            args.producers,
            args.record_size,
            summary_line(report)
        );
    }
}

/// A field of a report as a number (0 when absent).
fn num(report: &Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or(0.0)
}

/// A produce report's figures: records/s, MiB/s, p50, p90, p99, p99.9 and max (ms).
fn figures(report: &Value) -> [f64; 7] {
    [
        "records_per_s",
        "mib_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
    ]
    .map(|key| num(report, key))
}

/// Throughput and latency of a produce report on one line.
fn summary_line(report: &Value) -> String {
    let [rate, mib, p50, p90, p99, p999, max] = figures(report);
    format!(
        "{rate:.0} records/s, {mib:.1} MiB/s; put->ack p50 {p50:.2} ms, p90 {p90:.2}, p99 {p99:.2}, p99.9 {p999:.2}, max {max:.2}; {} errors",
        report["errors"]
    )
}

/// Bytes of pseudo-random data every record's data is sliced from.
const PAYLOAD_POOL_BYTES: usize = 4 * 1024 * 1024;
/// Gap between consecutive records' slices (a prime, so slices drift through the pool).
const PAYLOAD_STRIDE_GAP: usize = 4099;

/// Record data: slices of one pseudo-random buffer, no two records near each other sharing
/// bytes, so compression gains nothing — as with real, varied data. (Records of one repeated
/// byte let RocksDB's LZ4 shrink them ~100× and flattered every figure.)
pub(crate) struct Payloads {
    pool: Bytes,
    size: usize,
    offset: usize,
}

impl Payloads {
    /// Records of `size` bytes; `stream_index` starts each producer elsewhere in the pool.
    pub(crate) fn new(size: usize, stream_index: usize) -> Payloads {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ stream_index as u64;
        let mut pool = Vec::with_capacity(PAYLOAD_POOL_BYTES + size + 8);
        while pool.len() < PAYLOAD_POOL_BYTES + size {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            pool.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Payloads {
            pool: Bytes::from(pool),
            size,
            offset: (stream_index * 7919) % PAYLOAD_POOL_BYTES,
        }
    }

    pub(crate) fn next(&mut self) -> Bytes {
        let data = self.pool.slice(self.offset..self.offset + self.size);
        self.offset = (self.offset + self.size + PAYLOAD_STRIDE_GAP) % PAYLOAD_POOL_BYTES;
        data
    }
}

/// The produce report's JSON object (the command contract's keys).
fn report(
    records: u64,
    errors: u64,
    record_size: usize,
    elapsed_s: f64,
    histogram: &Histogram<u64>,
) -> Value {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "records": records,
        "records_per_s": records as f64 / elapsed_s,
        "mib_per_s": records as f64 * record_size as f64 / elapsed_s / (1024.0 * 1024.0),
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": histogram.max() as f64 / 1000.0,
        "errors": errors,
    })
}

async fn produce(args: &ProduceArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.producers > 0 && args.in_flight > 0,
        "--producers and --in-flight must be positive"
    );
    let client = Client::from_list(&args.endpoint)?;
    if args.create {
        client
            .create_stream(&args.stream, args.shards, None)
            .await
            .context("creating the stream")?;
    }
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent_total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for producer_index in 0..args.producers {
        let config = ProducerConfig {
            linger: Duration::from_millis(args.linger_ms),
            aggregate: args.aggregate,
            ..ProducerConfig::default()
        };
        let producer = Arc::new(Producer::new(client.clone(), &args.stream, config));
        let (histogram, errors, acked) = (histogram.clone(), errors.clone(), acked.clone());
        let sent_total = sent_total.clone();
        let window = Arc::new(Semaphore::new(args.in_flight));
        let mut payloads = Payloads::new(args.record_size, producer_index);
        let per_producer_rate = args
            .rate
            .map(|r| (r as f64 / args.producers as f64).max(1.0));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                if let Some(rate) = per_producer_rate {
                    let due = started + Duration::from_secs_f64(sent as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let permit = window.clone().acquire_owned().await.expect("window open");
                let key = format!("p{producer_index}-{sent}");
                let put_at = Instant::now();
                let receipt = match producer.put(&key, payloads.next(), None).await {
                    Ok(receipt) => receipt,
                    Err(_) => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                };
                sent += 1;
                sent_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (histogram, errors, acked) = (histogram.clone(), errors.clone(), acked.clone());
                tokio::spawn(async move {
                    match receipt.await {
                        Ok(_) => {
                            let micros = put_at.elapsed().as_micros() as u64;
                            let _ = histogram.lock().await.record(micros.max(1));
                            acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    drop(permit);
                });
            }
            if let Ok(producer) = Arc::try_unwrap(producer) {
                producer.close().await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    // Receipts of the last records resolve once their producers closed.
    let window_close = Instant::now() + Duration::from_secs(30);
    while Instant::now() < window_close
        && acked.load(std::sync::atomic::Ordering::Relaxed)
            + errors.load(std::sync::atomic::Ordering::Relaxed)
            < sent_total.load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let histogram = histogram.lock().await;
    Ok(report(
        acked.load(std::sync::atomic::Ordering::Relaxed),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        args.record_size,
        elapsed,
        &histogram,
    ))
}

/// A local 3-node/3-AZ cluster from the testkit with per-shard limits off.
async fn local_cluster() -> anyhow::Result<tributary_testkit::Cluster> {
    let binary = std::env::current_exe()?
        .parent()
        .context("the bench binary's directory")?
        .join("tributary");
    anyhow::ensure!(
        binary.exists(),
        "build the tributary binary first (cargo build --release)"
    );
    tributary_testkit::Cluster::start(
        &binary,
        tributary_testkit::ClusterOptions {
            node_args: vec!["--shard-limits".into(), "off".into()],
            ..Default::default()
        },
    )
    .await
}

/// A failover that takes this long is reported as a failure, not waited out.
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(60);

/// Kills the leader of a one-shard stream while a client keeps putting, and measures from the
/// kill to the first acknowledged put; the node is restarted between runs.
async fn failover(runs: usize) -> anyhow::Result<Value> {
    anyhow::ensure!(runs > 0, "--runs must be positive");
    let mut cluster = local_cluster().await?;
    Client::from_list(&cluster.endpoints())?
        .create_stream("failover", 1, None)
        .await?;
    // Heavy load all along: a producer keeps 1,000 records of 1 KiB in flight on the same
    // shard, retrying through each failover.
    let load = Arc::new(Producer::new(
        Client::from_list(&cluster.endpoints())?,
        "failover",
        ProducerConfig {
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        },
    ));
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load_task = {
        let (load, loading) = (load.clone(), loading.clone());
        tokio::spawn(async move {
            let window = Arc::new(Semaphore::new(1_000));
            let mut payloads = Payloads::new(1024, 0);
            let mut n = 0u64;
            while loading.load(std::sync::atomic::Ordering::Relaxed) {
                let permit = window.clone().acquire_owned().await.expect("window open");
                n += 1;
                let Ok(receipt) = load.put(&format!("load-{n}"), payloads.next(), None).await
                else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = receipt.await;
                    drop(permit);
                });
            }
        })
    };
    let mut times = Vec::with_capacity(runs);
    // A run faster than the shortest election timeout killed a node that had just handed its
    // leadership over (the control plane balances leaders): it timed nothing and is repeated.
    let no_election = Duration::from_millis(tributary_raft::config::ELECTION_TIMEOUT_MIN_MS);
    let mut repeated = 0usize;
    while times.len() < runs {
        let client =
            Client::from_list(&cluster.endpoints())?.with_call_timeout(Duration::from_secs(5));
        // The leader as the leader itself sees it: another node's view may lag an election
        // (killing a follower would time nothing).
        let leader = loop {
            let description = client.describe_stream("failover").await?;
            if let Some(leader) = description.shards[0].leader
                && cluster
                    .client_of(leader)
                    .describe_stream("failover")
                    .await
                    .is_ok_and(|own| own.shards[0].leader == Some(leader))
            {
                break leader;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        put_one(&client).await?;
        cluster.kill(leader)?;
        let killed = Instant::now();
        let survivors = Client::from_list(&cluster.running_endpoints())?;
        while let Err(error) = put_one(&survivors).await {
            anyhow::ensure!(
                killed.elapsed() < FAILOVER_GIVE_UP,
                "puts still fail {FAILOVER_GIVE_UP:?} after node {leader} was killed: {error}\n{}",
                cluster.logs()
            );
        }
        let took = killed.elapsed();
        if took < no_election {
            repeated += 1;
            anyhow::ensure!(
                repeated <= runs,
                "{repeated} kills hit a node that was no longer the leader"
            );
        } else {
            times.push(took.as_secs_f64() * 1000.0);
        }
        cluster.start_node(leader)?;
        cluster.wait_ready().await?;
    }
    loading.store(false, std::sync::atomic::Ordering::Relaxed);
    load_task.await?;
    times.sort_by(f64::total_cmp);
    Ok(json!({
        "runs": runs,
        "repeated_runs": repeated,
        "load": "1 producer, 1,000 records of 1 KiB in flight",
        "median_ms": times[times.len() / 2],
        "max_ms": times[times.len() - 1],
        "all_ms": times,
    }))
}

/// Fills a stream, then reads every shard from TRIM_HORIZON concurrently, 10,000 records per
/// GetRecords call (10 MiB at most).
async fn catchup(mib: usize, shards: u32, record_size: usize) -> anyhow::Result<Value> {
    anyhow::ensure!(
        record_size > 0 && mib > 0,
        "--mib and --record-size must be positive"
    );
    let cluster = local_cluster().await?;
    let client = Client::from_list(&cluster.endpoints())?;
    client.create_stream("catchup", shards, None).await?;
    let records = mib * 1024 * 1024 / record_size;
    let producer = Producer::new(client.clone(), "catchup", ProducerConfig::default());
    let mut payloads = Payloads::new(record_size, 0);
    let mut receipts = Vec::with_capacity(records);
    for i in 0..records {
        receipts.push(
            producer
                .put(&format!("k{i}"), payloads.next(), None)
                .await?,
        );
    }
    producer.close().await;
    for receipt in receipts {
        receipt.await?;
    }
    let shard_ids: Vec<String> = client
        .describe_stream("catchup")
        .await?
        .shards
        .into_iter()
        .map(|s| s.shard_id)
        .collect();
    let started = Instant::now();
    let mut readers = Vec::new();
    for shard in shard_ids {
        let client = client.clone();
        readers.push(tokio::spawn(async move {
            let mut iterator = client
                .get_shard_iterator("catchup", &shard, "TRIM_HORIZON", None)
                .await?;
            let (mut count, mut bytes) = (0usize, 0usize);
            loop {
                let response = client.get_records(&iterator, None).await?;
                count += response.records.len();
                bytes += response.records.iter().map(|r| r.data.len()).sum::<usize>();
                match response.next_shard_iterator {
                    Some(next)
                        if response.millis_behind_latest > 0 || !response.records.is_empty() =>
                    {
                        iterator = next
                    }
                    _ => return Ok::<_, anyhow::Error>((count, bytes)),
                }
            }
        }));
    }
    let (mut count, mut bytes) = (0, 0);
    for reader in readers {
        let (c, b) = reader.await??;
        count += c;
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(count == records, "read {count} of {records} records");
    Ok(json!({
        "records": count,
        "mib": bytes as f64 / (1024.0 * 1024.0),
        "seconds": seconds,
        "mib_per_s": bytes as f64 / (1024.0 * 1024.0) / seconds,
        "records_per_s": count as f64 / seconds,
    }))
}

/// Put → consumer latency: each record carries the microsecond it was put (on this process's
/// clock); a polling reader (GetRecords in a loop, limits off) and a fan-out subscriber note when
/// they see it.
async fn e2e(duration: u64, interval_ms: u64) -> anyhow::Result<Value> {
    let cluster = local_cluster().await?;
    let client = Client::from_list(&cluster.endpoints())?;
    client.create_stream("e2e", 1, None).await?;
    client.register_consumer("e2e", "bench").await?;
    let origin = Instant::now();
    let shard = "shardId-000000000000";
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let latency = move |data: &[u8]| -> Option<u64> {
        let sent: u64 = std::str::from_utf8(data).ok()?.parse().ok()?;
        Some(
            (origin.elapsed().as_micros() as u64)
                .saturating_sub(sent)
                .max(1),
        )
    };

    let polling = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut iterator = client
                .get_shard_iterator("e2e", shard, "LATEST", None)
                .await?;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client.get_records(&iterator, None).await?;
                for record in &response.records {
                    if let Some(micros) = latency(&record.data) {
                        histogram.record(micros)?;
                    }
                }
                iterator = response.next_shard_iterator.context("the shard is open")?;
            }
            Ok::<_, anyhow::Error>(histogram)
        })
    };
    let fan_out = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let request = tributary_client::v1::SubscribeToShardRequest {
                stream_name: "e2e".into(),
                consumer_name: "bench".into(),
                shard_id: shard.into(),
                starting_position: Some(tributary_client::v1::StartingPosition {
                    r#type: "LATEST".into(),
                    ..Default::default()
                }),
            };
            let mut events = client.subscribe_to_shard(request).await?;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(Ok(Some(event))) =
                    tokio::time::timeout(Duration::from_millis(500), events.message()).await
                else {
                    continue;
                };
                for record in &event.records {
                    if let Some(micros) = latency(&record.data) {
                        histogram.record(micros)?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(histogram)
        })
    };
    // Let both readers start before the first record.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pace = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    let end = Instant::now() + Duration::from_secs(duration);
    while Instant::now() < end {
        pace.tick().await;
        let entry = tributary_client::v1::PutRecordsRequestEntry {
            data: Bytes::from(origin.elapsed().as_micros().to_string()),
            partition_key: "e2e".into(),
            explicit_hash_key: None,
        };
        client.put_records("e2e", vec![entry]).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let summary = |h: Histogram<u64>| {
        json!({
            "records": h.len(),
            "p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
            "max_ms": h.max() as f64 / 1000.0,
        })
    };
    Ok(json!({
        "polling": summary(polling.await??),
        "fan_out": summary(fan_out.await??),
    }))
}

/// One record, acknowledged.
async fn put_one(client: &Client) -> anyhow::Result<()> {
    let entry = tributary_client::v1::PutRecordsRequestEntry {
        data: Bytes::from_static(b"failover"),
        partition_key: "k".into(),
        explicit_hash_key: None,
    };
    let response = client.put_records("failover", vec![entry]).await?;
    anyhow::ensure!(response.failed_record_count == 0, "the put failed");
    Ok(())
}

/// One produce scenario of the suite.
struct Scenario {
    name: &'static str,
    record_size: usize,
    producers: usize,
    in_flight: usize,
    aggregate: bool,
    rate_opt: Option<u64>,
}

impl Scenario {
    const fn new(
        name: &'static str,
        record_size: usize,
        producers: usize,
        in_flight: usize,
        aggregate: bool,
    ) -> Scenario {
        Scenario {
            name,
            record_size,
            producers,
            in_flight,
            aggregate,
            rate_opt: None,
        }
    }
}

/// Tributary's produce scenarios (each on a new 6-shard stream).
const SCENARIOS: [Scenario; 7] = [
    Scenario::new("produce-100B", 100, 4, 2000, false),
    Scenario::new("produce-100B-aggregated", 100, 4, 4000, true),
    Scenario::new("produce-1KiB", 1024, 4, 1000, false),
    Scenario::new("produce-1KiB-aggregated", 1024, 4, 2000, true),
    Scenario::new("produce-10KiB", 10 * 1024, 4, 200, false),
    Scenario::new("produce-10KiB-aggregated", 10 * 1024, 4, 400, true),
    Scenario::new("produce-1KiB-one-in-flight", 1024, 1, 1, false),
];

/// The rows of the results table: system, scenario, produce report.
type Rows = Vec<(&'static str, &'static str, Value)>;

/// The standard scenarios: the peer's on its own cluster first (its 1 KiB rate becomes the
/// offered load of a Tributary row, for the latency comparison), then Tributary's on a fresh
/// local cluster, then e2e, catch-up and failover on clusters of their own; last, each target
/// checked against what was measured.
async fn suite(
    out: &std::path::Path,
    duration: u64,
    peer_opt: Option<PathBuf>,
    failover_runs: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut rows: Rows = Vec::new();
    if let Some(binary) = &peer_opt {
        for (name, report) in nats::run(binary, Duration::from_secs(duration)).await? {
            println!("nats {name}: {}", summary_line(&report));
            rows.push(("nats", name, report));
        }
    }
    let peer_1kib_rate_opt = find(&rows, "nats", "produce-1KiB")
        .map(|report| num(report, "records_per_s") as u64)
        .filter(|rate| *rate > 0);
    let mut scenarios: Vec<Scenario> = SCENARIOS.into_iter().collect();
    if let Some(rate) = peer_1kib_rate_opt {
        scenarios.push(Scenario {
            rate_opt: Some(rate),
            ..Scenario::new("produce-1KiB-at-peer-rate", 1024, 4, 1000, false)
        });
    }
    let cluster = local_cluster().await?;
    for (index, scenario) in scenarios.iter().enumerate() {
        let args = ProduceArgs {
            endpoint: cluster.endpoints(),
            stream: format!("bench-{index}"),
            create: true,
            shards: 6,
            producers: scenario.producers,
            record_size: scenario.record_size,
            duration,
            rate: scenario.rate_opt,
            in_flight: scenario.in_flight,
            aggregate: scenario.aggregate,
            // Aggregation needs records to wait for each other.
            linger_ms: if scenario.aggregate { 5 } else { 0 },
            json: false,
        };
        let report = produce(&args).await?;
        println!("tributary {}: {}", scenario.name, summary_line(&report));
        rows.push(("tributary", scenario.name, report));
    }
    // The other scenarios start clusters of their own.
    drop(cluster);
    let e2e_report = e2e(duration, 10).await?;
    let catchup_report = catchup(256, 3, 10 * 1024).await?;
    let failover_report = failover(failover_runs).await?;

    let mut notes = Vec::new();
    for mode in ["polling", "fan_out"] {
        let report = &e2e_report[mode];
        notes.push(format!(
            "e2e {mode}: put -> consumer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            num(report, "p50_ms"),
            num(report, "p99_ms"),
            num(report, "max_ms"),
        ));
    }
    notes.push(format!(
        "catchup: {:.1} MiB/s from TRIM_HORIZON over 3 shards on 3 nodes",
        num(&catchup_report, "mib_per_s")
    ));
    notes.push(format!(
        "failover under load: puts succeed again {:.0} ms (median), {:.0} ms (max) after a leader's SIGKILL, {failover_runs} runs",
        num(&failover_report, "median_ms"),
        num(&failover_report, "max_ms"),
    ));
    let checks = targets(&rows, &catchup_report, &failover_report);

    let mut markdown = String::from(
        "| system | scenario | records/s | MiB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (system, name, report) in &rows {
        let [rate, mib, p50, p90, p99, p999, max] = figures(report);
        markdown.push_str(&format!(
            "| {system} | {name} | {rate:.0} | {mib:.1} | {p50:.2} | {p90:.2} | {p99:.2} | {p999:.2} | {max:.2} | {} |\n",
            report["errors"]
        ));
    }
    markdown.push('\n');
    for note in &notes {
        println!("{note}");
        markdown.push_str(&format!("- {note}\n"));
    }
    markdown.push_str("\n| target | measured | met |\n|---|---|---|\n");
    for check in &checks {
        println!(
            "target {}: {} ({})",
            check.target,
            check.measured,
            check.verdict()
        );
        markdown.push_str(&format!(
            "| {} | {} | {} |\n",
            check.target,
            check.measured,
            check.verdict()
        ));
    }
    let mut results: Vec<Value> = rows
        .iter()
        .map(|(system, name, report)| json!({"system": system, "scenario": name, "result": report}))
        .collect();
    results.push(json!({"system": "tributary", "scenario": "e2e", "result": e2e_report}));
    results.push(json!({"system": "tributary", "scenario": "catchup", "result": catchup_report}));
    results.push(json!({"system": "tributary", "scenario": "failover", "result": failover_report}));
    let targets: Vec<Value> = checks
        .iter()
        .map(|c| json!({"target": c.target, "measured": c.measured, "met": c.met_opt}))
        .collect();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&json!({"results": results, "targets": targets}))?,
    )?;
    std::fs::write(out.join("results.md"), markdown)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn find<'a>(rows: &'a Rows, system: &str, scenario: &str) -> Option<&'a Value> {
    rows.iter()
        .find(|(s, n, _)| *s == system && *n == scenario)
        .map(|(_, _, report)| report)
}

/// Tributary's better report of a size, plain or aggregated (both are the same producer,
/// configured), and which it was.
fn best<'a>(rows: &'a Rows, scenario: &'static str, key: &str) -> Option<(String, &'a Value)> {
    let aggregated = format!("{scenario}-aggregated");
    [scenario.to_string(), aggregated]
        .into_iter()
        .filter_map(|name| find(rows, "tributary", &name).map(|report| (name, report)))
        .max_by(|a, b| num(a.1, key).total_cmp(&num(b.1, key)))
}

/// One target of the issue, checked.
struct Check {
    target: &'static str,
    measured: String,
    /// `None`: could not be checked (no peer in this run).
    met_opt: Option<bool>,
}

impl Check {
    fn verdict(&self) -> &'static str {
        match self.met_opt {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not checked (no peer)",
        }
    }
}

/// The targets: throughput as multiples of the peer's (and the absolute floor the issue names),
/// latency at the peer's offered load, one-in-flight latency, failover and catch-up.
fn targets(rows: &Rows, catchup: &Value, failover: &Value) -> Vec<Check> {
    let mut checks = Vec::new();
    let ratio = |ours: f64, theirs_opt: Option<f64>| {
        theirs_opt
            .filter(|theirs| *theirs > 0.0)
            .map(|theirs| ours / theirs)
    };
    let peer = |scenario: &str, key: &str| find(rows, "nats", scenario).map(|r| num(r, key));
    for (target, scenario, key, floor) in [
        (
            "1 KiB, 4 producers: >= 2x the peer's records/s and >= 100 MiB/s",
            "produce-1KiB",
            "records_per_s",
            ("mib_per_s", 100.0),
        ),
        (
            "100 B: >= 2x the peer's records/s and >= 200k records/s",
            "produce-100B",
            "records_per_s",
            ("records_per_s", 200_000.0),
        ),
        (
            "10 KiB: >= 2x the peer's MiB/s and >= 250 MiB/s",
            "produce-10KiB",
            "mib_per_s",
            ("mib_per_s", 250.0),
        ),
    ] {
        let Some((name, ours)) = best(rows, scenario, key) else {
            continue;
        };
        let times_opt = ratio(num(ours, key), peer(scenario, key));
        let floor_met = num(ours, floor.0) >= floor.1;
        checks.push(Check {
            target,
            measured: format!(
                "{name}: {:.0} records/s, {:.1} MiB/s{}",
                num(ours, "records_per_s"),
                num(ours, "mib_per_s"),
                times_opt
                    .map(|t| format!(", {t:.2}x the peer"))
                    .unwrap_or_default()
            ),
            met_opt: times_opt.map(|t| t >= 2.0 && floor_met),
        });
    }
    if let Some(ours) = find(rows, "tributary", "produce-1KiB-at-peer-rate") {
        let theirs = peer("produce-1KiB", "p99_ms").unwrap_or(0.0);
        checks.push(Check {
            target: "1 KiB at the peer's records/s: put->ack p99 <= the peer's",
            measured: format!(
                "{:.0} records/s offered: p99 {:.2} ms vs the peer's {theirs:.2} ms",
                num(ours, "records_per_s"),
                num(ours, "p99_ms")
            ),
            met_opt: Some(num(ours, "p99_ms") <= theirs),
        });
    }
    if let Some(ours) = find(rows, "tributary", "produce-1KiB-one-in-flight") {
        checks.push(Check {
            target: "1 KiB, one in flight: p50 <= 0.5 ms, p99 <= 2 ms",
            measured: format!(
                "p50 {:.2} ms, p99 {:.2} ms (the peer: {})",
                num(ours, "p50_ms"),
                num(ours, "p99_ms"),
                match (
                    peer("produce-1KiB-one-in-flight", "p50_ms"),
                    peer("produce-1KiB-one-in-flight", "p99_ms")
                ) {
                    (Some(p50), Some(p99)) => format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
                    _ => "not run".into(),
                }
            ),
            met_opt: Some(num(ours, "p50_ms") <= 0.5 && num(ours, "p99_ms") <= 2.0),
        });
    }
    checks.push(Check {
        target: "failover under load: puts succeed within 3 s (median)",
        measured: format!(
            "median {:.0} ms, max {:.0} ms over {} runs",
            num(failover, "median_ms"),
            num(failover, "max_ms"),
            failover["runs"]
        ),
        met_opt: Some(num(failover, "median_ms") <= 3000.0),
    });
    // The three shards' readers are served by the three nodes.
    let per_node = num(catchup, "mib_per_s") / 3.0;
    checks.push(Check {
        target: "catch-up from TRIM_HORIZON: >= 500 MiB/s per node",
        measured: format!(
            "{:.1} MiB/s over 3 nodes, {per_node:.1} MiB/s per node",
            num(catchup, "mib_per_s")
        ),
        met_opt: Some(per_node >= 500.0),
    });
    checks
}

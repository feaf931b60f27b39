//! `tributary-bench`: named benchmark scenarios against a running cluster (`produce`), and
//! `suite`, which starts a local 3-node/3-AZ cluster (throughput limits off, durable acks on) and
//! runs the standard scenarios, writing `results.json` and `results.md`.
//!
//! Latency is put → acknowledgement of each record through the producer (its linger included:
//! `--linger-ms`, default 0 here), recorded in an HDR histogram.

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
    /// Start a local 3-node cluster and run the standard scenarios.
    Suite {
        /// Where results.json and results.md go.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// Seconds per scenario.
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
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
        Command::Suite { out, duration } => suite(&out, duration).await?,
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
                    report["mib"].as_f64().unwrap_or(0.0),
                    report["seconds"].as_f64().unwrap_or(0.0),
                    report["mib_per_s"].as_f64().unwrap_or(0.0),
                    report["records_per_s"].as_f64().unwrap_or(0.0),
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
                        report[mode]["p50_ms"].as_f64().unwrap_or(0.0),
                        report[mode]["p99_ms"].as_f64().unwrap_or(0.0),
                        report[mode]["max_ms"].as_f64().unwrap_or(0.0),
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
                    report["median_ms"].as_f64().unwrap_or(0.0),
                    report["max_ms"].as_f64().unwrap_or(0.0),
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
            "{} producers, {} B records: {:.0} records/s, {:.1} MiB/s; put->ack p50 {:.2} ms, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}; {} errors",
            args.producers,
            args.record_size,
            report["records_per_s"].as_f64().unwrap_or(0.0),
            report["mib_per_s"].as_f64().unwrap_or(0.0),
            report["p50_ms"].as_f64().unwrap_or(0.0),
            report["p90_ms"].as_f64().unwrap_or(0.0),
            report["p99_ms"].as_f64().unwrap_or(0.0),
            report["p999_ms"].as_f64().unwrap_or(0.0),
            report["max_ms"].as_f64().unwrap_or(0.0),
            report["errors"]
        );
    }
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
        let data = Bytes::from(vec![b'x'; args.record_size]);
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
                let receipt = match producer.put(&key, data.clone(), None).await {
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
    let records = acked.load(std::sync::atomic::Ordering::Relaxed);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "records": records,
        "records_per_s": records as f64 / elapsed,
        "mib_per_s": records as f64 * args.record_size as f64 / elapsed / (1024.0 * 1024.0),
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": histogram.max() as f64 / 1000.0,
        "errors": errors.load(std::sync::atomic::Ordering::Relaxed),
    }))
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
            let data = Bytes::from(vec![b'l'; 1024]);
            let mut n = 0u64;
            while loading.load(std::sync::atomic::Ordering::Relaxed) {
                let permit = window.clone().acquire_owned().await.expect("window open");
                n += 1;
                let Ok(receipt) = load.put(&format!("load-{n}"), data.clone(), None).await else {
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
    for _ in 0..runs {
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
        while put_one(&survivors).await.is_err() {}
        times.push(killed.elapsed().as_secs_f64() * 1000.0);
        cluster.start_node(leader)?;
        cluster.wait_ready().await?;
    }
    loading.store(false, std::sync::atomic::Ordering::Relaxed);
    load_task.await?;
    times.sort_by(f64::total_cmp);
    Ok(json!({
        "runs": runs,
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
    let data = Bytes::from(vec![b'c'; record_size]);
    let mut receipts = Vec::with_capacity(records);
    for i in 0..records {
        receipts.push(producer.put(&format!("k{i}"), data.clone(), None).await?);
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

/// The standard scenarios on a fresh local cluster.
async fn suite(out: &std::path::Path, duration: u64) -> anyhow::Result<()> {
    let cluster = local_cluster().await?;
    let scenarios: Vec<(&str, usize, usize, usize, bool)> = vec![
        // name, record size, producers, in flight per producer, aggregate
        ("produce-100B", 100, 4, 2000, false),
        ("produce-100B-aggregated", 100, 4, 4000, true),
        ("produce-1KiB", 1024, 4, 1000, false),
        ("produce-1KiB-aggregated", 1024, 4, 2000, true),
        ("produce-10KiB", 10 * 1024, 4, 200, false),
        ("produce-10KiB-aggregated", 10 * 1024, 4, 400, true),
        ("produce-1KiB-one-in-flight", 1024, 1, 1, false),
    ];
    std::fs::create_dir_all(out)?;
    let mut results = Vec::new();
    let mut table = String::from(
        "| scenario | records/s | MiB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (index, (name, size, producers, in_flight, aggregate)) in scenarios.into_iter().enumerate()
    {
        let args = ProduceArgs {
            endpoint: cluster.endpoints(),
            stream: format!("bench-{index}"),
            create: true,
            shards: 6,
            producers,
            record_size: size,
            duration,
            rate: None,
            in_flight,
            aggregate,
            // Aggregation needs records to wait for each other.
            linger_ms: if aggregate { 5 } else { 0 },
            json: false,
        };
        let report = produce(&args).await?;
        print!("{name}: ");
        print_report(&args, &report);
        table.push_str(&format!(
            "| {name} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
            report["records_per_s"].as_f64().unwrap_or(0.0),
            report["mib_per_s"].as_f64().unwrap_or(0.0),
            report["p50_ms"].as_f64().unwrap_or(0.0),
            report["p90_ms"].as_f64().unwrap_or(0.0),
            report["p99_ms"].as_f64().unwrap_or(0.0),
            report["p999_ms"].as_f64().unwrap_or(0.0),
            report["max_ms"].as_f64().unwrap_or(0.0),
            report["errors"]
        ));
        results.push(json!({"scenario": name, "result": report}));
    }
    // The other scenarios start clusters of their own.
    drop(cluster);
    let mut notes = Vec::new();
    let e2e_report = e2e(duration, 10).await?;
    for mode in ["polling", "fan_out"] {
        notes.push(format!(
            "e2e {mode}: put -> consumer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            e2e_report[mode]["p50_ms"].as_f64().unwrap_or(0.0),
            e2e_report[mode]["p99_ms"].as_f64().unwrap_or(0.0),
            e2e_report[mode]["max_ms"].as_f64().unwrap_or(0.0),
        ));
    }
    results.push(json!({"scenario": "e2e", "result": e2e_report}));
    let catchup_report = catchup(256, 3, 10 * 1024).await?;
    notes.push(format!(
        "catchup: {:.1} MiB/s from TRIM_HORIZON over 3 shards",
        catchup_report["mib_per_s"].as_f64().unwrap_or(0.0)
    ));
    results.push(json!({"scenario": "catchup", "result": catchup_report}));
    let failover_report = failover(5).await?;
    notes.push(format!(
        "failover under load: puts succeed again {:.0} ms (median), {:.0} ms (max) after a leader's SIGKILL, 5 runs",
        failover_report["median_ms"].as_f64().unwrap_or(0.0),
        failover_report["max_ms"].as_f64().unwrap_or(0.0),
    ));
    results.push(json!({"scenario": "failover", "result": failover_report}));
    for note in &notes {
        println!("{note}");
        table.push_str(&format!("\n- {note}"));
    }
    table.push('\n');
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    std::fs::write(out.join("results.md"), table)?;
    println!("wrote {}", out.display());
    Ok(())
}

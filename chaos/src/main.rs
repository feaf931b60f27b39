//! `tributary-chaos`: one chaos run against a fresh cluster; exit 0 only if every property holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tributary_chaos::nemesis::{Nemesis, Schedule};
use tributary_chaos::run::{RunConfig, run};

/// Runs producers and readers against a fresh Tributary cluster while a nemesis kills, pauses
/// and partitions nodes, then heals, reads everything back and checks every guarantee.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// How long the nemesis runs, in seconds (then heal, 5 s of recovery and the final reads).
    #[arg(long)]
    duration: u64,
    /// Faults to inject, comma-separated: kill, pause, partition, az, majority, and the
    /// choreographies isolate-leader, pause-leader, kill-repeat and laggards.
    #[arg(long, value_delimiter = ',', required = true)]
    nemesis: Vec<Nemesis>,
    /// Seed of the fault schedule (default: the clock; the report records it).
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size: 3 or 6 nodes over three AZs.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Run the nodes as containers (needs a Docker engine and the image from
    /// cluster/build-image.sh) instead of processes.
    #[arg(long)]
    containers: bool,
    /// The node image for --containers.
    #[arg(long, default_value = "tributary:dev")]
    image: String,
    /// Where summary.json, summary.md and history.json go.
    #[arg(long)]
    report: PathBuf,
    /// The `tributary` binary (default: next to this one).
    #[arg(long, env = "TRIBUTARY_BINARY")]
    binary: Option<PathBuf>,
    /// Producers (odd ones put plainly, even ones idempotently).
    #[arg(long, default_value_t = 4)]
    producers: u64,
    /// Records per second per producer.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Longest hold of a fault, in seconds (each fault lasts 3 s up to this).
    #[arg(long, default_value_t = 8)]
    max_fault_s: u64,
    /// DELIBERATELY BROKEN: nodes acknowledge puts before they commit. The run must fail; this
    /// shows the checker catches lost writes.
    #[arg(long)]
    broken_ack_before_commit: bool,
}

fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating this executable")?;
    Ok(me.with_file_name("tributary"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(passed) => {
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main() -> anyhow::Result<bool> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let args = Args::parse();
    if args.nodes != 3 && args.nodes != 6 {
        bail!("--nodes must be 3 or 6 (two per AZ), not {}", args.nodes);
    }
    if args.duration == 0 {
        bail!("--duration must be at least 1 second");
    }
    let binary = match args.binary {
        Some(binary) => binary,
        None => default_binary()?,
    };
    if !binary.exists() {
        bail!(
            "no tributary binary at {}: build it (cargo build --release -p tributary-cli) or pass --binary",
            binary.display()
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    let schedule = Schedule {
        hold: (
            Duration::from_secs(3),
            Duration::from_secs(args.max_fault_s.max(3)),
        ),
        ..Schedule::default()
    };
    let config = RunConfig {
        duration: Duration::from_secs(args.duration),
        nemeses: args.nemesis,
        seed,
        nodes: args.nodes,
        containers: args.containers,
        image: args.image,
        report_dir: args.report.clone(),
        binary,
        producers: args.producers,
        rate: args.rate,
        shards: args.shards,
        schedule,
        ack_before_commit: args.broken_ack_before_commit,
        command,
    };
    println!(
        "chaos run: seed {seed}, report in {}",
        args.report.display()
    );
    // Ctrl-C or SIGTERM drops the run, and with it the cluster: its nodes are killed and its
    // containers removed instead of outliving the runner.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let summary = tokio::select! {
        summary = run(config) => summary?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C): the cluster was torn down"),
        _ = terminate.recv() => bail!("terminated (SIGTERM): the cluster was torn down"),
    };
    println!(
        "{}: {} puts, {} acknowledged, {} failed, {} unknown; lost {}, duplicates {}, order \
         violations {}; {} faults, max unavailability {}",
        if summary.passed { "PASSED" } else { "FAILED" },
        summary.ops,
        summary.acked,
        summary.failed,
        summary.unknown,
        summary.lost,
        summary.duplicates,
        summary.order_violations,
        summary.faults,
        summary
            .max_unavailability_s
            .map_or("unbounded".to_string(), |s| format!("{s:.2} s"))
    );
    for property in summary.properties.iter().filter(|p| !p.holds()) {
        println!("VIOLATED {}: {} times", property.name, property.violations);
        for example in &property.examples {
            println!("  - {example}");
        }
    }
    Ok(summary.passed)
}

//! One chaos run: start a cluster, create the stream, run producers and readers while the
//! nemesis injects faults, heal everything, let writes resume, read every shard through every
//! node, check, report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tributary_testkit::{
    Cluster, ClusterControl, ClusterOptions, ContainerCluster, ContainerOptions, docker_available,
    wait_until,
};

use crate::history::{Clock, History, Outcome, sequence_value};
use crate::nemesis::{Nemeses, Nemesis, Schedule};
use crate::report::{self, RunFacts, Summary};
use crate::workload::{self, Producer};
use crate::{checker, consumers};

/// The stream the workload writes.
const STREAM: &str = "chaos";
/// A client call's limit: longer than a node's write timeout (3 s), so a put that waits out a
/// leader election is answered rather than abandoned.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writes keep going after the last heal, so the run shows them resuming.
const RECOVERY: Duration = Duration::from_secs(5);
/// How long the healed cluster may take to be whole again.
const HEALED_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a consumer worker may take to stop (its processors' final checkpoints).
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one final read may take.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub duration: Duration,
    pub nemeses: Vec<Nemesis>,
    pub seed: u64,
    pub nodes: u64,
    pub containers: bool,
    /// The node image for `containers`.
    pub image: String,
    pub report_dir: PathBuf,
    /// The `tributary` binary the nodes run.
    pub binary: PathBuf,
    pub producers: u64,
    /// Records per second per producer.
    pub rate: u32,
    pub shards: u32,
    pub schedule: Schedule,
    /// DELIBERATELY BROKEN nodes that acknowledge before commit (to show the checker works).
    pub ack_before_commit: bool,
    /// The command line, for the report.
    pub command: String,
}

/// Runs the whole thing and writes the report; the summary says whether every property held.
pub async fn run(config: RunConfig) -> anyhow::Result<Summary> {
    let mut node_args = Vec::new();
    if config.ack_before_commit {
        node_args.push("--fault-ack-before-commit".to_string());
    }
    if config.containers {
        docker_available()
            .await
            .map_err(|why| anyhow::anyhow!("--containers needs a Docker engine: {why}"))?;
        if config.ack_before_commit {
            node_args.insert(0, "--fault-injection".to_string());
        }
        let options = ContainerOptions {
            image: config.image.clone(),
            nodes: config.nodes,
            azs: 3,
            metadata_voters_opt: Some(3),
            node_args,
        };
        let mut cluster = ContainerCluster::start(options)
            .await
            .context("starting the container cluster")?;
        run_on(&mut cluster, &config).await
    } else {
        let options = ClusterOptions {
            nodes: config.nodes,
            azs: 3,
            metadata_voters_opt: Some(3),
            node_args,
            fault_injection: true,
            kinesis: false,
            tls: false,
            auth: false,
        };
        let mut cluster = Cluster::start(&config.binary, options)
            .await
            .context("starting the cluster")?;
        run_on(&mut cluster, &config).await
    }
}

async fn run_on<C: ClusterControl>(cluster: &mut C, config: &RunConfig) -> anyhow::Result<Summary> {
    let history = match drive(cluster, config).await {
        Ok(history) => history,
        Err(Aborted { error, history_opt }) => {
            // What was recorded up to the failure is kept for the post-mortem.
            let dir = &config.report_dir;
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join("nodes.log"), cluster.logs())?;
            std::fs::write(dir.join("aborted.txt"), format!("{error:#}\n"))?;
            if let Some(history) = history_opt {
                std::fs::write(dir.join("history.json"), serde_json::to_string(&history)?)?;
            }
            bail!(
                "the run aborted ({error:#}); what it recorded is in {}\n{}",
                dir.display(),
                cluster.logs()
            )
        }
    };
    let verdict = checker::check(&history);
    let windows = crate::availability::windows(&history);
    let summary = report::summarize(RunFacts {
        history: &history,
        verdict: &verdict,
        windows,
        seed: config.seed,
        duration_s: config.duration.as_secs(),
        nodes: config.nodes,
        nemesis: config
            .nemeses
            .iter()
            .map(|n| n.name().to_string())
            .collect(),
        command: config.command.clone(),
    });
    report::write(&config.report_dir, &summary, &history)?;
    if !summary.passed {
        std::fs::write(config.report_dir.join("nodes.log"), cluster.logs())?;
    }
    Ok(summary)
}

/// Every node's endpoint.
pub(crate) fn endpoints_of<C: ClusterControl>(cluster: &C) -> Vec<String> {
    cluster
        .node_ids()
        .into_iter()
        .map(|id| cluster.endpoint_of(id))
        .collect()
}

async fn drive<C: ClusterControl>(cluster: &mut C, config: &RunConfig) -> Result<History, Aborted> {
    let admin = cluster.client();
    admin
        .create_stream(STREAM, config.shards, None)
        .await
        .context("creating the stream")?;
    admin
        .wait_for_active(STREAM, Duration::from_secs(30))
        .await
        .context("waiting for the stream")?;
    let shards: Vec<String> = admin
        .describe_stream(STREAM)
        .await?
        .shards
        .into_iter()
        .map(|shard| shard.shard_id)
        .collect();

    let clock = Clock::start();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (endpoints_tx, endpoints_rx) = watch::channel(endpoints_of(cluster));
    let source =
        |first: usize| workload::ClientSource::new(endpoints_rx.clone(), first, CALL_TIMEOUT);
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
    let producers: Vec<_> = (1..=config.producers)
        .map(|id| {
            let producer = Producer {
                id,
                // Even producers put idempotently, odd ones plainly (Kinesis' way).
                idempotent_id_opt: id.is_multiple_of(2).then_some(1000 + id),
                interval,
            };
            tokio::spawn(workload::produce(
                source(id as usize),
                STREAM.to_string(),
                producer,
                clock,
                stop_rx.clone(),
            ))
        })
        .collect();
    let readers: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| {
            tokio::spawn(workload::follow(
                source(index),
                STREAM.to_string(),
                shard.clone(),
                format!("live reader of {shard}"),
                stop_rx.clone(),
            ))
        })
        .collect();

    let recorded = Arc::new(Mutex::new(consumers::Recorded::default()));
    let workers = consumers::spawn_workers(
        (0..consumers::WORKERS)
            .map(|index| source(index + 1))
            .collect(),
        STREAM,
        clock,
        recorded.clone(),
        stop_rx.clone(),
    );
    let monitor = tokio::spawn(consumers::monitor(source(0), clock, stop_rx.clone()));

    let mut nemeses = Nemeses::new(
        cluster,
        STREAM.to_string(),
        config.nemeses.clone(),
        config.schedule,
        StdRng::seed_from_u64(config.seed),
        clock,
    );
    nemeses.endpoints_opt = Some(endpoints_tx);
    let mut faults = Vec::new();
    let ran = nemeses.run(config.duration, &mut faults).await;
    // Whatever happened, leave nothing broken.
    let healed = nemeses.heal().await;
    let settled = match (ran, healed) {
        (Err(error), _) | (Ok(()), Err(error)) => Err(error),
        (Ok(()), Ok(())) => cluster.wait_ready().await.context("the healed cluster"),
    };
    if settled.is_ok() {
        tokio::time::sleep(RECOVERY).await;
    }
    let _ = stop_tx.send(true);

    let mut history = History {
        faults,
        ..History::default()
    };
    for producer in producers {
        history.puts.extend(producer.await.map_err(abort)?);
    }
    for reader in readers {
        history.live_reads.push(reader.await.map_err(abort)?);
    }
    for worker in workers {
        let stopped = tokio::time::timeout(WORKER_STOP_TIMEOUT, worker)
            .await
            .context("a consumer worker did not stop")
            .and_then(|joined| Ok(joined?));
        if settled.is_ok() {
            stopped.map_err(Aborted::without_history)?;
        }
    }
    history.leases = monitor.await.map_err(abort)?;
    history.checkpoints = std::mem::take(
        &mut recorded
            .lock()
            .expect("recording lock poisoned")
            .checkpoints,
    );
    history.puts.sort_by_key(|op| op.invoked_ms);
    if let Err(error) = settled {
        return Err(Aborted {
            error,
            history_opt: Some(history),
        });
    }
    final_reads(cluster, &shards, &mut history)
        .await
        .map_err(Aborted::without_history)?;
    Ok(history)
}

/// A run that could not finish: why, and what it recorded before (no final reads).
pub struct Aborted {
    pub error: anyhow::Error,
    pub history_opt: Option<History>,
}

impl Aborted {
    fn without_history(error: anyhow::Error) -> Self {
        Aborted {
            error,
            history_opt: None,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Aborted {
    fn from(error: E) -> Self {
        Aborted::without_history(error.into())
    }
}

fn abort(error: tokio::task::JoinError) -> Aborted {
    Aborted::without_history(error.into())
}

/// Reads every shard through every node, up to the highest sequence number anyone
/// acknowledged or any replica holds.
async fn final_reads<C: ClusterControl>(
    cluster: &C,
    shards: &[String],
    history: &mut History,
) -> anyhow::Result<()> {
    for shard in shards {
        let mut target_opt = history
            .puts
            .iter()
            .filter_map(|op| match &op.outcome {
                Outcome::Ok { shard: s, sequence } if s == shard => sequence_value(sequence),
                _ => None,
            })
            .max();
        for id in cluster.node_ids() {
            let client = cluster.client_of(id);
            let latest_opt = wait_until(
                HEALED_TIMEOUT,
                &format!("node {id} to describe stream {STREAM}"),
                || {
                    let client = client.clone();
                    async move {
                        let description = client
                            .describe_stream(STREAM)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(description
                            .shards
                            .iter()
                            .find(|s| &s.shard_id == shard)
                            .and_then(|s| s.latest_sequence_number.as_deref())
                            .and_then(sequence_value))
                    }
                },
            )
            .await?;
            target_opt = target_opt.max(latest_opt);
        }
        for id in cluster.node_ids() {
            let log = workload::read_to_end(
                &cluster.client_of(id).with_call_timeout(CALL_TIMEOUT),
                STREAM,
                shard,
                format!("final read via node {id}"),
                target_opt,
                FINAL_READ_TIMEOUT,
            )
            .await;
            history.final_reads.push(log);
        }
    }
    Ok(())
}

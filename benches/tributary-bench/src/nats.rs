//! The peer the targets are measured against: NATS JetStream, three local `nats-server`s in one
//! cluster and a 3-replica file stream, driven the way `produce` drives Tributary (publishers,
//! a window of unacknowledged messages each, publish → ack latency in an HDR histogram).
//!
//! JetStream acknowledges a publish once its stream leader and one follower hold it in memory;
//! it fsyncs on a timer (`sync_interval`, 2 minutes by default). Tributary acknowledges after a
//! quorum fsync'd. The comparison is the one users make, not a like-for-like durability one.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::{Mutex, Semaphore};
use tributary_testkit::wait_until;

/// How long the three servers may take to form a JetStream cluster that accepts a stream.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the last acknowledgements may take after the publishers stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Three `nats-server` processes with JetStream on free loopback ports; killed on drop.
pub struct NatsCluster {
    servers: Vec<Child>,
    urls: Vec<String>,
    dir: TempDir,
}

/// Where Debian's package installs the server (not on a non-root user's `$PATH`).
const DEBIAN_SERVER: &str = "/usr/sbin/nats-server";

/// `nats-server` from `$PATH` (or Debian's), or the error a user can act on.
pub fn find_server() -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from(DEBIAN_SERVER)])
        .find(|candidate| candidate.is_file())
        .context(
            "nats-server is not on PATH: `./x bench` installs it (Debian's nats-server), \
             or pass --nats-server PATH, or --no-peer to run without the side-by-side peer",
        )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsCluster {
    pub async fn start(binary: &Path) -> anyhow::Result<NatsCluster> {
        let dir = tempfile::Builder::new().prefix("nats-peer-").tempdir()?;
        let client_ports = [free_port()?, free_port()?, free_port()?];
        let route_ports = [free_port()?, free_port()?, free_port()?];
        let routes = route_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = NatsCluster {
            servers: Vec::new(),
            urls: client_ports
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect(),
            dir,
        };
        for (index, (client_port, route_port)) in client_ports.iter().zip(route_ports).enumerate() {
            let name = format!("n{}", index + 1);
            let log = File::create(cluster.dir.path().join(format!("{name}.log")))?;
            let child = Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &client_port.to_string()])
                .args(["-n", &name, "-js"])
                .arg("-sd")
                .arg(cluster.dir.path().join(&name))
                .args(["--cluster_name", "bench"])
                .args(["--cluster", &format!("nats://127.0.0.1:{route_port}")])
                .args(["--routes", &routes])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            cluster.servers.push(child);
        }
        Ok(cluster)
    }

    /// Creates a 3-replica file stream capturing `subject`, once the cluster accepts it, and
    /// waits until the stream acknowledges a publish (its own Raft group has a leader).
    pub async fn create_stream(&self, name: &str, subject: &str) -> anyhow::Result<()> {
        let context = jetstream::new(self.connect(0).await?);
        let config = jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            num_replicas: 3,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        wait_until(
            READY_TIMEOUT,
            "the JetStream cluster to create a 3-replica stream",
            || async {
                context
                    .get_or_create_stream(config.clone())
                    .await
                    .map(drop)
                    .map_err(|error| error.to_string())
            },
        )
        .await
        .map_err(|error| anyhow::anyhow!("{error}\n{}", self.logs()))?;
        wait_until(
            READY_TIMEOUT,
            "the new stream to acknowledge a publish",
            || async {
                let ack = context
                    .publish(subject.to_string(), Bytes::from_static(b"ready"))
                    .await
                    .map_err(|error| error.to_string())?;
                ack.await.map(drop).map_err(|error| error.to_string())
            },
        )
        .await
    }

    async fn connect(&self, index: usize) -> anyhow::Result<async_nats::Client> {
        let url = &self.urls[index % self.urls.len()];
        wait_until(READY_TIMEOUT, &format!("nats-server at {url}"), || async {
            async_nats::connect(url.as_str())
                .await
                .map_err(|error| error.to_string())
        })
        .await
    }

    fn logs(&self) -> String {
        (1..=self.servers.len())
            .map(|n| {
                let path = self.dir.path().join(format!("n{n}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- n{n} ---\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `publishers` connections (spread over the servers) publish `record_size`-byte messages to
    /// `subject` for `duration`, each keeping `in_flight` unacknowledged. The report has the
    /// keys of Tributary's `produce`.
    pub async fn produce(
        &self,
        subject: &str,
        publishers: usize,
        record_size: usize,
        duration: Duration,
        in_flight: usize,
    ) -> anyhow::Result<Value> {
        let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
            1, 60_000_000, 3,
        )?));
        let (acked, errors, sent) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut contexts = Vec::new();
        for index in 0..publishers {
            contexts.push(jetstream::new(self.connect(index).await?));
        }
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        // The connections stay open until the last acknowledgement came back.
        for (index, context) in contexts.iter().enumerate() {
            let context = context.clone();
            let (histogram, acked, errors, sent) = (
                histogram.clone(),
                acked.clone(),
                errors.clone(),
                sent.clone(),
            );
            let subject = subject.to_string();
            let mut payloads = crate::Payloads::new(record_size, index);
            let window = Arc::new(Semaphore::new(in_flight));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let permit = window.clone().acquire_owned().await.expect("window open");
                    let published_at = Instant::now();
                    let ack = match context.publish(subject.clone(), payloads.next()).await {
                        Ok(ack) => ack,
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    let (histogram, acked, errors) =
                        (histogram.clone(), acked.clone(), errors.clone());
                    tokio::spawn(async move {
                        match ack.await {
                            Ok(_) => {
                                let micros = published_at.elapsed().as_micros() as u64;
                                let _ = histogram.lock().await.record(micros.max(1));
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        drop(permit);
                    });
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let _ = wait_until(DRAIN_TIMEOUT, "the last acknowledgements", || async {
            let done = acked.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed);
            let sent = sent.load(Ordering::Relaxed);
            if done >= sent {
                Ok(())
            } else {
                Err(format!("{done} of {sent}"))
            }
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        drop(contexts);
        let histogram = histogram.lock().await;
        Ok(crate::report(
            acked.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            record_size,
            elapsed,
            &histogram,
        ))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// The peer's rows: the same sizes as Tributary's, 4 publishers × 64 in flight (the setting the
/// peer's figures in the issue were taken with), and one synchronous publisher at 1 KiB.
pub const SCENARIOS: [(&str, usize, usize, usize); 4] = [
    // name, record size, publishers, in flight per publisher
    ("produce-100B", 100, 4, 64),
    ("produce-1KiB", 1024, 4, 64),
    ("produce-10KiB", 10 * 1024, 4, 64),
    ("produce-1KiB-one-in-flight", 1024, 1, 1),
];

/// Runs [`SCENARIOS`] on a fresh peer cluster: (scenario, report) pairs.
pub async fn run(binary: &Path, duration: Duration) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let cluster = NatsCluster::start(binary).await?;
    let mut reports = Vec::new();
    for (index, (name, size, publishers, in_flight)) in SCENARIOS.into_iter().enumerate() {
        let subject = format!("bench.{index}");
        cluster
            .create_stream(&format!("bench-{index}"), &subject)
            .await?;
        let report = cluster
            .produce(&subject, publishers, size, duration, in_flight)
            .await?;
        reports.push((name, report));
    }
    Ok(reports)
}

//! Consumer-library workers in the workload: two workers of one application share the stream
//! through its lease table, checkpointing after every batch, while a monitor scans the lease
//! table. The first worker crashes every 15 s and comes back 5 s later, so leases change hands.
//! Every checkpoint attempt and every observed lease state goes into the history.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tributary_client::AttributeValue;
use tributary_client::consumer::{
    CHECKPOINT, Checkpointer, InitialPosition, LEASE_COUNTER, LEASE_KEY, LEASE_OWNER,
    ProcessorFactory, ShardRecordProcessor, UserRecord, Worker, WorkerConfig,
};

use crate::workload::ClientSource;

use crate::history::{CheckpointOp, Clock, LeaseObservation};

/// The application (and lease table) name.
pub const APPLICATION: &str = "chaos-consumers";
/// Workers of the application.
pub const WORKERS: usize = 2;
/// A lease not renewed this long may be taken: short, so faults move leases during a run.
const FAILOVER_TIME: Duration = Duration::from_secs(3);
/// The first worker crashes (its task dropped, leases held) this long after each start...
const CRASH_EVERY: Duration = Duration::from_secs(15);
/// ...and stays down this long, longer than the failover time: the other worker takes over.
const CRASHED_FOR: Duration = Duration::from_secs(5);
/// How often the monitor scans the lease table.
const SCAN_INTERVAL: Duration = Duration::from_millis(250);

/// What the consumers recorded.
#[derive(Default)]
pub struct Recorded {
    pub checkpoints: Vec<CheckpointOp>,
}

struct Processor {
    worker: String,
    shard: String,
    clock: Clock,
    recorded: Arc<Mutex<Recorded>>,
}

impl Processor {
    fn record(&self, op: CheckpointOp) {
        self.recorded
            .lock()
            .expect("recording lock poisoned")
            .checkpoints
            .push(op);
    }
}

impl ShardRecordProcessor for Processor {
    async fn initialize(&mut self, shard_id: &str) {
        self.shard = shard_id.to_string();
    }

    async fn process_records(
        &mut self,
        records: Vec<UserRecord>,
        _millis_behind_latest: u64,
        checkpointer: &Checkpointer,
    ) {
        let Some(last) = records.last() else {
            return;
        };
        let invoked_ms = self.clock.now();
        let result = checkpointer.checkpoint_record(last).await;
        self.record(CheckpointOp {
            worker: self.worker.clone(),
            shard: self.shard.clone(),
            sequence: last.sequence_number.clone(),
            invoked_ms,
            completed_ms: self.clock.now(),
            ok: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }

    async fn lease_lost(&mut self) {}

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint_shard_end().await;
    }

    async fn shutdown_requested(&mut self, _checkpointer: &Checkpointer) {}
}

#[derive(Clone)]
struct Factory {
    worker: String,
    clock: Clock,
    recorded: Arc<Mutex<Recorded>>,
}

impl ProcessorFactory for Factory {
    type Processor = Processor;

    fn create(&self) -> Processor {
        Processor {
            worker: self.worker.clone(),
            shard: String::new(),
            clock: self.clock,
            recorded: self.recorded.clone(),
        }
    }
}

/// Starts the workers; they stop when `stop` turns true.
pub fn spawn_workers(
    clients: Vec<ClientSource>,
    stream: &str,
    clock: Clock,
    recorded: Arc<Mutex<Recorded>>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .into_iter()
        .enumerate()
        .map(|(index, mut clients)| {
            let worker = format!("worker-{}", index + 1);
            let mut config = WorkerConfig::new(APPLICATION, stream, &worker);
            config.initial_position = InitialPosition::TrimHorizon;
            config.failover_time = FAILOVER_TIME;
            let factory = Factory {
                worker: worker.clone(),
                clock,
                recorded: recorded.clone(),
            };
            let stop = stop.clone();
            // The first worker crashes now and then, so leases move between workers.
            let crashes = index == 0;
            tokio::spawn(async move {
                while !*stop.borrow() {
                    // Each start takes the latest node list (a `wipe` replaces nodes).
                    let run = Worker::new(clients.client(), config.clone(), factory.clone())
                        .run(stop.clone());
                    let lifetime = if crashes { CRASH_EVERY } else { Duration::MAX };
                    tokio::select! {
                        outcome = run => if let Err(error) = outcome {
                            // Its lease table was unreachable for a while: start it again, as a
                            // supervisor would.
                            eprintln!("{worker} stopped ({error}); starting it again");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        },
                        _ = tokio::time::sleep(lifetime) => {
                            // Dropped mid-flight, leases held: its leases expire and move.
                            tokio::time::sleep(CRASHED_FOR).await;
                        }
                    }
                }
            })
        })
        .collect()
}

fn text(item: &tributary_client::Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) | Some(AttributeValue::N(value)) => Some(value.clone()),
        _ => None,
    }
}

/// Scans the lease table until `stop`, recording every lease's owner, counter and checkpoint.
pub async fn monitor(
    mut clients: ClientSource,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> Vec<LeaseObservation> {
    let mut observations = Vec::new();
    while !*stop.borrow() {
        if let Ok(items) = clients.client().scan(APPLICATION).await {
            let at_ms = clock.now();
            for item in items {
                let (Some(shard), Some(counter)) =
                    (text(&item, LEASE_KEY), text(&item, LEASE_COUNTER))
                else {
                    continue;
                };
                observations.push(LeaseObservation {
                    at_ms,
                    shard,
                    owner_opt: text(&item, LEASE_OWNER),
                    counter: counter.parse().unwrap_or(0),
                    checkpoint_opt: text(&item, CHECKPOINT),
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
    observations
}

//! A consumer worker in the spirit of the Kinesis Client Library. Workers of one application
//! share a stream through a lease table (named after the application, created if missing): one
//! item per shard, owned by at most one worker at a time.
//!
//! - **Shard sync** creates a lease for every shard that has none (children start at
//!   TRIM_HORIZON; the oldest shards at the configured initial position).
//! - **Taking**: a lease whose `leaseCounter` has not moved for one failover time, or that has no
//!   owner, is expired and may be taken. Each worker aims at ceil(leases / workers); when no lease
//!   is expired and it holds fewer, it steals one lease per cycle from the most loaded worker.
//! - **Renewing** bumps `leaseCounter` on the condition that owner and counter are unchanged; so
//!   do checkpoints: a worker that lost a lease can never write over its new owner.
//! - A child shard is processed only once every parent's checkpoint is SHARD_END.
//! - Graceful shutdown asks each processor to checkpoint and releases the leases at once.
//!
//! Delivery is at-least-once; checkpoints never move backwards. Intervals: renew every failover
//! time / 3, take every failover time / 2 (failover time defaults to 10 s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

pub use crate::aggregation::UserRecord;
use crate::aggregation::deaggregate;
use crate::{
    AttributeValue, Client, ClientError, Comparator, Condition, ErrorCode, Item, Update, v1,
};
use tributary_types::HashKeyRange;

/// Lease attribute names, as the KCL names them.
pub const LEASE_KEY: &str = "leaseKey";
pub const LEASE_OWNER: &str = "leaseOwner";
pub const LEASE_COUNTER: &str = "leaseCounter";
pub const CHECKPOINT: &str = "checkpoint";
pub const CHECKPOINT_SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
pub const PARENT_SHARD_ID: &str = "parentShardId";
pub const CHILD_SHARD_IDS: &str = "childShardIds";
pub const STARTING_HASH_KEY: &str = "startingHashKey";
pub const ENDING_HASH_KEY: &str = "endingHashKey";

pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
pub const LATEST: &str = "LATEST";
pub const SHARD_END: &str = "SHARD_END";
/// The checkpoint sentinel of a lease created at an AT_TIMESTAMP initial position.
pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";

/// The failover time of a default configuration.
pub const DEFAULT_FAILOVER_TIME: Duration = Duration::from_secs(10);
/// Pause between polls of a caught-up shard.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long a graceful shutdown waits for each processor's final checkpoint.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where a worker starts on shards that have no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
    AtTimestamp(u64),
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names the lease table.
    pub application_name: String,
    pub stream: String,
    pub worker_id: String,
    pub initial_position: InitialPosition,
    /// A lease not renewed for this long may be taken by another worker.
    pub failover_time: Duration,
    pub max_leases: usize,
    pub retrieval: Retrieval,
}

/// How a worker reads its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrieval {
    /// GetRecords, polling (shares the shard's 5 reads/s with other readers).
    Polling,
    /// SubscribeToShard as a registered consumer named after the application (registered when
    /// missing): records pushed, its own 2 MiB/s.
    FanOut,
}

impl WorkerConfig {
    pub fn new(application_name: &str, stream: &str, worker_id: &str) -> WorkerConfig {
        WorkerConfig {
            application_name: application_name.to_string(),
            stream: stream.to_string(),
            worker_id: worker_id.to_string(),
            initial_position: InitialPosition::Latest,
            failover_time: DEFAULT_FAILOVER_TIME,
            max_leases: usize::MAX,
            retrieval: Retrieval::Polling,
        }
    }

    fn renew_interval(&self) -> Duration {
        self.failover_time / 3
    }

    fn take_interval(&self) -> Duration {
        self.failover_time / 2
    }
}

/// What a worker calls for each shard it processes, as the KCL's ShardRecordProcessor.
pub trait ShardRecordProcessor: Send + 'static {
    fn initialize(&mut self, shard_id: &str) -> impl Future<Output = ()> + Send;
    /// User records in order: aggregated records arrive de-aggregated, numbered by the stored
    /// record's sequence number and a sub-sequence number.
    fn process_records(
        &mut self,
        records: Vec<UserRecord>,
        millis_behind_latest: u64,
        checkpointer: &Checkpointer,
    ) -> impl Future<Output = ()> + Send;
    /// Another worker took the lease: stop, do not checkpoint.
    fn lease_lost(&mut self) -> impl Future<Output = ()> + Send;
    /// The shard is closed and read to its end: checkpoint SHARD_END (`checkpoint_shard_end`).
    fn shard_ended(&mut self, checkpointer: &Checkpointer) -> impl Future<Output = ()> + Send;
    /// The worker is shutting down gracefully: checkpoint what was processed.
    fn shutdown_requested(
        &mut self,
        checkpointer: &Checkpointer,
    ) -> impl Future<Output = ()> + Send;
}

/// Creates a processor per shard.
pub trait ProcessorFactory: Send + Sync + 'static {
    type Processor: ShardRecordProcessor;
    fn create(&self) -> Self::Processor;
}

/// A lease this worker holds: the counter it last wrote (every write is conditional on it).
#[derive(Debug)]
struct Held {
    counter: u64,
    lost: bool,
    last_checkpoint: Option<String>,
    /// With `last_checkpoint`: 0 when the whole stored record is done, else the sub-sequence
    /// number of the first user record of it still to process.
    last_sub: u64,
    /// Set at a closed shard's end: recorded as `childShardIds` with the SHARD_END checkpoint.
    children: Vec<String>,
}

/// Checkpoints a shard's progress; conditional on this worker still holding the lease.
pub struct Checkpointer {
    client: Client,
    table: String,
    shard_id: String,
    worker_id: String,
    held: Arc<Mutex<Held>>,
}

impl Checkpointer {
    /// Records that every record up to `sequence_number` is processed.
    pub async fn checkpoint(&self, sequence_number: &str) -> Result<(), ClientError> {
        self.write_checkpoint(sequence_number, 0).await
    }

    /// Records that every user record up to and including `record` is processed: inside an
    /// aggregated record, a restart resumes with the next user record of it.
    pub async fn checkpoint_record(&self, record: &UserRecord) -> Result<(), ClientError> {
        let next_sub = if record.is_last_in_stored() {
            0
        } else {
            record.sub_sequence_number + 1
        };
        self.write_checkpoint(&record.sequence_number, next_sub)
            .await
    }

    /// Records that the closed shard is done; its children may start.
    pub async fn checkpoint_shard_end(&self) -> Result<(), ClientError> {
        self.write_checkpoint(SHARD_END, 0).await
    }

    async fn write_checkpoint(&self, checkpoint: &str, next_sub: u64) -> Result<(), ClientError> {
        let mut held = self.held.lock().await;
        if held.lost {
            return Err(lease_lost(&self.shard_id));
        }
        if let Some(previous) = &held.last_checkpoint
            && moves_backwards((previous, held.last_sub), (checkpoint, next_sub))
        {
            return Err(ClientError::Api(crate::Error::invalid_argument(format!(
                "checkpoint {checkpoint} is behind {previous}: checkpoints never move backwards"
            ))));
        }
        let mut updates = vec![
            set(CHECKPOINT, AttributeValue::S(checkpoint.to_string())),
            set(CHECKPOINT_SUB_SEQUENCE, number(next_sub)),
            set(OWNER_SWITCHES, number(0)),
            Update::Add {
                attribute: LEASE_COUNTER.into(),
                value: number(1),
            },
        ];
        if checkpoint == SHARD_END && !held.children.is_empty() {
            let children = held.children.iter().cloned().collect();
            updates.push(set(CHILD_SHARD_IDS, AttributeValue::Ss(children)));
        }
        let condition = owned_at(&self.worker_id, held.counter);
        match self
            .client
            .update_item(&self.table, &self.shard_id, &updates, Some(&condition))
            .await
        {
            Ok(_) => {
                held.counter += 1;
                held.last_checkpoint = Some(checkpoint.to_string());
                held.last_sub = next_sub;
                Ok(())
            }
            Err(ClientError::Api(error)) if error.code == ErrorCode::ConditionalCheckFailed => {
                held.lost = true;
                Err(lease_lost(&self.shard_id))
            }
            Err(other) => Err(other),
        }
    }
}

/// Checkpoints are (sequence number, next sub-sequence number); a next sub-sequence number of 0
/// means the whole record, past every partial checkpoint of it.
fn moves_backwards(previous: (&str, u64), next: (&str, u64)) -> bool {
    let rank = |sub: u64| if sub == 0 { u64::MAX } else { sub };
    match (previous.0.parse::<u128>(), next.0.parse::<u128>()) {
        (Ok(p), Ok(n)) => (n, rank(next.1)) < (p, rank(previous.1)),
        _ => previous.0 == SHARD_END && next.0 != SHARD_END,
    }
}

fn lease_lost(shard_id: &str) -> ClientError {
    ClientError::Api(crate::Error::new(
        ErrorCode::ConditionalCheckFailed,
        format!("the lease of {shard_id} was lost to another worker"),
    ))
}

fn set(attribute: &str, value: AttributeValue) -> Update {
    Update::Set {
        attribute: attribute.to_string(),
        value,
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The condition of every write a lease owner makes.
fn owned_at(worker: &str, counter: u64) -> Condition {
    Condition::And(vec![
        Condition::Compare {
            attribute: LEASE_OWNER.into(),
            comparator: Comparator::Eq,
            value: AttributeValue::S(worker.to_string()),
        },
        counter_is(counter),
    ])
}

fn counter_is(counter: u64) -> Condition {
    Condition::Compare {
        attribute: LEASE_COUNTER.into(),
        comparator: Comparator::Eq,
        value: number(counter),
    }
}

fn text<'a>(item: &'a Item, attribute: &str) -> Option<&'a str> {
    match item.get(attribute) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

fn counter_of(item: &Item) -> u64 {
    match item.get(LEASE_COUNTER) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

fn sub_sequence_of(item: &Item) -> u64 {
    match item.get(CHECKPOINT_SUB_SEQUENCE) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The lease's shard hash range (user records of aggregates outside it are dropped).
fn range_of(item: &Item) -> Option<HashKeyRange> {
    Some(HashKeyRange {
        start_inclusive: text(item, STARTING_HASH_KEY)?.parse().ok()?,
        end_inclusive: text(item, ENDING_HASH_KEY)?.parse().ok()?,
    })
}

/// Where a shard's processing starts: its lease's checkpoint.
struct Start {
    checkpoint: String,
    /// Inside an aggregated record: resume at this user record of `checkpoint` (0: after it).
    next_sub: u64,
    initial: InitialPosition,
    range_opt: Option<HashKeyRange>,
}

impl Start {
    /// De-aggregates a batch, dropping user records a partial checkpoint already covered.
    fn user_records(&self, records: Vec<v1::Record>) -> Vec<UserRecord> {
        let mut users = deaggregate(records, self.range_opt);
        if self.next_sub > 0 {
            users.retain(|u| {
                u.sequence_number != self.checkpoint || u.sub_sequence_number >= self.next_sub
            });
        }
        users
    }
}

fn parents_of(item: &Item) -> Vec<String> {
    match item.get(PARENT_SHARD_ID) {
        Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A shard this worker processes.
struct Running {
    held: Arc<Mutex<Held>>,
    task: tokio::task::JoinHandle<()>,
}

/// A consumer worker. `run` returns after a graceful shutdown (the `shutdown` watch turning true).
pub struct Worker<F: ProcessorFactory> {
    client: Client,
    config: WorkerConfig,
    factory: Arc<F>,
    /// When each lease's counter was last seen to change: (counter, seen at).
    observed: HashMap<String, (u64, Instant)>,
    running: BTreeMap<String, Running>,
    /// Turns true on graceful shutdown; shard tasks watch it.
    shutdown: watch::Receiver<bool>,
}

impl<F: ProcessorFactory> Drop for Worker<F> {
    /// A worker dropped without a graceful shutdown (its `run` cancelled) stops its shard
    /// processors at once: they never outlive it, and its leases expire as after a crash.
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

impl<F: ProcessorFactory> Worker<F> {
    pub fn new(client: Client, config: WorkerConfig, factory: F) -> Worker<F> {
        Worker {
            client,
            config,
            factory: Arc::new(factory),
            observed: HashMap::new(),
            running: BTreeMap::new(),
            shutdown: watch::channel(false).1,
        }
    }

    fn table(&self) -> &str {
        &self.config.application_name
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ClientError> {
        self.shutdown = shutdown.clone();
        if self.config.retrieval == Retrieval::FanOut {
            match self
                .client
                .register_consumer(&self.config.stream, &self.config.application_name)
                .await
            {
                Ok(_) => {}
                Err(ClientError::Api(error)) if error.code == ErrorCode::ResourceInUse => {}
                Err(other) => return Err(other),
            }
        }
        match self
            .client
            .create_table(self.table(), Some(LEASE_KEY))
            .await
        {
            Ok(()) => {}
            Err(ClientError::Api(error)) if error.code == ErrorCode::ResourceInUse => {}
            Err(other) => return Err(other),
        }
        let mut next_take = Instant::now();
        let mut renew = tokio::time::interval(self.config.renew_interval());
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_take) => {
                    if let Err(error) = self.take_cycle().await {
                        tracing::warn!(worker = %self.config.worker_id, %error, "lease cycle failed");
                    }
                    next_take = Instant::now() + self.config.take_interval();
                }
                _ = renew.tick() => self.renew_all().await,
                // The guard wait_for returns is not Send: drop it inside, so that a worker's
                // run() can be spawned on a multi-threaded runtime.
                _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
                    self.shut_down().await;
                    return Ok(());
                }
            }
        }
    }

    /// Shard sync, expiry, taking or stealing, and starting eligible shards.
    async fn take_cycle(&mut self) -> Result<(), ClientError> {
        self.sync_shards().await?;
        let leases = self.client.scan(self.table()).await?;
        let now = Instant::now();
        let me = self.config.worker_id.clone();
        let mut expired = Vec::new();
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ended = BTreeSet::new();
        for lease in &leases {
            let Some(key) = text(lease, LEASE_KEY) else {
                continue;
            };
            if text(lease, CHECKPOINT) == Some(SHARD_END) {
                ended.insert(key.to_string());
                continue;
            }
            let counter = counter_of(lease);
            let seen = self
                .observed
                .entry(key.to_string())
                .or_insert((counter, now));
            if seen.0 != counter {
                *seen = (counter, now);
            }
            match text(lease, LEASE_OWNER) {
                Some(owner) if owner == me && self.running.contains_key(key) => {
                    owners.entry(me.clone()).or_default().push(key.into())
                }
                // Ours from an earlier life of this worker id (a crash, a restart): nobody
                // renews it, so take it back at once rather than leave it to expire.
                Some(owner) if owner == me => expired.push((key.to_string(), counter)),
                Some(owner) if now.duration_since(seen.1) < self.config.failover_time => owners
                    .entry(owner.to_string())
                    .or_default()
                    .push(key.into()),
                _ => expired.push((key.to_string(), counter)),
            }
        }
        // Leases this worker believes it holds but the table gives to another (or drops).
        let mine: BTreeSet<String> = owners
            .get(&me)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let lost: Vec<String> = self
            .running
            .keys()
            .filter(|k| !mine.contains(*k))
            .cloned()
            .collect();
        for key in lost {
            // A finished shard is simply let go; any other lease went to another worker.
            let to_another = !ended.contains(&key);
            self.drop_lease(&key, to_another).await;
        }

        let active = leases
            .iter()
            .filter(|l| text(l, CHECKPOINT) != Some(SHARD_END))
            .count();
        let workers = owners.len().max(1) + usize::from(!owners.contains_key(&me));
        let target = active.div_ceil(workers).min(self.config.max_leases);
        let mut holding = mine.len();
        for (key, counter) in expired {
            if holding >= target {
                break;
            }
            if self.take(&key, counter, false).await {
                holding += 1;
            }
        }
        if holding < target
            && let Some((victim, keys)) = owners
                .iter()
                .filter(|(owner, _)| **owner != me)
                .max_by_key(|(_, keys)| keys.len())
            && keys.len() > target
        {
            let key = keys[keys.len() - 1].clone();
            let counter = self.observed.get(&key).map_or(0, |seen| seen.0);
            tracing::info!(worker = %me, %victim, lease = %key, "stealing a lease to balance");
            self.take(&key, counter, true).await;
        }
        self.start_eligible(&leases).await;
        Ok(())
    }

    /// Creates a lease for every shard without one.
    async fn sync_shards(&mut self) -> Result<(), ClientError> {
        let shards = self.client.list_shards(&self.config.stream, None).await?;
        let existing: BTreeSet<String> = self
            .client
            .scan(self.table())
            .await?
            .iter()
            .filter_map(|lease| text(lease, LEASE_KEY).map(str::to_string))
            .collect();
        for shard in shards {
            if existing.contains(&shard.shard_id) {
                continue;
            }
            let parents: BTreeSet<String> = shard
                .parent_shard_id
                .iter()
                .chain(shard.adjacent_parent_shard_id.iter())
                .cloned()
                .collect();
            let checkpoint = if !parents.is_empty() {
                TRIM_HORIZON.to_string()
            } else {
                match self.config.initial_position {
                    InitialPosition::TrimHorizon => TRIM_HORIZON.to_string(),
                    InitialPosition::Latest => LATEST.to_string(),
                    InitialPosition::AtTimestamp(_) => AT_TIMESTAMP.to_string(),
                }
            };
            let mut item: Item = [
                (
                    LEASE_KEY.to_string(),
                    AttributeValue::S(shard.shard_id.clone()),
                ),
                (LEASE_COUNTER.to_string(), number(0)),
                (CHECKPOINT.to_string(), AttributeValue::S(checkpoint)),
                (CHECKPOINT_SUB_SEQUENCE.to_string(), number(0)),
                (OWNER_SWITCHES.to_string(), number(0)),
                (
                    STARTING_HASH_KEY.to_string(),
                    AttributeValue::S(shard.starting_hash_key.clone()),
                ),
                (
                    ENDING_HASH_KEY.to_string(),
                    AttributeValue::S(shard.ending_hash_key.clone()),
                ),
            ]
            .into_iter()
            .collect();
            if !parents.is_empty() {
                item.insert(PARENT_SHARD_ID.to_string(), AttributeValue::Ss(parents));
            }
            let condition = Condition::AttributeNotExists(LEASE_KEY.into());
            match self
                .client
                .put_item(self.table(), &item, Some(&condition))
                .await
            {
                Ok(()) => {}
                Err(ClientError::Api(error)) if error.code == ErrorCode::ConditionalCheckFailed => {
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Takes a lease at the counter last seen; whether it worked.
    async fn take(&mut self, key: &str, counter: u64, steal: bool) -> bool {
        let updates = [
            set(
                LEASE_OWNER,
                AttributeValue::S(self.config.worker_id.clone()),
            ),
            Update::Add {
                attribute: LEASE_COUNTER.into(),
                value: number(1),
            },
            Update::Add {
                attribute: OWNER_SWITCHES.into(),
                value: number(1),
            },
        ];
        match self
            .client
            .update_item(self.table(), key, &updates, Some(&counter_is(counter)))
            .await
        {
            Ok(item) => {
                tracing::info!(worker = %self.config.worker_id, lease = %key, steal, "took a lease");
                let held = Held {
                    counter: counter_of(&item),
                    lost: false,
                    last_checkpoint: text(&item, CHECKPOINT).map(str::to_string),
                    last_sub: sub_sequence_of(&item),
                    children: Vec::new(),
                };
                if let Some(previous) = self.running.remove(key) {
                    previous.task.abort();
                }
                self.running.insert(
                    key.to_string(),
                    Running {
                        held: Arc::new(Mutex::new(held)),
                        task: tokio::spawn(async {}),
                    },
                );
                true
            }
            Err(_) => false,
        }
    }

    /// Starts processing held shards whose parents are all done.
    async fn start_eligible(&mut self, leases: &[Item]) {
        let done: BTreeSet<&str> = leases
            .iter()
            .filter(|l| text(l, CHECKPOINT) == Some(SHARD_END))
            .filter_map(|l| text(l, LEASE_KEY))
            .collect();
        let known: BTreeSet<&str> = leases.iter().filter_map(|l| text(l, LEASE_KEY)).collect();
        for lease in leases {
            let Some(key) = text(lease, LEASE_KEY) else {
                continue;
            };
            let Some(running) = self.running.get_mut(key) else {
                continue;
            };
            if !running.task.is_finished() {
                continue;
            }
            let parents_done = parents_of(lease)
                .iter()
                .all(|p| done.contains(p.as_str()) || !known.contains(p.as_str()));
            if !parents_done || text(lease, CHECKPOINT) == Some(SHARD_END) {
                continue;
            }
            let checkpointer = Checkpointer {
                client: self.client.clone(),
                table: self.config.application_name.clone(),
                shard_id: key.to_string(),
                worker_id: self.config.worker_id.clone(),
                held: running.held.clone(),
            };
            let processor = self.factory.create();
            let start = Start {
                checkpoint: text(lease, CHECKPOINT).unwrap_or(TRIM_HORIZON).to_string(),
                next_sub: sub_sequence_of(lease),
                initial: self.config.initial_position,
                range_opt: range_of(lease),
            };
            let stream = self.config.stream.clone();
            let retrieval = match self.config.retrieval {
                Retrieval::Polling => None,
                Retrieval::FanOut => Some(self.config.application_name.clone()),
            };
            let shutdown = self.shutdown.clone();
            running.task = tokio::spawn(process_shard(
                processor,
                checkpointer,
                stream,
                start,
                retrieval,
                shutdown,
            ));
        }
    }

    async fn renew_all(&mut self) {
        let keys: Vec<String> = self.running.keys().cloned().collect();
        for key in keys {
            let Some(running) = self.running.get(&key) else {
                continue;
            };
            let held = running.held.clone();
            let mut held = held.lock().await;
            if held.lost {
                drop(held);
                self.drop_lease(&key, false).await;
                continue;
            }
            let renew = [Update::Add {
                attribute: LEASE_COUNTER.into(),
                value: number(1),
            }];
            let condition = owned_at(&self.config.worker_id, held.counter);
            match self
                .client
                .update_item(self.table(), &key, &renew, Some(&condition))
                .await
            {
                Ok(_) => held.counter += 1,
                Err(ClientError::Api(error)) if error.code == ErrorCode::ConditionalCheckFailed => {
                    held.lost = true;
                    drop(held);
                    self.drop_lease(&key, true).await;
                }
                Err(error) => tracing::debug!(lease = %key, %error, "renewal failed; retrying"),
            }
        }
    }

    /// Stops processing a lease. The shard's task sees it before its next batch and tells its
    /// processor (`lease_lost`); its checkpoints fail from now on.
    async fn drop_lease(&mut self, key: &str, lost: bool) {
        if let Some(running) = self.running.remove(key) {
            running.held.lock().await.lost = true;
            if lost {
                tracing::info!(worker = %self.config.worker_id, lease = %key, "lease lost");
            }
        }
    }

    /// Graceful shutdown: each processor checkpoints, then every lease is released at once.
    async fn shut_down(&mut self) {
        let running = std::mem::take(&mut self.running);
        for (key, running) in running {
            // The task asks its processor to checkpoint (`shutdown_requested`) and returns.
            if tokio::time::timeout(SHUTDOWN_GRACE, running.task)
                .await
                .is_err()
            {
                tracing::warn!(lease = %key, "a processor did not finish in time");
            }
            let held = running.held.lock().await;
            if held.lost {
                continue;
            }
            let release = [
                Update::Remove {
                    attribute: LEASE_OWNER.into(),
                },
                Update::Add {
                    attribute: LEASE_COUNTER.into(),
                    value: number(1),
                },
            ];
            let condition = owned_at(&self.config.worker_id, held.counter);
            if let Err(error) = self
                .client
                .update_item(self.table(), &key, &release, Some(&condition))
                .await
            {
                tracing::warn!(lease = %key, %error, "releasing a lease failed");
            }
        }
    }
}

/// Reads one shard from its checkpoint and hands records to the processor until the shard ends,
/// the lease is lost or the worker shuts down.
async fn process_shard<P: ShardRecordProcessor>(
    mut processor: P,
    checkpointer: Checkpointer,
    stream: String,
    start: Start,
    fan_out_consumer_opt: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = checkpointer.client.clone();
    let shard = checkpointer.shard_id.clone();
    processor.initialize(&shard).await;
    let mut request = v1::GetShardIteratorRequest {
        stream_name: stream,
        shard_id: shard.clone(),
        ..Default::default()
    };
    match start.checkpoint.as_str() {
        TRIM_HORIZON | LATEST => request.shard_iterator_type = start.checkpoint.clone(),
        AT_TIMESTAMP => {
            request.shard_iterator_type = AT_TIMESTAMP.into();
            request.timestamp_ms = match start.initial {
                InitialPosition::AtTimestamp(t) => Some(t),
                _ => Some(0),
            };
        }
        sequence_number => {
            // A partial checkpoint inside an aggregated record re-reads that record.
            request.shard_iterator_type = if start.next_sub > 0 {
                "AT_SEQUENCE_NUMBER".into()
            } else {
                "AFTER_SEQUENCE_NUMBER".into()
            };
            request.starting_sequence_number = Some(sequence_number.to_string());
        }
    }
    if let Some(consumer) = fan_out_consumer_opt {
        subscribe_shard(processor, checkpointer, request, &start, consumer, shutdown).await;
        return;
    }
    let mut iterator_opt: Option<String> = None;
    loop {
        if stopped(&mut processor, &checkpointer, &shutdown).await {
            return;
        }
        let iterator = match &iterator_opt {
            Some(iterator) => iterator.clone(),
            None => match client.shard_iterator(request.clone()).await {
                Ok(iterator) => iterator,
                Err(error) => {
                    tracing::debug!(%shard, %error, "no iterator yet; retrying");
                    idle(&mut shutdown).await;
                    continue;
                }
            },
        };
        let response = match client.get_records(&iterator, None).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%shard, %error, "GetRecords failed; retrying");
                idle(&mut shutdown).await;
                continue;
            }
        };
        let caught_up = response.records.is_empty();
        let users = start.user_records(response.records);
        if !users.is_empty() {
            processor
                .process_records(users, response.millis_behind_latest, &checkpointer)
                .await;
        }
        match response.next_shard_iterator {
            Some(next) => iterator_opt = Some(next),
            None => {
                checkpointer.held.lock().await.children = response
                    .child_shards
                    .into_iter()
                    .map(|c| c.shard_id)
                    .collect();
                processor.shard_ended(&checkpointer).await;
                return;
            }
        }
        if caught_up {
            idle(&mut shutdown).await;
        }
    }
}

/// [`process_shard`] with enhanced fan-out: subscriptions renewed from their continuation.
async fn subscribe_shard<P: ShardRecordProcessor>(
    mut processor: P,
    checkpointer: Checkpointer,
    start: v1::GetShardIteratorRequest,
    from: &Start,
    consumer: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = checkpointer.client.clone();
    let shard = checkpointer.shard_id.clone();
    let mut position = v1::StartingPosition {
        r#type: start.shard_iterator_type,
        sequence_number: start.starting_sequence_number,
        timestamp_ms: start.timestamp_ms,
    };
    loop {
        // A subscription taken over by the lease's new owner must not be taken back.
        if checkpointer.held.lock().await.lost {
            processor.lease_lost().await;
            return;
        }
        let request = v1::SubscribeToShardRequest {
            stream_name: start.stream_name.clone(),
            consumer_name: consumer.clone(),
            shard_id: shard.clone(),
            starting_position: Some(position.clone()),
        };
        let mut events = match client.subscribe_to_shard(request).await {
            Ok(events) => events,
            Err(error) => {
                tracing::debug!(%shard, %error, "subscribing failed; retrying");
                idle(&mut shutdown).await;
                if stopped(&mut processor, &checkpointer, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let event = tokio::select! {
                event = events.message() => event,
                _ = shutdown.changed() => {
                    processor.shutdown_requested(&checkpointer).await;
                    return;
                }
            };
            if checkpointer.held.lock().await.lost {
                processor.lease_lost().await;
                return;
            }
            let Ok(Some(event)) = event else {
                break;
            };
            let users = from.user_records(event.records);
            if !users.is_empty() {
                processor
                    .process_records(users, event.millis_behind_latest, &checkpointer)
                    .await;
            }
            match event.continuation_sequence_number {
                Some(continuation) => {
                    position = v1::StartingPosition {
                        r#type: "AT_SEQUENCE_NUMBER".into(),
                        sequence_number: Some(continuation),
                        timestamp_ms: None,
                    }
                }
                None => {
                    checkpointer.held.lock().await.children =
                        event.child_shards.into_iter().map(|c| c.shard_id).collect();
                    processor.shard_ended(&checkpointer).await;
                    return;
                }
            }
        }
    }
}

/// Whether the shard's task must end: its lease is lost (the processor hears `lease_lost`) or
/// the worker shuts down (the processor may checkpoint in `shutdown_requested`).
async fn stopped<P: ShardRecordProcessor>(
    processor: &mut P,
    checkpointer: &Checkpointer,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    if checkpointer.held.lock().await.lost {
        processor.lease_lost().await;
        return true;
    }
    if *shutdown.borrow() {
        processor.shutdown_requested(checkpointer).await;
        return true;
    }
    false
}

/// Waits one idle poll, or less if the worker shuts down.
async fn idle(shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(IDLE_POLL) => {}
        _ = shutdown.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_only_move_forward() {
        assert!(!moves_backwards((TRIM_HORIZON, 0), ("5", 0)));
        assert!(!moves_backwards(("5", 0), ("6", 0)));
        assert!(moves_backwards(("6", 0), ("5", 0)));
        assert!(!moves_backwards(("6", 0), (SHARD_END, 0)));
        assert!(moves_backwards((SHARD_END, 0), ("7", 0)));
        // Inside an aggregated record: user record by user record, then the whole record.
        assert!(!moves_backwards(("5", 2), ("5", 3)));
        assert!(!moves_backwards(("5", 3), ("5", 0)));
        assert!(moves_backwards(("5", 0), ("5", 3)));
        assert!(moves_backwards(("5", 3), ("5", 1)));
        assert!(!moves_backwards(("5", 3), ("6", 1)));
    }

    #[test]
    fn a_partial_checkpoint_resumes_inside_its_aggregated_record() {
        let mut aggregator = crate::aggregation::Aggregator::new();
        for text in ["a", "b", "c"] {
            aggregator.push(text, None, bytes::Bytes::from(text));
        }
        let stored = |sequence_number: &str| v1::Record {
            sequence_number: sequence_number.into(),
            approximate_arrival_timestamp_ms: 1,
            data: aggregator.encode(),
            partition_key: "a".into(),
            ..Default::default()
        };
        // Checkpointed through "b" of record 5: AT_SEQUENCE_NUMBER 5 re-reads it.
        let start = Start {
            checkpoint: "5".into(),
            next_sub: 2,
            initial: InitialPosition::TrimHorizon,
            range_opt: None,
        };
        let users = start.user_records(vec![stored("5"), stored("6")]);
        let seen: Vec<(&str, u64)> = users
            .iter()
            .map(|u| (u.sequence_number.as_str(), u.sub_sequence_number))
            .collect();
        assert_eq!(seen, [("5", 2), ("6", 0), ("6", 1), ("6", 2)]);
    }

    #[test]
    fn intervals_derive_from_the_failover_time() {
        let config = WorkerConfig::new("app", "stream", "w");
        assert_eq!(config.failover_time, Duration::from_secs(10));
        assert!(config.renew_interval() < config.take_interval());
        assert!(config.take_interval() < config.failover_time);
    }
}

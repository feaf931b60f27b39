//! The producer: what most applications use instead of PutRecords. `put` buffers a record and
//! hands back a receipt that resolves to its shard id and sequence number (or a typed error).
//! Records are batched per shard (up to 500 records / 5 MiB per PutRecords call, after a linger
//! time), retried with exponential backoff and jitter while throttled or unavailable until their
//! time-to-live, and never reordered within a shard: each shard has at most one batch in flight,
//! and records a retry sends again go back to the front of their shard's queue. Buffered bytes are
//! bounded; a full buffer makes `put` wait (or fail at once, if configured).
//!
//! Batches go straight to each shard's leader (learned from DescribeStream and ClusterStatus,
//! re-learned every 10 s and after a retry), skipping the forwarding hop.
//!
//! Aggregation (off by default, as consumers must de-aggregate): small user records bound for
//! the same shard are packed into KPL aggregated records of at most 51,200 bytes; each user
//! record's receipt carries the stored record's sequence number and its sub-sequence number.
//!
//! Idempotence (on by default): each shard queue is a producer id of its own, and every stored
//! record gets the next number of that sequence when first sent, kept across retries; a shard
//! that already stored a record answers a retry with the original sequence number, so a retry
//! after an unknown outcome (a timeout, a leader change) never stores it twice.

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tributary_types::{
    ErrorCode, HashKey, HashKeyRange, MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_ENTRIES,
    PutRecordEntry, validate_put_entry,
};

use crate::aggregation::{AGGREGATED_PARTITION_KEY, Aggregator, MAX_AGGREGATED_BYTES};
use crate::{Client, ClientError, Error, v1};

/// How often the producer re-learns shard leaders.
const LEADER_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a record may wait for its batch to fill (0: send at once).
    pub linger: Duration,
    /// Buffered records' bytes (data + key) at most; `put` waits or fails beyond it.
    pub max_buffered_bytes: usize,
    /// Fail `put` with LIMIT_EXCEEDED when the buffer is full instead of waiting.
    pub fail_when_full: bool,
    /// A record still unacknowledged this long after `put` fails with its last error.
    pub record_ttl: Duration,
    /// First retry pause; doubled per attempt (with jitter) up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Pack small records into KPL aggregated records (consumers must de-aggregate; the
    /// worker in [`crate::consumer`] does).
    pub aggregate: bool,
    /// Number records so that retries are never stored twice (see the module docs).
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(100),
            max_buffered_bytes: 64 * 1024 * 1024,
            fail_when_full: false,
            record_ttl: Duration::from_secs(30),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            aggregate: false,
            idempotent: true,
        }
    }
}

/// A record's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub shard_id: String,
    pub sequence_number: String,
    /// The record's position inside an aggregated record (none when sent on its own).
    pub sub_sequence_number_opt: Option<u64>,
}

/// Resolves when the record is acknowledged (or has failed for good).
pub struct PutReceipt {
    rx: oneshot::Receiver<Result<PutResult, Error>>,
}

impl std::future::Future for PutReceipt {
    type Output = Result<PutResult, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|result| {
            result.unwrap_or_else(|_| Err(Error::internal("the producer stopped before answering")))
        })
    }
}

/// One user record waiting for its answer.
struct Pending {
    partition_key: String,
    explicit_hash_key_opt: Option<String>,
    data: Bytes,
    hash_key: HashKey,
    /// Buffer bytes it holds (released when answered).
    size: usize,
    put_at: Instant,
    reply: oneshot::Sender<Result<PutResult, Error>>,
}

/// One record to store: a user record, or an aggregate of several. Frozen (its request entry
/// and producer number fixed) when first sent, so a retry resends exactly the same record.
struct Unit {
    users: Vec<Pending>,
    aggregator_opt: Option<Aggregator>,
    entry_opt: Option<v1::PutRecordsRequestEntry>,
    producer_sequence_opt: Option<u64>,
    attempts: u32,
}

impl Unit {
    fn put_at(&self) -> Instant {
        self.users.first().map_or_else(Instant::now, |p| p.put_at)
    }

    /// Its bytes toward PutRecords' 5 MiB (data and partition key).
    fn size(&self) -> usize {
        match (&self.entry_opt, &self.aggregator_opt) {
            (Some(entry), _) => entry.data.len() + entry.partition_key.len(),
            (None, Some(aggregator)) if self.users.len() > 1 => {
                aggregator.size() + AGGREGATED_PARTITION_KEY.len()
            }
            _ => self
                .users
                .iter()
                .map(|p| p.data.len() + p.partition_key.len())
                .sum(),
        }
    }

    /// Whether `pending` may join this (still open) aggregate.
    fn fits(&self, pending: &Pending) -> bool {
        self.entry_opt.is_none()
            && self.aggregator_opt.as_ref().is_some_and(|aggregator| {
                aggregator.size_with(
                    &pending.partition_key,
                    pending.explicit_hash_key_opt.as_deref(),
                    pending.data.len(),
                ) <= MAX_AGGREGATED_BYTES
            })
    }

    /// Fixes the entry to send: a lone record goes as itself (as the KPL does), several as one
    /// aggregated record routed by the first one's hash key.
    fn freeze(&mut self) -> &v1::PutRecordsRequestEntry {
        self.entry_opt
            .get_or_insert_with(|| match &self.aggregator_opt {
                Some(aggregator) if self.users.len() > 1 => v1::PutRecordsRequestEntry {
                    data: aggregator.encode(),
                    partition_key: AGGREGATED_PARTITION_KEY.to_string(),
                    explicit_hash_key: Some(self.users[0].hash_key.0.to_string()),
                },
                _ => {
                    let user = &self.users[0];
                    v1::PutRecordsRequestEntry {
                        data: user.data.clone(),
                        partition_key: user.partition_key.clone(),
                        explicit_hash_key: user.explicit_hash_key_opt.clone(),
                    }
                }
            })
    }
}

enum Command {
    Put(Box<Pending>),
    Flush(oneshot::Sender<()>),
}

/// A producer for one stream.
pub struct Producer {
    commands: mpsc::UnboundedSender<Command>,
    budget: Arc<Semaphore>,
    config: ProducerConfig,
    task: tokio::task::JoinHandle<()>,
}

impl Producer {
    pub fn new(client: Client, stream: &str, config: ProducerConfig) -> Producer {
        let (commands, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(config.max_buffered_bytes));
        let task = tokio::spawn(
            Sender {
                client,
                stream: stream.to_string(),
                config: config.clone(),
                budget: budget.clone(),
                producer_base: std::collections::hash_map::RandomState::new().hash_one(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                ),
                shards: Vec::new(),
                leaders: BTreeMap::new(),
                leaders_at_opt: None,
                queues: BTreeMap::new(),
            }
            .run(rx),
        );
        Producer {
            commands,
            budget,
            config,
            task,
        }
    }

    /// Buffers a record (waiting for space unless configured to fail fast).
    pub async fn put(
        &self,
        partition_key: &str,
        data: Bytes,
        explicit_hash_key_opt: Option<&str>,
    ) -> Result<PutReceipt, Error> {
        let entry = PutRecordEntry {
            partition_key: partition_key.to_string(),
            data,
            explicit_hash_key: explicit_hash_key_opt.map(str::to_string),
        };
        let hash_key = validate_put_entry(&entry)?;
        let size = entry.data.len() + entry.partition_key.len();
        if size > self.config.max_buffered_bytes {
            return Err(Error::invalid_argument(format!(
                "a {size}-byte record cannot fit the producer's {}-byte buffer",
                self.config.max_buffered_bytes
            )));
        }
        let permits = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        let permit = if self.config.fail_when_full {
            self.budget
                .clone()
                .try_acquire_many_owned(permits)
                .map_err(|_| {
                    Error::new(
                        ErrorCode::LimitExceeded,
                        format!(
                            "the producer buffers at most {} bytes; it is full",
                            self.config.max_buffered_bytes
                        ),
                    )
                })?
        } else {
            self.budget
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| Error::internal("the producer is closed"))?
        };
        // Released by the sender when the record is answered.
        permit.forget();
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            partition_key: entry.partition_key,
            explicit_hash_key_opt: entry.explicit_hash_key,
            data: entry.data,
            hash_key,
            size: permits as usize,
            put_at: Instant::now(),
            reply,
        };
        self.commands
            .send(Command::Put(Box::new(pending)))
            .map_err(|_| Error::internal("the producer is closed"))?;
        metrics::counter!("tributary_producer_user_records_total").increment(1);
        Ok(PutReceipt { rx })
    }

    /// Waits until every record put so far is answered.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes and stops.
    pub async fn close(self) {
        self.flush().await;
        drop(self.commands);
        let _ = self.task.await;
    }
}

/// The background task: per-shard queues, one batch in flight per shard.
struct Sender {
    client: Client,
    stream: String,
    config: ProducerConfig,
    budget: Arc<Semaphore>,
    /// Random per producer: each shard queue's producer id derives from it.
    producer_base: u64,
    /// Open shards' ranges from ListShards, refreshed when a record lands elsewhere.
    shards: Vec<(String, HashKeyRange)>,
    /// A client for each shard's leader, so batches skip the forwarding hop; a shard whose batch
    /// had to be retried falls back to `client` until the next refresh.
    leaders: BTreeMap<String, Client>,
    leaders_at_opt: Option<Instant>,
    queues: BTreeMap<String, Queue>,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<Unit>,
    in_flight: bool,
    /// The next producer number (idempotent puts); numbers start at 1.
    next_sequence: u64,
    /// No batch before this (backoff after a retry).
    not_before_opt: Option<Instant>,
}

type BatchOutcome = (
    String,
    Vec<Unit>,
    Result<v1::PutRecordsResponse, ClientError>,
);

impl Sender {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<BatchOutcome>();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut open = true;
        loop {
            let now = Instant::now();
            self.send_ready(now, &done_tx, !flushes.is_empty() || !open);
            if self.is_empty() {
                flushes.drain(..).for_each(|tx| {
                    let _ = tx.send(());
                });
                if !open {
                    return;
                }
            }
            let wake = self.next_wake(now);
            tokio::select! {
                command = commands.recv(), if open => match command {
                    Some(Command::Put(pending)) => self.enqueue(*pending).await,
                    Some(Command::Flush(tx)) => flushes.push(tx),
                    None => open = false,
                },
                Some((shard, batch, outcome)) = done_rx.recv() => {
                    self.settle(&shard, batch, outcome).await;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.queues
            .values()
            .all(|q| q.records.is_empty() && !q.in_flight)
    }

    fn next_wake(&self, now: Instant) -> Instant {
        self.queues
            .values()
            .filter(|q| !q.in_flight)
            .filter_map(|q| {
                let first = q.records.front()?;
                let linger_end = first.put_at() + self.config.linger;
                Some(q.not_before_opt.map_or(linger_end, |t| t.max(linger_end)))
            })
            .min()
            .unwrap_or(now + Duration::from_secs(1))
    }

    async fn shard_of(&mut self, hash_key: HashKey) -> String {
        if let Some((id, _)) = self.shards.iter().find(|(_, r)| r.contains(hash_key)) {
            return id.clone();
        }
        let filter = v1::ShardFilter {
            r#type: "AT_LATEST".into(),
            ..Default::default()
        };
        if let Ok(shards) = self.client.list_shards(&self.stream, Some(filter)).await {
            self.shards = shards
                .into_iter()
                .filter_map(|s| {
                    let range = HashKeyRange {
                        start_inclusive: s.starting_hash_key.parse().ok()?,
                        end_inclusive: s.ending_hash_key.parse().ok()?,
                    };
                    Some((s.shard_id, range))
                })
                .collect();
        }
        self.shards
            .iter()
            .find(|(_, r)| r.contains(hash_key))
            .map_or_else(|| "unknown".to_string(), |(id, _)| id.clone())
    }

    /// Learns each shard's leader and address (DescribeStream, ClusterStatus).
    async fn refresh_leaders(&mut self) {
        self.leaders_at_opt = Some(Instant::now());
        let (Ok(description), Ok(status)) = (
            self.client.describe_stream(&self.stream).await,
            self.client.cluster_status().await,
        ) else {
            return;
        };
        let addresses: BTreeMap<u64, String> = status
            .nodes
            .into_iter()
            .map(|n| (n.id, n.address))
            .collect();
        self.leaders = description
            .shards
            .into_iter()
            .filter_map(|shard| {
                let address = addresses.get(&shard.leader?)?;
                let client = Client::new(&[address])
                    .ok()?
                    .with_call_timeout(self.client.call_timeout);
                Some((shard.shard_id, client))
            })
            .collect();
    }

    async fn enqueue(&mut self, pending: Pending) {
        if self
            .leaders_at_opt
            .is_none_or(|at| at.elapsed() > LEADER_REFRESH_INTERVAL)
        {
            self.refresh_leaders().await;
        }
        let shard = self.shard_of(pending.hash_key).await;
        let aggregate = self.config.aggregate;
        let queue = self.queues.entry(shard).or_default();
        if aggregate
            && let Some(open) = queue.records.back_mut()
            && open.fits(&pending)
        {
            let aggregator = open.aggregator_opt.as_mut().expect("fits() checked");
            aggregator.push(
                &pending.partition_key,
                pending.explicit_hash_key_opt.as_deref(),
                pending.data.clone(),
            );
            open.users.push(pending);
            return;
        }
        let mut aggregator_opt = None;
        if aggregate {
            let mut aggregator = Aggregator::new();
            aggregator.push(
                &pending.partition_key,
                pending.explicit_hash_key_opt.as_deref(),
                pending.data.clone(),
            );
            // A record too big to share an aggregate goes on its own.
            if aggregator.size() <= MAX_AGGREGATED_BYTES {
                aggregator_opt = Some(aggregator);
            }
        }
        queue.records.push_back(Unit {
            users: vec![pending],
            aggregator_opt,
            entry_opt: None,
            producer_sequence_opt: None,
            attempts: 0,
        });
    }

    /// Starts a batch on every idle shard whose first record lingered long enough (or at once
    /// when flushing).
    fn send_ready(
        &mut self,
        now: Instant,
        done: &mpsc::UnboundedSender<BatchOutcome>,
        flushing: bool,
    ) {
        for (shard, queue) in &mut self.queues {
            if queue.in_flight || queue.records.is_empty() {
                continue;
            }
            if queue.not_before_opt.is_some_and(|t| t > now) {
                continue;
            }
            let first_put = queue.records.front().map_or(now, Unit::put_at);
            let full = queue.records.len() >= MAX_PUT_RECORDS_ENTRIES;
            if !flushing && !full && first_put + self.config.linger > now {
                continue;
            }
            let idempotent = self.config.idempotent;
            let mut batch: Vec<Unit> = Vec::new();
            let mut bytes = 0;
            let mut first_sequence_opt = None;
            while let Some(next) = queue.records.front_mut() {
                let size = next.size();
                if batch.len() >= MAX_PUT_RECORDS_ENTRIES || bytes + size > MAX_PUT_RECORDS_BYTES {
                    break;
                }
                if idempotent {
                    // A request numbers its records consecutively: a retried record whose
                    // number does not follow waits for the next batch.
                    let sequence = next
                        .producer_sequence_opt
                        .unwrap_or_else(|| queue.next_sequence.max(1));
                    if first_sequence_opt
                        .is_some_and(|first| sequence != first + batch.len() as u64)
                    {
                        break;
                    }
                    if next.producer_sequence_opt.is_none() {
                        next.producer_sequence_opt = Some(sequence);
                        queue.next_sequence = sequence + 1;
                    }
                    first_sequence_opt.get_or_insert(sequence);
                }
                next.freeze();
                bytes += next.size();
                batch.push(queue.records.pop_front().expect("front exists"));
            }
            queue.in_flight = true;
            let entries: Vec<v1::PutRecordsRequestEntry> = batch
                .iter()
                .filter_map(|unit| unit.entry_opt.clone())
                .collect();
            let request = v1::PutRecordsRequest {
                stream_name: self.stream.clone(),
                records: entries,
                producer_id: first_sequence_opt.map(|_| lane_id(self.producer_base, shard)),
                producer_sequence: first_sequence_opt,
            };
            let (client, shard, done) = (
                self.leaders.get(shard).unwrap_or(&self.client).clone(),
                shard.clone(),
                done.clone(),
            );
            metrics::counter!("tributary_producer_batches_total").increment(1);
            tokio::spawn(async move {
                let outcome = client.put_records_request(request).await;
                let _ = done.send((shard, batch, outcome));
            });
        }
    }

    /// Answers acknowledged records; puts retryable failures back at the front, in order.
    async fn settle(
        &mut self,
        shard: &str,
        batch: Vec<Unit>,
        outcome: Result<v1::PutRecordsResponse, ClientError>,
    ) {
        let now = Instant::now();
        let mut retry = Vec::new();
        let results: Vec<Result<(String, String), Error>> = match outcome {
            Ok(response) => response
                .records
                .into_iter()
                .map(|r| match (r.shard_id, r.sequence_number) {
                    (Some(shard_id), Some(sequence_number)) => Ok((shard_id, sequence_number)),
                    _ => Err(Error::new(
                        r.error_code
                            .as_deref()
                            .and_then(ErrorCode::parse)
                            .unwrap_or(ErrorCode::InternalFailure),
                        r.error_message.unwrap_or_default(),
                    )),
                })
                .collect(),
            Err(error) => {
                let error = match error {
                    ClientError::Api(error) => error,
                    other => Error::new(ErrorCode::WriteQuorumUnavailable, other.to_string()),
                };
                batch.iter().map(|_| Err(error.clone())).collect()
            }
        };
        for (mut unit, result) in batch.into_iter().zip(results) {
            match result {
                Ok((shard_id, sequence_number)) => {
                    if !self.shards.iter().any(|(id, _)| *id == shard_id) {
                        // A reshard moved the key: route later records afresh.
                        self.shards.clear();
                    }
                    metrics::counter!("tributary_producer_stored_records_total").increment(1);
                    let aggregated = unit.users.len() > 1;
                    for (sub, pending) in unit.users.into_iter().enumerate() {
                        metrics::histogram!("tributary_producer_buffered_seconds")
                            .record(now.duration_since(pending.put_at).as_secs_f64());
                        let put = PutResult {
                            shard_id: shard_id.clone(),
                            sequence_number: sequence_number.clone(),
                            sub_sequence_number_opt: aggregated.then_some(sub as u64),
                        };
                        self.answer(pending, Ok(put));
                    }
                }
                Err(error)
                    if error.code.is_retryable()
                        && now.duration_since(unit.put_at()) < self.config.record_ttl =>
                {
                    metrics::counter!("tributary_producer_retries_total").increment(1);
                    unit.attempts += 1;
                    retry.push(unit);
                }
                Err(error) => {
                    metrics::counter!("tributary_producer_errors_total", "code" => error.code.as_str())
                        .increment(unit.users.len() as u64);
                    for pending in unit.users {
                        self.answer(pending, Err(error.clone()));
                    }
                }
            }
        }
        if !retry.is_empty() {
            // The leader may have moved: go through the endpoints until the next refresh.
            self.leaders.remove(shard);
        }
        let queue = self.queues.entry(shard.to_string()).or_default();
        queue.in_flight = false;
        if let Some(attempts) = retry.iter().map(|u| u.attempts).max() {
            queue.not_before_opt = Some(now + backoff(&self.config, attempts));
            for unit in retry.into_iter().rev() {
                queue.records.push_front(unit);
            }
        }
    }

    fn answer(&self, pending: Pending, result: Result<PutResult, Error>) {
        self.budget.add_permits(pending.size);
        let _ = pending.reply.send(result);
    }
}

/// The producer id of one shard queue: a shard's records form one numbered sequence.
fn lane_id(producer_base: u64, shard: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(producer_base, shard), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// Exponential backoff with jitter (±25%, from the clock's sub-second nanoseconds).
fn backoff(config: &ProducerConfig, attempts: u32) -> Duration {
    let exponential = config
        .base_backoff
        .saturating_mul(1u32 << attempts.min(16).saturating_sub(1))
        .min(config.max_backoff);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
    exponential.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let config = ProducerConfig::default();
        let first = backoff(&config, 1);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
        let later = backoff(&config, 10);
        assert!(later <= Duration::from_millis(2_500) && later >= Duration::from_millis(1_500));
    }
}

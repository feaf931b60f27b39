//! The workload: producers writing unique, self-describing records one at a time (retrying a
//! record whose outcome is unknown), readers following every shard, and the final read.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tributary_client::{Client, ClientError, v1};

use crate::history::{Clock, Outcome, PutOp, ReadLog, ReadRecord, record_data, sequence_value};

/// Distinct partition keys per producer (each written by that producer only).
pub const KEYS_PER_PRODUCER: u64 = 16;
/// How long a producer waits before retrying a record whose outcome is unknown.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a reader waits when a shard has nothing new, or after an error.
const READ_POLL: Duration = Duration::from_millis(100);
/// Records per GetRecords.
const READ_LIMIT: u32 = 1000;

/// One producer's settings.
#[derive(Debug, Clone)]
pub struct Producer {
    pub id: u64,
    /// `Some(producer id)` for idempotent puts.
    pub idempotent_id_opt: Option<u64>,
    /// Time between the starts of two records' first attempts.
    pub interval: Duration,
}

/// What an error code says about whether the put might have been stored.
fn classify(code: &str, message: String) -> Outcome {
    match code {
        "DUPLICATE_RECORD" => Outcome::OkForgotten,
        // Refused before anything was proposed.
        "INVALID_ARGUMENT"
        | "RESOURCE_NOT_FOUND"
        | "PROVISIONED_THROUGHPUT_EXCEEDED"
        | "LIMIT_EXCEEDED"
        | "ACCESS_DENIED" => Outcome::Failed {
            code: code.to_string(),
            message,
        },
        // Quorum loss (possibly after proposing), a leader change mid-write, no answer: the
        // record may be stored, now or once the majority returns.
        _ => Outcome::Unknown {
            code: code.to_string(),
            message,
        },
    }
}

fn outcome_of(result: Result<v1::PutRecordsResponse, ClientError>) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => return classify(error.code(), error.message()),
    };
    let Some(entry) = response.records.into_iter().next() else {
        return Outcome::Unknown {
            code: "EMPTY_ANSWER".to_string(),
            message: "PutRecords answered without a result entry".to_string(),
        };
    };
    match (entry.shard_id, entry.sequence_number, entry.error_code) {
        (Some(shard), Some(sequence), None) => Outcome::Ok { shard, sequence },
        (_, _, Some(code)) => classify(&code, entry.error_message.unwrap_or_default()),
        _ => Outcome::Unknown {
            code: "MALFORMED_ANSWER".to_string(),
            message: "a result entry with neither numbers nor an error".to_string(),
        },
    }
}

/// A client over the cluster's current nodes, starting at a given one (so clients spread their
/// calls). The runner publishes the node list again after a node is replaced, and the client is
/// rebuilt, as an application's endpoint list would be updated.
pub struct ClientSource {
    endpoints: watch::Receiver<Vec<String>>,
    first: usize,
    call_timeout: std::time::Duration,
    client_opt: Option<Client>,
}

impl ClientSource {
    pub fn new(
        endpoints: watch::Receiver<Vec<String>>,
        first: usize,
        call_timeout: std::time::Duration,
    ) -> Self {
        ClientSource {
            endpoints,
            first,
            call_timeout,
            client_opt: None,
        }
    }

    /// The client for the latest node list.
    pub fn client(&mut self) -> Client {
        let changed = self.endpoints.has_changed().unwrap_or(false);
        if changed || self.client_opt.is_none() {
            let mut endpoints = self.endpoints.borrow_and_update().clone();
            let shift = self.first % endpoints.len().max(1);
            endpoints.rotate_left(shift);
            let client = Client::new(&endpoints)
                .expect("valid endpoints")
                .with_call_timeout(self.call_timeout);
            self.client_opt = Some(client);
        }
        self.client_opt.clone().expect("built above")
    }
}

/// Puts records `1, 2, ...` until `stop`, one at a time; a record whose outcome is unknown is
/// retried (same data, same producer number) until it is acknowledged or definitely refused.
pub async fn produce(
    mut clients: ClientSource,
    stream: String,
    producer: Producer,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> Vec<PutOp> {
    let mut ops = Vec::new();
    let mut counter = 1;
    let mut attempt = 1;
    let mut next_start = Instant::now();
    while !*stop.borrow() {
        let partition_key = format!("p{}-k{}", producer.id, counter % KEYS_PER_PRODUCER);
        let request = v1::PutRecordsRequest {
            stream_name: stream.clone(),
            records: vec![v1::PutRecordsRequestEntry {
                data: record_data(producer.id, counter).into_bytes().into(),
                partition_key: partition_key.clone(),
                explicit_hash_key: None,
            }],
            producer_id: producer.idempotent_id_opt,
            producer_sequence: producer.idempotent_id_opt.map(|_| counter),
        };
        let invoked_ms = clock.now();
        let outcome = outcome_of(clients.client().put_records_request(request).await);
        let settled = !matches!(outcome, Outcome::Unknown { .. });
        ops.push(PutOp {
            producer: producer.id,
            counter,
            attempt,
            partition_key,
            idempotent: producer.idempotent_id_opt.is_some(),
            invoked_ms,
            completed_ms: clock.now(),
            outcome,
        });
        let pause_until = if settled {
            counter += 1;
            attempt = 1;
            next_start = (next_start + producer.interval).max(Instant::now());
            next_start
        } else {
            attempt += 1;
            Instant::now() + RETRY_PAUSE
        };
        tokio::select! {
            _ = tokio::time::sleep_until(pause_until) => {}
            _ = stop.changed() => {}
        }
    }
    ops
}

/// Follows one shard from TRIM_HORIZON until `stop`, getting a new iterator after the last
/// record read whenever a call fails.
pub async fn follow(
    mut clients: ClientSource,
    stream: String,
    shard: String,
    reader: String,
    mut stop: watch::Receiver<bool>,
) -> ReadLog {
    let mut log = ReadLog {
        reader,
        shard,
        records: Vec::new(),
        restarts: 0,
    };
    let mut iterator_opt: Option<String> = None;
    while !*stop.borrow() {
        let step = read_step(&clients.client(), &stream, &mut log, &mut iterator_opt).await;
        let idle = match step {
            Ok(read) => read == 0,
            Err(_) => {
                log.restarts += 1;
                iterator_opt = None;
                true
            }
        };
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(READ_POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }
    log
}

/// Kinesis allows 5 GetRecords per second per shard; a throttled read waits and tries again
/// with the same iterator.
const THROTTLED: &str = "PROVISIONED_THROUGHPUT_EXCEEDED";

/// One GetRecords (getting an iterator first if needed); returns how many records it read (0
/// when throttled: the iterator is kept).
async fn read_step(
    client: &Client,
    stream: &str,
    log: &mut ReadLog,
    iterator_opt: &mut Option<String>,
) -> Result<usize, ClientError> {
    let iterator = match iterator_opt.take() {
        Some(iterator) => iterator,
        None => match log.records.last() {
            Some(last) => {
                client
                    .get_shard_iterator(
                        stream,
                        &log.shard,
                        "AFTER_SEQUENCE_NUMBER",
                        Some(&last.sequence),
                    )
                    .await?
            }
            None => {
                client
                    .get_shard_iterator(stream, &log.shard, "TRIM_HORIZON", None)
                    .await?
            }
        },
    };
    let response = match client.get_records(&iterator, Some(READ_LIMIT)).await {
        Ok(response) => response,
        Err(error) if error.code() == THROTTLED => {
            *iterator_opt = Some(iterator);
            return Ok(0);
        }
        Err(error) => return Err(error),
    };
    let read = response.records.len();
    log.records
        .extend(response.records.into_iter().map(|record| ReadRecord {
            sequence: record.sequence_number,
            partition_key: record.partition_key,
            data: String::from_utf8_lossy(&record.data).into_owned(),
        }));
    *iterator_opt = response.next_shard_iterator;
    Ok(read)
}

/// Reads one shard from TRIM_HORIZON until it has read up to `target_opt` (the highest sequence
/// number known to exist) and the shard has nothing more, or `timeout` passes.
pub async fn read_to_end(
    client: &Client,
    stream: &str,
    shard: &str,
    reader: String,
    target_opt: Option<u128>,
    timeout: Duration,
) -> ReadLog {
    let mut log = ReadLog {
        reader,
        shard: shard.to_string(),
        records: Vec::new(),
        restarts: 0,
    };
    let deadline = Instant::now() + timeout;
    let mut iterator_opt = None;
    while Instant::now() < deadline {
        let reached = |log: &ReadLog| match target_opt {
            None => true,
            Some(target) => log
                .records
                .last()
                .and_then(|r| sequence_value(&r.sequence))
                .is_some_and(|last| last >= target),
        };
        match read_step(client, stream, &mut log, &mut iterator_opt).await {
            Ok(0) if reached(&log) => break,
            Ok(0) => tokio::time::sleep(READ_POLL).await,
            Ok(_) => {}
            Err(_) => {
                log.restarts += 1;
                iterator_opt = None;
                tokio::time::sleep(READ_POLL).await;
            }
        }
    }
    log
}

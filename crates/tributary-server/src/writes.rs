//! The write path (diagram and outcomes in `writes.md`). A put is validated, routed by hash key
//! to open shards, and each shard's batch is proposed on its leader: locally when this node
//! leads, else forwarded (one hop; the receiver never forwards again). Every attempt runs under
//! one deadline; a shard that cannot commit by then answers WRITE_QUORUM_UNAVAILABLE, and a leader
//! that has not heard from a majority for an election timeout refuses at once instead of queueing
//! writes that cannot commit.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardReason, RaftError};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Instant as _, Raft, RaftTypeConfig};
use tokio::time::Instant;
use tributary_proto::internal::{MetaWriteRequest, ShardWriteRequest};
use tributary_raft::codec;
use tributary_raft::config::ELECTION_TIMEOUT_MAX_MS;
use tributary_raft::meta::{MetaCommand, MetaResponse};
use tributary_raft::shard::{ProducerStamp, PutBatch, ShardCommand, ShardResponse};
use tributary_types::{
    EncryptionType, Error, ErrorCode, GroupId, MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_ENTRIES,
    NodeId, PutRecordEntry, SequenceNumber, StreamName, validate_put_entry,
};

use crate::api::{PutOutcome, PutRecordResult};
use crate::groups::ShardGroup;
use crate::keyring::KeyRing;
use crate::limits::rate_exceeded;
use crate::meta::{ShardMeta, ShardStatus, StreamStatus};
use crate::node::Node;
use crate::now_ms;
use crate::telemetry;

/// A leader whose last majority acknowledgement is older than this refuses writes at once.
const QUORUM_STALE_AFTER: Duration = Duration::from_millis(ELECTION_TIMEOUT_MAX_MS);
/// Pause between attempts while a group elects a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How often a put routes records again after reaching a shard a reshard has sealed.
const ROUTE_ROUNDS: usize = 3;

/// The outcome of one attempt to commit through one node.
pub(crate) enum Attempt<T> {
    Done(Result<T, Error>),
    /// Try again (until the deadline), at the leader named when one is known.
    Retry {
        leader_opt: Option<NodeId>,
        why: String,
    },
}

/// Proposes `command` on the local replica of a group.
pub(crate) async fn propose<C, SM>(
    raft: &Raft<C, SM>,
    command: C::D,
    deadline: Instant,
    what: &str,
) -> Attempt<C::R>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    SM: RaftStateMachine<C>,
{
    // How long ago a majority last acknowledged this node, if it leads (read in place: this runs
    // on every write).
    let unacked_for_opt: Option<Duration> = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow_watched();
        let leads = metrics.current_leader == Some(metrics.id);
        metrics
            .last_quorum_acked
            .as_ref()
            .filter(|_| leads)
            .map(|acked| acked.elapsed())
    };
    if let Some(unacked_for) = unacked_for_opt
        && unacked_for > QUORUM_STALE_AFTER
    {
        return Attempt::Done(Err(Error::quorum_unavailable(format!(
            "{what} cannot reach a majority of its replicas (last acknowledged {} ms ago); \
             committed records stay readable",
            unacked_for.as_millis()
        ))));
    }
    match tokio::time::timeout_at(deadline, raft.client_write(command)).await {
        Ok(Ok(response)) => Attempt::Done(Ok(response.data)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            // A new leader may answer LeaseExpired until its first majority acknowledgement:
            // retried until the deadline; a real quorum loss is caught by the check above.
            if forward.reason == ForwardReason::LeaseExpired {
                return Attempt::Retry {
                    leader_opt: None,
                    why: format!("{what} is confirming its leadership"),
                };
            }
            Attempt::Retry {
                leader_opt: forward.leader_id,
                why: "this node is not the leader".to_string(),
            }
        }
        Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => {
            Attempt::Done(Err(Error::internal(format!(
                "{what} changed leader while the write was in flight; it may or may not have been committed"
            ))))
        }
        Ok(Err(RaftError::APIError(other))) => {
            Attempt::Done(Err(Error::internal(format!("{what}: {other}"))))
        }
        Ok(Err(RaftError::Fatal(fatal))) => Attempt::Retry {
            leader_opt: None,
            why: format!("{what} stopped: {fatal}"),
        },
        Err(_) => Attempt::Done(Err(Error::quorum_unavailable(format!(
            "{what} did not get the write acknowledged by a majority in time; it will be applied only if \
             that majority returns with it"
        )))),
    }
}

/// An idempotent put's stamp as the API carries it: the producer id and the number of the
/// request's first record (record `i` is `first_sequence + i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSequence {
    pub producer_id: u64,
    pub first_sequence: u64,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl Node {
    /// PutRecord: one record, failing as a whole. `sequence_number_for_ordering` is checked for
    /// form only: numbers strictly increase within a shard and from parent to child shards, so
    /// a record put after its predecessor was acknowledged always numbers above it.
    pub async fn put_record(
        &self,
        stream: &str,
        entry: PutRecordEntry,
        sequence_number_for_ordering_opt: Option<&str>,
    ) -> Result<PutOutcome<(tributary_types::ShardId, SequenceNumber)>, Error> {
        if let Some(text) = sequence_number_for_ordering_opt {
            text.parse::<SequenceNumber>().map_err(|e| {
                Error::invalid_argument(format!("SequenceNumberForOrdering: {}", e.message))
            })?;
        }
        let mut outcome = self.put_records(stream, vec![entry], None).await?;
        let result = outcome
            .results
            .pop()
            .unwrap_or_else(|| Err(Error::internal("PutRecord produced no result")))?;
        Ok(PutOutcome {
            results: result,
            encryption_type: outcome.encryption_type,
        })
    }

    /// PutRecords. Records of an encrypted stream are sealed here, on the node that received
    /// them, before they go to a shard's leader: no log, store or call between nodes holds them
    /// in clear.
    pub async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutRecordEntry>,
        producer_opt: Option<ProducerSequence>,
    ) -> Result<PutOutcome<Vec<PutRecordResult>>, Error> {
        let started = Instant::now();
        let stream: StreamName = stream.parse()?;
        if entries.is_empty() || entries.len() > MAX_PUT_RECORDS_ENTRIES {
            return Err(Error::invalid_argument(format!(
                "A PutRecords call carries 1 to {MAX_PUT_RECORDS_ENTRIES} records; got {}",
                entries.len()
            )));
        }
        let total: usize = entries
            .iter()
            .map(|e| e.data.len() + e.partition_key.len())
            .sum();
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(Error::invalid_argument(format!(
                "A PutRecords call carries at most {MAX_PUT_RECORDS_BYTES} bytes including partition keys; got {total}"
            )));
        }
        if let Some(producer) = producer_opt
            && producer
                .first_sequence
                .checked_add(entries.len() as u64 - 1)
                .is_none()
        {
            return Err(Error::invalid_argument(format!(
                "ProducerSequence {} leaves no room for {} records below 2^64",
                producer.first_sequence,
                entries.len()
            )));
        }
        let mut hash_keys = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let hash_key = validate_put_entry(entry)
                .map_err(|e| Error::new(e.code, format!("Record {index}: {}", e.message)))?;
            hash_keys.push(hash_key);
        }
        let stream_meta = self.stream_meta(&stream).await?;
        match stream_meta.status {
            // As Kinesis: a stream takes records once ACTIVE (and while UPDATING).
            StreamStatus::Creating => {
                return Err(Error::not_found(format!(
                    "Stream {stream} is CREATING; it accepts records once ACTIVE"
                )));
            }
            StreamStatus::Deleting => {
                return Err(Error::not_found(format!(
                    "Stream {stream} is being deleted"
                )));
            }
            StreamStatus::Active | StreamStatus::Updating => {}
        }
        // Every node reads its own key ring: a missing ring or key (KMS_NOT_FOUND from sealing,
        // before any batch is sent) fails the put, never stores it in clear.
        let (ring_opt, encryption_type) = match &stream_meta.encryption_opt {
            Some(encryption) => {
                let ring = self.keys.require("an encrypted stream")?;
                (Some((ring, encryption.key.clone())), EncryptionType::Kms)
            }
            None => (None, EncryptionType::None),
        };
        let mut shards: Vec<ShardMeta> = stream_meta.shards;

        let arrival_ms = now_ms();
        let mut entries: Vec<Option<PutRecordEntry>> = entries.into_iter().map(Some).collect();
        let mut results: Vec<PutRecordResult> =
            vec![Err(Error::internal("unrouted record")); hash_keys.len()];
        let mut pending: Vec<usize> = (0..hash_keys.len()).collect();
        for round in 0..ROUTE_ROUNDS {
            if round > 0 {
                // A shard was sealed by a reshard this node's catalogue had not applied yet:
                // catch up (the reshard commits before the seal) and route again.
                self.catch_up_metadata().await;
                shards = self.stream_meta(&stream).await?.shards;
            }
            let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for index in pending.drain(..) {
                let hash_key = hash_keys[index];
                let Some(position) = shards
                    .iter()
                    .position(|s| s.status == ShardStatus::Open && s.hash_range.contains(hash_key))
                else {
                    return Err(Error::internal(format!(
                        "stream {stream} has no open shard for hash key {}",
                        hash_key.0
                    )));
                };
                by_shard.entry(position).or_default().push(index);
            }
            let mut writes = Vec::new();
            for (position, indexes) in by_shard {
                let shard = &shards[position];
                let records: Vec<(String, Bytes)> = indexes
                    .iter()
                    .map(|i| {
                        entries[*i]
                            .as_ref()
                            .map(|e| (e.partition_key.clone(), e.data.clone()))
                            .unwrap_or_default()
                    })
                    .collect();
                let producer_opt = producer_opt.map(|producer| ProducerStamp {
                    producer_id: producer.producer_id,
                    sequences: indexes
                        .iter()
                        .map(|i| producer.first_sequence + *i as u64)
                        .collect(),
                });
                let command = match &ring_opt {
                    None => ShardCommand::Put(PutBatch {
                        arrival_ms,
                        records,
                        producer_opt,
                    }),
                    Some((ring, key)) => seal_batch(
                        ring,
                        key,
                        &stream,
                        PutBatch {
                            arrival_ms,
                            records,
                            producer_opt,
                        },
                    )?,
                };
                let stream = &stream;
                writes.push(async move {
                    (
                        shard.shard_id,
                        indexes,
                        self.shard_write(stream, shard, command).await,
                    )
                });
            }
            let outcomes = futures::future::join_all(writes).await;
            for (shard_id, indexes, outcome) in outcomes {
                match outcome {
                    Ok(response) if response.sealed => pending.extend(indexes),
                    Ok(response) => {
                        // The leader numbers the records it admitted, a prefix of the batch;
                        // the rest went over the shard's throughput limit.
                        let numbers = response.sequence_numbers;
                        if indexes.len() > numbers.len() {
                            telemetry::record_error(ErrorCode::ProvisionedThroughputExceeded);
                        }
                        for (position, index) in indexes.into_iter().enumerate() {
                            entries[index] = None;
                            results[index] = match numbers.get(position) {
                                Some(_) if response.forgotten.contains(&(position as u32)) => {
                                    Err(forgotten_duplicate(&stream, shard_id))
                                }
                                Some(number) => Ok((shard_id, *number)),
                                None => Err(rate_exceeded(&stream, shard_id)),
                            };
                        }
                    }
                    Err(error) => {
                        telemetry::record_error(error.code);
                        for index in indexes {
                            results[index] = Err(error.clone());
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        for index in pending {
            results[index] = Err(Error::internal(format!(
                "the shard for this record of stream {stream} closed during the put; retry it"
            )));
        }
        telemetry::record_put_latency(started.elapsed().as_secs_f64());
        Ok(PutOutcome {
            results,
            encryption_type,
        })
    }

    /// Commits one command on one shard, following the leader until the write deadline.
    pub(crate) async fn shard_write(
        &self,
        stream: &StreamName,
        shard: &ShardMeta,
        command: ShardCommand,
    ) -> Result<ShardResponse, Error> {
        let deadline = Instant::now() + self.config.write_timeout;
        let mut last_why: String;
        let mut next_replica = 0usize;
        loop {
            let local_opt = self.shard_group(shard.group);
            let leader_opt = local_opt
                .as_ref()
                .and_then(|g| g.current_leader())
                .or_else(|| self.leader_hint(shard.group));
            let attempt = match (leader_opt, &local_opt) {
                (Some(leader), Some(local)) if leader == self.id() => {
                    self.propose_shard_local(local, command.clone(), deadline)
                        .await
                }
                (Some(leader), _) => {
                    self.forward_shard_write(leader, shard.group, &command, deadline)
                        .await
                }
                (None, None) => {
                    let replica = shard.replicas[next_replica % shard.replicas.len()];
                    next_replica += 1;
                    self.forward_shard_write(replica, shard.group, &command, deadline)
                        .await
                }
                (None, Some(_)) => Attempt::Retry {
                    leader_opt: None,
                    why: "no leader is elected".to_string(),
                },
            };
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry { leader_opt, why } => {
                    self.set_leader_hint(shard.group, leader_opt);
                    last_why = why;
                }
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Error::quorum_unavailable(format!(
                    "{} of stream {stream} has no leader with a quorum after {} ms ({last_why}); \
                     committed records stay readable",
                    shard.shard_id,
                    self.config.write_timeout.as_millis()
                )));
            }
            match &local_opt {
                Some(local) => {
                    let mut metrics = local.raft.metrics();
                    let _ = tokio::time::timeout(RETRY_PAUSE, metrics.changed()).await;
                }
                None => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    /// Proposes a batch on this node's replica. While it leads, the shard's throughput limits
    /// admit a prefix of the batch; the answer then numbers only that prefix.
    pub(crate) async fn propose_shard_local(
        &self,
        group: &ShardGroup,
        mut command: ShardCommand,
        deadline: Instant,
    ) -> Attempt<ShardResponse> {
        let (mut records, mut bytes) = (0, 0);
        let mut charged = false;
        if command.put_batch().is_some() {
            if group.current_leader() == Some(self.id()) {
                charged = true;
                let admitted = group
                    .limiter
                    .admit_writes(command.record_sizes(), std::time::Instant::now());
                let batch = command.put_batch_mut().expect("a put");
                if admitted == 0 {
                    tracing::debug!(group = %group.group, records = batch.records.len(), "put throttled");
                    return Attempt::Done(Ok(ShardResponse::default()));
                }
                batch.truncate(admitted);
            }
            (records, bytes) = command
                .record_sizes()
                .fold((0, 0), |(records, bytes), size| (records + 1, bytes + size));
        }
        if let Some(acked) = self.ack_before_commit(group, &command) {
            return acked;
        }
        let what = format!("{} of stream {}", group.shard, group.stream);
        let attempt = propose(&group.raft, command, deadline, &what).await;
        if charged && !matches!(&attempt, Attempt::Done(Ok(response)) if !response.sealed) {
            group.limiter.refund_writes(records, bytes);
        }
        if let Attempt::Done(Ok(response)) = &attempt
            && records > 0
            && !response.sealed
        {
            telemetry::record_put(&group.stream, group.shard, records, bytes);
            group
                .meter
                .record(records, bytes, std::time::Instant::now());
        }
        attempt
    }

    /// DELIBERATELY BROKEN (`--fault-ack-before-commit`, chaos tests only): a leader answers a
    /// put at once with the numbers the next log entry would give it, and proposes it in the
    /// background. A crash or partition then loses acknowledged records, which the chaos checker
    /// must report.
    fn ack_before_commit(
        &self,
        group: &ShardGroup,
        command: &ShardCommand,
    ) -> Option<Attempt<ShardResponse>> {
        let broken = self
            .config
            .faults_opt
            .as_ref()
            .is_some_and(|faults| faults.ack_before_commit);
        let batch = command.put_batch()?;
        if !broken || group.current_leader() != Some(self.id()) {
            return None;
        }
        let next_index = group
            .raft
            .metrics()
            .borrow_watched()
            .last_log_index
            .unwrap_or(0)
            + 1;
        let sequence_numbers = (0..batch.records.len())
            .map(|offset| SequenceNumber::new(group.shard, next_index, offset as u16))
            .collect();
        let raft = group.raft.clone();
        let command = command.clone();
        tokio::spawn(async move {
            let _ = raft.client_write(command).await;
        });
        Some(Attempt::Done(Ok(ShardResponse {
            sequence_numbers,
            ..ShardResponse::default()
        })))
    }

    async fn forward_shard_write(
        &self,
        target: NodeId,
        group: GroupId,
        command: &ShardCommand,
        deadline: Instant,
    ) -> Attempt<ShardResponse> {
        let command = match codec::encode(command) {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Done(Err(Error::internal(e))),
        };
        let request = ShardWriteRequest {
            group_id: group.0,
            command: command.into(),
            timeout_ms: remaining(deadline).as_millis() as u64,
        };
        let Some(address) = self.node_address(target) else {
            return Attempt::Retry {
                leader_opt: None,
                why: format!("node {target} has no known address"),
            };
        };
        let forwarded = self.forward(target, &address, deadline, |mut client| async move {
            client
                .shard_write(request)
                .await
                .map(|reply| reply.into_inner().response)
        });
        // A leader cut off by a partition answers nothing: packets are dropped, the call would
        // hang until the deadline. When this node's replica sees another leader elected, try
        // that one instead (the abandoned attempt's outcome is unknown, as for any retry).
        let Some(local) = self.shard_group(group) else {
            return forwarded.await;
        };
        let mut metrics = local.raft.metrics();
        let leader_moved = async move {
            loop {
                let leader_opt = metrics.borrow_watched().current_leader;
                if leader_opt.is_some_and(|leader| leader != target) {
                    return leader_opt;
                }
                if metrics.changed().await.is_err() {
                    // The replica shut down: let the forward run its course.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            attempt = forwarded => attempt,
            leader_opt = leader_moved => Attempt::Retry {
                leader_opt,
                why: format!("node {target} stopped leading while the write was forwarded to it"),
            },
        }
    }

    /// Sends a write to another node's internal API and decodes its `Result<T, Error>` answer. A
    /// transport failure, a timeout or NOT_LEADER mean "try again, maybe elsewhere".
    async fn forward<T, F, Fut>(
        &self,
        target: NodeId,
        address: &str,
        deadline: Instant,
        call: F,
    ) -> Attempt<T>
    where
        T: serde::de::DeserializeOwned,
        F: FnOnce(
            tributary_proto::internal::internal_client::InternalClient<tonic::transport::Channel>,
        ) -> Fut,
        Fut: Future<Output = Result<bytes::Bytes, tonic::Status>>,
    {
        let client = match self.router.client(target, address) {
            Ok(client) => client,
            Err(why) => {
                return Attempt::Retry {
                    leader_opt: None,
                    why,
                };
            }
        };
        let reply = match tokio::time::timeout_at(deadline, call(client)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(status)) => {
                let why = format!("node {target} at {address} failed: {}", status.message());
                return Attempt::Retry {
                    leader_opt: None,
                    why,
                };
            }
            Err(_) => {
                let why = format!("node {target} at {address} did not answer in time");
                return Attempt::Retry {
                    leader_opt: None,
                    why,
                };
            }
        };
        match codec::decode::<Result<T, Error>>(&reply) {
            Ok(Ok(response)) => Attempt::Done(Ok(response)),
            Ok(Err(error)) if error.code == ErrorCode::NotLeader => Attempt::Retry {
                leader_opt: error.leader_opt.map(|(id, _)| id),
                why: error.message,
            },
            Ok(Err(error)) => Attempt::Done(Err(error)),
            Err(e) => Attempt::Done(Err(Error::internal(e))),
        }
    }

    fn leader_hint(&self, group: GroupId) -> Option<NodeId> {
        self.leader_hints
            .lock()
            .expect("leader hints lock poisoned")
            .get(&group)
            .copied()
    }

    fn set_leader_hint(&self, group: GroupId, leader_opt: Option<NodeId>) {
        let mut hints = self
            .leader_hints
            .lock()
            .expect("leader hints lock poisoned");
        match leader_opt {
            Some(leader) => hints.insert(group, leader),
            None => hints.remove(&group),
        };
    }

    /// Proposes a metadata command through the metadata leader, waiting at most the admin timeout.
    pub(crate) async fn meta_write(&self, command: MetaCommand) -> Result<(), Error> {
        self.meta_write_item(command).await.map(|_| ())
    }

    /// [`Node::meta_write`] for table commands: also answers the item an update wrote.
    pub(crate) async fn meta_write_item(
        &self,
        command: MetaCommand,
    ) -> Result<Option<tributary_types::table::Item>, Error> {
        let deadline = Instant::now() + self.config.admin_timeout;
        let mut last_why: String;
        let mut next_peer = 0usize;
        loop {
            let leader_opt = self.meta_raft.metrics().borrow_watched().current_leader;
            let attempt = match leader_opt {
                Some(leader) if leader == self.id() => {
                    propose(
                        &self.meta_raft,
                        command.clone(),
                        deadline,
                        "the metadata group",
                    )
                    .await
                }
                Some(leader) => match self
                    .node_address(leader)
                    .or_else(|| self.config.peers.get(&leader).cloned())
                {
                    Some(address) => {
                        self.forward_meta_write(leader, &address, &command, deadline)
                            .await
                    }
                    None => Attempt::Retry {
                        leader_opt: None,
                        why: format!("metadata leader {leader} has no known address"),
                    },
                },
                // A node that has not joined group 0 yet (not an initial voter) asks the voters.
                None if !self.config.peers.is_empty()
                    && !self.config.peers.contains_key(&self.id()) =>
                {
                    let (peer, address) = self
                        .config
                        .peers
                        .iter()
                        .nth(next_peer % self.config.peers.len())
                        .expect("peers is not empty");
                    next_peer += 1;
                    self.forward_meta_write(*peer, address, &command, deadline)
                        .await
                }
                None => Attempt::Retry {
                    leader_opt: None,
                    why: "no metadata leader is elected".to_string(),
                },
            };
            match attempt {
                Attempt::Done(Ok(MetaResponse { result, item_opt })) => {
                    // Read-your-writes: this node's catalogue applies the change before the
                    // caller looks (a forwarded write commits on the leader first).
                    self.catch_up_metadata().await;
                    return result.unwrap_or(Ok(())).map(|()| item_opt);
                }
                Attempt::Done(Err(error)) => return Err(metadata_unavailable(error)),
                Attempt::Retry { why, .. } => last_why = why,
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Error::quorum_unavailable(format!(
                    "The metadata group has no quorum ({last_why}); admin operations such as creating or deleting \
                     streams are unavailable, while puts and gets on healthy shards continue"
                )));
            }
            let mut metrics = self.meta_raft.metrics();
            let _ = tokio::time::timeout(RETRY_PAUSE, metrics.changed()).await;
        }
    }

    async fn forward_meta_write(
        &self,
        target: NodeId,
        address: &str,
        command: &MetaCommand,
        deadline: Instant,
    ) -> Attempt<MetaResponse> {
        let command = match codec::encode(command) {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Done(Err(Error::internal(e))),
        };
        let request = MetaWriteRequest {
            command: command.into(),
            timeout_ms: remaining(deadline).as_millis() as u64,
        };
        self.forward(target, address, deadline, |mut client| async move {
            client
                .meta_write(request)
                .await
                .map(|reply| reply.into_inner().response)
        })
        .await
    }
}

/// Quorum errors from group 0 name the metadata group, so users know data is unaffected.
/// The sealed form of a put batch to an encrypted stream (see [`ShardCommand::PutSealed`]): one
/// derived key per batch, the stream's name as every record's associated data.
fn seal_batch(
    ring: &KeyRing,
    key: &str,
    stream: &StreamName,
    mut batch: PutBatch,
) -> Result<ShardCommand, Error> {
    let sealer = ring.batch_sealer(key)?;
    for (position, (partition_key, data)) in batch.records.iter_mut().enumerate() {
        *data = sealer.seal(
            position as u32,
            stream.as_str().as_bytes(),
            partition_key,
            data,
        )?;
        partition_key.clear();
    }
    Ok(ShardCommand::PutSealed {
        key: sealer.batch_key().clone(),
        batch,
    })
}

fn metadata_unavailable(error: Error) -> Error {
    if error.code != ErrorCode::WriteQuorumUnavailable {
        return error;
    }
    Error::quorum_unavailable(format!(
        "The metadata group has no quorum: {}. Admin operations are unavailable; puts and gets on healthy shards continue",
        error.message
    ))
}

fn forgotten_duplicate(stream: &StreamName, shard: tributary_types::ShardId) -> Error {
    Error::new(
        ErrorCode::DuplicateRecord,
        format!(
            "An earlier attempt stored this record in {shard} of stream {stream}; its sequence number is no longer \
             remembered, and the record is not stored twice"
        ),
    )
}

/// Turns a retry answer into the NOT_LEADER error a forwarding node understands.
pub(crate) fn not_leader(node: &Node, leader_opt: Option<NodeId>, why: String) -> Error {
    let mut error = Error::new(ErrorCode::NotLeader, why);
    error.leader_opt = leader_opt.and_then(|id| node.node_address(id).map(|address| (id, address)));
    error
}

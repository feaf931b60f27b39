//! The shard state machine. Applying a put batch at log index `i` stores record `k` of the batch
//! under sequence number (shard, i, k): a pure function of the committed log, so every replica
//! numbers identically and re-applying after a crash rewrites the same keys. Records and the
//! applied log id go to RocksDB in one write batch. Idempotent puts skip records a producer's
//! earlier attempt stored (`producers.rs`); that state is written in the same batch.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use tokio::sync::watch;
use tributary_raft::shard::{BatchKey, PutBatch, ShardCommand, ShardResponse, ShardTypeConfig};
use tributary_storage::{CF_RECORDS, CF_SM, Store, io_error, keys};
use tributary_types::stored::StoredValue;
use tributary_types::{GroupId, SequenceNumber, ShardId};

use super::producers::{self, Admission, ProducerState};
use super::records;
use crate::sm_store;

type C = ShardTypeConfig;

/// The newest applied sequence number of a shard replica; readers wait on it.
pub type ShardTip = watch::Receiver<Option<SequenceNumber>>;

#[derive(Clone)]
pub struct ShardMachine {
    store: Store,
    group: GroupId,
    shard: ShardId,
    applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    tip_tx: Arc<watch::Sender<Option<SequenceNumber>>>,
    /// Set once a reshard sealed the shard: its ending sequence number.
    sealed_opt: Option<SequenceNumber>,
    /// Idempotent puts: what the shard stored per producer id.
    producers: BTreeMap<u64, ProducerState>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotBody {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    sealed_opt: Option<SequenceNumber>,
    producers: Vec<(u64, ProducerState)>,
}

impl ShardMachine {
    pub fn open(
        store: Store,
        group: GroupId,
        shard: ShardId,
    ) -> std::io::Result<(ShardMachine, ShardTip)> {
        let (applied, membership) = sm_store::read_applied::<C>(&store, group)?;
        let tip = records::last(&store, group)?.map(|(sequence_number, _)| sequence_number);
        let sealed_opt = sm_store::read::<SequenceNumber>(&store, group, keys::TAG_SM_SEALED)?;
        let producers = read_producers(&store, group)?;
        let (tip_tx, tip_rx) = watch::channel(tip);
        let machine = ShardMachine {
            store,
            group,
            shard,
            applied,
            membership,
            tip_tx: Arc::new(tip_tx),
            sealed_opt,
            producers,
        };
        Ok((machine, tip_rx))
    }

    /// Stores a batch's records (skipping an idempotent put's duplicates), sealed as they came
    /// when `sealed_opt` names their key; answers their numbers and the newest number stored.
    fn apply_put(
        &mut self,
        batch: &mut WriteBatch,
        log_index: u64,
        put: &PutBatch,
        sealed_opt: Option<&BatchKey>,
    ) -> std::io::Result<(ShardResponse, Option<SequenceNumber>)> {
        if self.sealed_opt.is_some() {
            let response = ShardResponse {
                sealed: true,
                ..ShardResponse::default()
            };
            return Ok((response, None));
        }
        // Stamps are validated before proposing; a malformed one is ignored rather than failing
        // the apply (which would stop the group).
        let stamp_opt = put
            .producer_opt
            .as_ref()
            .filter(|stamp| stamp.sequences.len() == put.records.len());
        let mut producer_opt: Option<ProducerState> =
            stamp_opt.and_then(|stamp| self.producers.get(&stamp.producer_id).cloned());
        let mut response = ShardResponse::default();
        response.sequence_numbers.reserve(put.records.len());
        let mut tip = None;
        let mut offset: u16 = 0;
        for (position, (partition_key, data)) in put.records.iter().enumerate() {
            let producer_sequence_opt = stamp_opt.map(|stamp| stamp.sequences[position]);
            if let Some(sequence) = producer_sequence_opt
                && let Admission::Duplicate(original_opt) =
                    producers::admit(producer_opt.as_ref(), sequence)
            {
                let (original_index, original_offset) = original_opt.unwrap_or_else(|| {
                    response.forgotten.push(position as u32);
                    (0, 0)
                });
                response.sequence_numbers.push(SequenceNumber::new(
                    self.shard,
                    original_index,
                    original_offset,
                ));
                continue;
            }
            let sequence_number = SequenceNumber::new(self.shard, log_index, offset);
            let value = match sealed_opt {
                None => StoredValue::Plain {
                    arrival_ms: put.arrival_ms,
                    partition_key,
                    data,
                },
                Some(key) => StoredValue::Sealed {
                    arrival_ms: put.arrival_ms,
                    key: &key.key,
                    version: key.version,
                    salt: key.salt,
                    position: position as u32,
                    ciphertext: data,
                },
            };
            records::put(&self.store, batch, self.group, sequence_number, &value)?;
            if let Some(sequence) = producer_sequence_opt {
                producer_opt.get_or_insert_default().stored(
                    sequence,
                    log_index,
                    offset,
                    put.arrival_ms,
                );
            }
            response.sequence_numbers.push(sequence_number);
            tip = Some(sequence_number);
            offset = offset
                .checked_add(1)
                .ok_or_else(|| io_error("a put batch holds at most 65535 records"))?;
        }
        if let (Some(stamp), Some(state), Some(_)) = (stamp_opt, producer_opt, tip) {
            let value = postcard::to_stdvec(&state).map_err(io_error)?;
            batch.put_cf(
                self.store.cf(CF_SM),
                keys::producer_key(self.group, stamp.producer_id),
                value,
            );
            self.producers.insert(stamp.producer_id, state);
        }
        Ok((response, tip))
    }

    /// Retention forgets producers idle since before `before_ms`.
    fn forget_idle_producers(&mut self, batch: &mut WriteBatch, before_ms: u64) {
        let cf = self.store.cf(CF_SM);
        self.producers.retain(|producer_id, state| {
            let keep = state.last_arrival_ms >= before_ms;
            if !keep {
                batch.delete_cf(cf, keys::producer_key(self.group, *producer_id));
            }
            keep
        });
    }

    /// Seals the shard at `log_index`: every record it will ever hold numbers below the seal.
    fn apply_seal(
        &mut self,
        batch: &mut WriteBatch,
        log_index: u64,
    ) -> std::io::Result<ShardResponse> {
        let ending = match self.sealed_opt {
            Some(ending) => ending,
            None => {
                let ending = SequenceNumber::new(self.shard, log_index.saturating_sub(1), u16::MAX);
                sm_store::put(&self.store, batch, self.group, keys::TAG_SM_SEALED, &ending)?;
                self.sealed_opt = Some(ending);
                ending
            }
        };
        Ok(ShardResponse {
            ending_opt: Some(ending),
            ..ShardResponse::default()
        })
    }
}

impl ShardMachine {
    fn snapshot_meta(&self) -> SnapshotMetaOf<C> {
        SnapshotMetaOf::<C> {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        }
    }

    /// Everything this replica holds now (records, seal, producers), for a follower to install.
    fn full_snapshot(&self) -> std::io::Result<SnapshotOf<C, Cursor<Vec<u8>>>> {
        let records = records::dump(&self.store, self.group)?;
        let body = postcard::to_stdvec(&SnapshotBody {
            records,
            sealed_opt: self.sealed_opt,
            producers: self.producers.clone().into_iter().collect(),
        })
        .map_err(io_error)?;
        Ok(SnapshotOf::<C, Cursor<Vec<u8>>> {
            meta: self.snapshot_meta(),
            snapshot: Cursor::new(body),
        })
    }
}

impl RaftSnapshotBuilder<C> for ShardMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    /// openraft builds a snapshot (every `SNAPSHOT_AFTER_LOGS` entries) only to purge the log
    /// behind it: it keeps the meta and drops the data, and asks `get_current_snapshot` when a
    /// follower needs one. The records are in RocksDB already, so a build is a sync and the
    /// meta, not a copy of everything the shard retains (which grew with retention: gigabytes
    /// every 10,000 entries). The body is empty; installing it fails to decode rather than
    /// wiping a replica.
    async fn build_snapshot(&mut self) -> std::io::Result<SnapshotOf<C, Self::SnapshotData>> {
        // The log behind this snapshot may be purged next: make the applied state durable first.
        self.store.sync()?;
        Ok(SnapshotOf::<C, Self::SnapshotData> {
            meta: self.snapshot_meta(),
            snapshot: Cursor::new(Vec::new()),
        })
    }
}

impl RaftStateMachine<C> for ShardMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> std::io::Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> std::io::Result<()>
    where
        Strm: Stream<Item = std::io::Result<EntryResponder<C>>> + Unpin + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut tip = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let response = match &entry.payload {
                EntryPayload::Blank => ShardResponse::default(),
                EntryPayload::Normal(ShardCommand::Put(put)) => {
                    let (response, stored_tip) =
                        self.apply_put(&mut batch, log_id.index(), put, None)?;
                    tip = stored_tip.or(tip);
                    response
                }
                EntryPayload::Normal(ShardCommand::PutSealed { key, batch: put }) => {
                    let (response, stored_tip) =
                        self.apply_put(&mut batch, log_id.index(), put, Some(key))?;
                    tip = stored_tip.or(tip);
                    response
                }
                EntryPayload::Normal(ShardCommand::Seal) => {
                    self.apply_seal(&mut batch, log_id.index())?
                }
                EntryPayload::Normal(ShardCommand::Trim { before_ms }) => {
                    // The trim reads the stored records: write what this call applied so far
                    // first. Safe without the applied id: re-applying puts and trims after a
                    // crash rewrites the same keys and deletes the same range.
                    self.store.write(std::mem::take(&mut batch))?;
                    let removed = records::trim(&self.store, &mut batch, self.group, *before_ms)?;
                    self.forget_idle_producers(&mut batch, *before_ms);
                    if removed > 0 {
                        tracing::debug!(group = %self.group, removed, "retention trimmed records");
                        crate::telemetry::record_trimmed(self.shard, removed);
                    }
                    ShardResponse::default()
                }
                EntryPayload::Membership(membership) => {
                    self.membership =
                        StoredMembershipOf::<C>::new(Some(log_id), membership.clone());
                    ShardResponse::default()
                }
            };
            self.applied = Some(log_id);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        sm_store::put_applied::<C>(
            &self.store,
            &mut batch,
            self.group,
            &self.applied,
            &self.membership,
        )?;
        self.store.write(batch)?;
        if tip.is_some() {
            self.tip_tx.send_replace(tip);
        }
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Self::SnapshotData,
    ) -> std::io::Result<()> {
        let body: SnapshotBody = postcard::from_bytes(snapshot.get_ref()).map_err(io_error)?;
        let cf = self.store.cf(CF_RECORDS);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf,
            keys::group_prefix(self.group),
            keys::group_end(self.group),
        );
        for (key, value) in &body.records {
            batch.put_cf(cf, key, value);
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.sealed_opt = body.sealed_opt;
        let sm = self.store.cf(CF_SM);
        batch.delete_range_cf(
            sm,
            &keys::producer_key(self.group, 0)[..],
            &keys::tag_key(self.group, keys::TAG_SM_PRODUCER + 1)[..],
        );
        for (producer_id, state) in &body.producers {
            let value = postcard::to_stdvec(state).map_err(io_error)?;
            batch.put_cf(sm, keys::producer_key(self.group, *producer_id), value);
        }
        self.producers = body.producers.into_iter().collect();
        match &body.sealed_opt {
            Some(ending) => sm_store::put(
                &self.store,
                &mut batch,
                self.group,
                keys::TAG_SM_SEALED,
                ending,
            )?,
            None => batch.delete_cf(
                self.store.cf(CF_SM),
                keys::tag_key(self.group, keys::TAG_SM_SEALED),
            ),
        }
        sm_store::put_applied::<C>(
            &self.store,
            &mut batch,
            self.group,
            &self.applied,
            &self.membership,
        )?;
        self.store.write_synced(batch)?;
        let tip = body
            .records
            .last()
            .map(|(key, _)| keys::sequence_number_of(key));
        self.tip_tx.send_replace(tip);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::io::Result<Option<SnapshotOf<C, Self::SnapshotData>>> {
        if self.applied.is_none() {
            return Ok(None);
        }
        self.full_snapshot().map(Some)
    }
}

/// Every producer's idempotent-put state of a shard group, as persisted.
fn read_producers(store: &Store, group: GroupId) -> std::io::Result<BTreeMap<u64, ProducerState>> {
    let mut options = ReadOptions::default();
    options.set_iterate_upper_bound(keys::tag_key(group, keys::TAG_SM_PRODUCER + 1).to_vec());
    let from = keys::producer_key(group, 0);
    let mut producers = BTreeMap::new();
    for item in store.db().iterator_cf_opt(
        store.cf(CF_SM),
        options,
        IteratorMode::From(&from, Direction::Forward),
    ) {
        let (key, value) = item.map_err(io_error)?;
        let state: ProducerState = postcard::from_bytes(&value).map_err(io_error)?;
        producers.insert(keys::producer_id_of(&key), state);
    }
    Ok(producers)
}

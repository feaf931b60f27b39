//! The shard state machine. Applying a put batch at log index `i` stores record `k` of the batch
//! under sequence number (shard, i, k): a pure function of the committed log, so every replica
//! numbers identically and re-applying after a crash rewrites the same keys. Records and the
//! applied log id go to RocksDB in one write batch.

use std::io::Cursor;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::WriteBatch;
use tokio::sync::watch;
use tributary_raft::shard::{PutBatch, ShardCommand, ShardResponse, ShardTypeConfig};
use tributary_storage::{CF_RECORDS, Store, io_error, keys};
use tributary_types::{GroupId, SequenceNumber, ShardId};

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
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotBody {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    sealed_opt: Option<SequenceNumber>,
}

impl ShardMachine {
    pub fn open(
        store: Store,
        group: GroupId,
        shard: ShardId,
    ) -> std::io::Result<(ShardMachine, ShardTip)> {
        let (applied, membership) = sm_store::read_applied::<C>(&store, group)?;
        let tip = records::last(&store, group)?.map(|record| record.sequence_number);
        let sealed_opt = sm_store::read::<SequenceNumber>(&store, group, keys::TAG_SM_SEALED)?;
        let (tip_tx, tip_rx) = watch::channel(tip);
        let machine = ShardMachine {
            store,
            group,
            shard,
            applied,
            membership,
            tip_tx: Arc::new(tip_tx),
            sealed_opt,
        };
        Ok((machine, tip_rx))
    }

    fn apply_put(
        &self,
        batch: &mut WriteBatch,
        log_index: u64,
        put: &PutBatch,
    ) -> std::io::Result<ShardResponse> {
        if self.sealed_opt.is_some() {
            return Ok(ShardResponse {
                sealed: true,
                ..ShardResponse::default()
            });
        }
        let mut sequence_numbers = Vec::with_capacity(put.records.len());
        for (offset, (partition_key, data)) in put.records.iter().enumerate() {
            let offset = u16::try_from(offset)
                .map_err(|_| io_error("a put batch holds at most 65536 records"))?;
            let sequence_number = SequenceNumber::new(self.shard, log_index, offset);
            records::put(
                &self.store,
                batch,
                self.group,
                sequence_number,
                put.arrival_ms,
                partition_key,
                data,
            )?;
            sequence_numbers.push(sequence_number);
        }
        Ok(ShardResponse {
            sequence_numbers,
            ..ShardResponse::default()
        })
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

impl RaftSnapshotBuilder<C> for ShardMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> std::io::Result<SnapshotOf<C, Self::SnapshotData>> {
        // The log behind this snapshot may be purged next: make the applied state durable first.
        self.store.sync()?;
        let records = records::dump(&self.store, self.group)?;
        let body = postcard::to_stdvec(&SnapshotBody {
            records,
            sealed_opt: self.sealed_opt,
        })
        .map_err(io_error)?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        Ok(SnapshotOf::<C, Self::SnapshotData> {
            meta,
            snapshot: Cursor::new(body),
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
                    self.apply_put(&mut batch, log_id.index(), put)?
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
            if let Some(last) = response.sequence_numbers.last() {
                tip = Some(*last);
            }
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
        match &body.sealed_opt {
            Some(ending) => sm_store::put(
                &self.store,
                &mut batch,
                self.group,
                keys::TAG_SM_SEALED,
                ending,
            )?,
            None => batch.delete_cf(
                self.store.cf(tributary_storage::CF_SM),
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
        Ok(Some(self.build_snapshot().await?))
    }
}

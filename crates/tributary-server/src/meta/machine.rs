//! The metadata state machine: applies [`MetaCommand`]s to the in-memory catalogue and persists
//! the whole catalogue with the applied log id in one write batch (the catalogue is small).

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::WriteBatch;
use tokio::sync::watch;
use tributary_raft::meta::{MetaCommand, MetaResponse, MetaTypeConfig};
use tributary_storage::{Store, io_error, keys};
use tributary_types::METADATA_GROUP;

use super::state::MetaState;
use crate::sm_store;

type C = MetaTypeConfig;

/// A read-only view of the replicated catalogue, with a change counter to wait on.
#[derive(Clone)]
pub struct MetaView {
    state: Arc<RwLock<MetaState>>,
    version_rx: watch::Receiver<u64>,
}

impl MetaView {
    pub fn read<T>(&self, f: impl FnOnce(&MetaState) -> T) -> T {
        f(&self.state.read().expect("meta state lock poisoned"))
    }

    pub fn snapshot(&self) -> MetaState {
        self.read(MetaState::clone)
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version_rx.clone()
    }
}

#[derive(Clone)]
pub struct MetaMachine {
    store: Store,
    state: Arc<RwLock<MetaState>>,
    version_tx: Arc<watch::Sender<u64>>,
    applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotBody {
    state: MetaState,
}

impl MetaMachine {
    pub fn open(store: Store) -> std::io::Result<(MetaMachine, MetaView)> {
        let state: MetaState =
            sm_store::read(&store, METADATA_GROUP, keys::TAG_SM_STATE)?.unwrap_or_default();
        let (applied, membership) = sm_store::read_applied::<C>(&store, METADATA_GROUP)?;
        let state = Arc::new(RwLock::new(state));
        let (version_tx, version_rx) = watch::channel(0);
        let view = MetaView {
            state: state.clone(),
            version_rx,
        };
        let machine = MetaMachine {
            store,
            state,
            version_tx: Arc::new(version_tx),
            applied,
            membership,
        };
        Ok((machine, view))
    }

    fn persist(&self, state: &MetaState, synced: bool) -> std::io::Result<()> {
        let mut batch = WriteBatch::default();
        sm_store::put(
            &self.store,
            &mut batch,
            METADATA_GROUP,
            keys::TAG_SM_STATE,
            state,
        )?;
        sm_store::put_applied::<C>(
            &self.store,
            &mut batch,
            METADATA_GROUP,
            &self.applied,
            &self.membership,
        )?;
        if synced {
            self.store.write_synced(batch)
        } else {
            self.store.write(batch)
        }
    }

    fn publish(&self) {
        self.version_tx.send_modify(|version| *version += 1);
    }
}

impl RaftSnapshotBuilder<C> for MetaMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> std::io::Result<SnapshotOf<C, Self::SnapshotData>> {
        let state = self.state.read().expect("meta state lock poisoned").clone();
        let body = postcard::to_stdvec(&SnapshotBody { state }).map_err(io_error)?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        // The log behind this snapshot may be purged next: make the state durable first.
        self.store.sync()?;
        Ok(SnapshotOf::<C, Self::SnapshotData> {
            meta,
            snapshot: Cursor::new(body),
        })
    }
}

impl RaftStateMachine<C> for MetaMachine {
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
        let mut responses = Vec::new();
        // Lease-table churn must not wake every catalogue watcher (the shard reconciler, ...).
        let mut catalogue_changed = false;
        let mut state = self.state.read().expect("meta state lock poisoned").clone();
        while let Some((entry, responder)) = entries.try_next().await? {
            self.applied = Some(entry.log_id());
            let response = match &entry.payload {
                EntryPayload::Blank => MetaResponse::default(),
                EntryPayload::Normal(command) => {
                    catalogue_changed |=
                        !matches!(command, MetaCommand::Table(_) | MetaCommand::Auth(_));
                    let (result, item_opt) = match state.apply_with_item(command) {
                        Ok(item_opt) => (Ok(()), item_opt),
                        Err(error) => {
                            tracing::debug!(%command, %error, "metadata command refused");
                            (Err(error), None)
                        }
                    };
                    MetaResponse {
                        result: Some(result),
                        item_opt,
                    }
                }
                EntryPayload::Membership(membership) => {
                    catalogue_changed = true;
                    self.membership =
                        StoredMembershipOf::<C>::new(Some(entry.log_id()), membership.clone());
                    MetaResponse::default()
                }
            };
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        self.persist(&state, false)?;
        *self.state.write().expect("meta state lock poisoned") = state;
        if catalogue_changed {
            self.publish();
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
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.persist(&body.state, true)?;
        *self.state.write().expect("meta state lock poisoned") = body.state;
        self.publish();
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

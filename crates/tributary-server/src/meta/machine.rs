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

/// What the catalogue's bytes start with, on disk and in snapshots: a marker, then
/// [`CATALOGUE_FORMAT`] (big-endian u16), then the postcard encoding of [`MetaState`]. postcard
/// is not self-describing, so without them a build could take another build's catalogue for its
/// own and decode it into wrong values instead of failing.
const CATALOGUE_MAGIC: &[u8; 4] = b"TCAT";
/// The catalogue's encoding; bumped (with a conversion from the old one) whenever it changes.
pub const CATALOGUE_FORMAT: u16 = 1;

fn encode_catalogue(state: &MetaState) -> std::io::Result<Vec<u8>> {
    let mut bytes = CATALOGUE_MAGIC.to_vec();
    bytes.extend_from_slice(&CATALOGUE_FORMAT.to_be_bytes());
    postcard::to_extend(state, bytes).map_err(io_error)
}

fn decode_catalogue(bytes: &[u8]) -> std::io::Result<MetaState> {
    let unreadable = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the metadata catalogue cannot be read: {why}"),
        )
    };
    let Some(rest) = bytes.strip_prefix(CATALOGUE_MAGIC.as_slice()) else {
        return Err(unreadable(
            "it has no format marker (written by a build from before catalogue formats); this \
             build reads format 1 only"
                .to_string(),
        ));
    };
    let Some((format, body)) = rest.split_first_chunk::<2>() else {
        return Err(unreadable("it ends inside its format marker".to_string()));
    };
    let format = u16::from_be_bytes(*format);
    if format != CATALOGUE_FORMAT {
        return Err(unreadable(format!(
            "it is in format {format}, and this build reads format {CATALOGUE_FORMAT}"
        )));
    }
    postcard::from_bytes(body).map_err(|e| unreadable(format!("format {format}: {e}")))
}

impl MetaMachine {
    pub fn open(store: Store) -> std::io::Result<(MetaMachine, MetaView)> {
        let state = sm_store::read_bytes(&store, METADATA_GROUP, keys::TAG_SM_STATE)?
            .map(|bytes| decode_catalogue(&bytes))
            .transpose()?
            .unwrap_or_default();
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
        sm_store::put_bytes(
            &self.store,
            &mut batch,
            METADATA_GROUP,
            keys::TAG_SM_STATE,
            encode_catalogue(state)?,
        );
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
        let body = encode_catalogue(&state)?;
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
        let state = decode_catalogue(snapshot.get_ref())?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.persist(&state, true)?;
        *self.state.write().expect("meta state lock poisoned") = state;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_carries_its_format_and_refuses_any_other() {
        let mut state = MetaState::default();
        state.auth.users.insert(
            "someone".to_string(),
            crate::meta::auth::UserMeta {
                access_keys: Vec::new(),
                policies: ["reader".to_string()].into(),
                created_at_ms: 7,
            },
        );
        let bytes = encode_catalogue(&state).unwrap();
        assert_eq!(&bytes[..6], b"TCAT\0\x01");
        assert_eq!(decode_catalogue(&bytes).unwrap(), state);

        // A catalogue from before formats: the bare postcard encoding.
        let bare = postcard::to_stdvec(&state).unwrap();
        let error = decode_catalogue(&bare).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("no format marker"), "{error}");

        // A later format is refused by name, not decoded as this one.
        let mut later = bytes.clone();
        later[5] = 2;
        let error = decode_catalogue(&later).unwrap_err();
        assert!(error.to_string().contains("format 2"), "{error}");
        assert!(decode_catalogue(b"TCAT\0").is_err());
    }
}

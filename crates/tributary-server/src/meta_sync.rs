//! Reading the catalogue without trusting a lagging replica. A node answers from its own replica
//! of the metadata group; before it says a stream does not exist, it asks the metadata leader for
//! its read index (ReadIndex: the leader confirms it still leads) and waits until its replica has
//! applied that far. A node just restarted, or a learner behind, thus never reports a stream
//! missing that exists.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;
use tokio::time::Instant;
use tributary_proto::internal::MetaReadIndexRequest;
use tributary_raft::codec;
use tributary_types::{Error, ErrorCode, StreamName};

use crate::meta::StreamMeta;
use crate::node::Node;

/// How long a lookup may wait for the catalogue to catch up before answering from what it has.
const META_SYNC_TIMEOUT: Duration = Duration::from_secs(2);

impl Node {
    /// The stream as the metadata group knows it, catching this replica up before a "not found".
    pub(crate) async fn stream_meta(&self, name: &StreamName) -> Result<StreamMeta, Error> {
        if let Ok(stream) = self.meta.read(|state| state.stream(name).cloned()) {
            return Ok(stream);
        }
        if let Err(error) = self.sync_metadata().await {
            tracing::debug!(%error, stream = %name, "could not confirm the catalogue with the metadata leader");
        }
        self.meta.read(|state| state.stream(name).cloned())
    }

    /// The metadata leader's read index; answered by the leader itself.
    pub(crate) async fn metadata_read_index(&self) -> Result<u64, Error> {
        let read = tokio::time::timeout(
            META_SYNC_TIMEOUT,
            self.meta_raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| {
            Error::quorum_unavailable("the metadata group could not confirm its leader in time")
        })?;
        match read {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(error) => Err(Error::new(
                ErrorCode::NotLeader,
                format!("metadata read index: {error}"),
            )),
        }
    }

    /// Catches this node's catalogue up with the metadata leader when it can; answers that list
    /// the catalogue (cluster status, stream list) call this first. Without a metadata quorum the
    /// local view is served as it is.
    pub(crate) async fn catch_up_metadata(&self) {
        if let Err(error) = self.sync_metadata().await {
            tracing::debug!(%error, "serving the local catalogue without confirming it");
        }
    }

    /// Waits until this node's catalogue has applied everything the metadata leader had
    /// committed when asked.
    pub(crate) async fn sync_metadata(&self) -> Result<(), Error> {
        let deadline = Instant::now() + META_SYNC_TIMEOUT;
        let leader = self
            .meta_raft
            .metrics()
            .borrow_watched()
            .current_leader
            .ok_or_else(|| Error::quorum_unavailable("no metadata leader is known"))?;
        let index = if leader == self.id() {
            self.metadata_read_index().await?
        } else {
            let address = self
                .node_address(leader)
                .or_else(|| self.config.peers.get(&leader).cloned())
                .ok_or_else(|| {
                    Error::internal(format!("metadata leader {leader} has no known address"))
                })?;
            let mut client = self
                .router
                .client(leader, &address)
                .map_err(Error::internal)?;
            let reply =
                tokio::time::timeout_at(deadline, client.meta_read_index(MetaReadIndexRequest {}))
                    .await
                    .map_err(|_| {
                        Error::quorum_unavailable("the metadata leader did not answer in time")
                    })?
                    .map_err(|status| {
                        Error::internal(format!("metadata leader {leader}: {}", status.message()))
                    })?
                    .into_inner();
            codec::decode::<Result<u64, Error>>(&reply.response).map_err(Error::internal)??
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.meta_raft
            .wait(Some(remaining))
            .applied_index_at_least(
                Some(index),
                "the catalogue to catch up with the metadata leader",
            )
            .await
            .map(|_| ())
            .map_err(|error| {
                Error::quorum_unavailable(format!("catalogue did not catch up: {error}"))
            })
    }
}

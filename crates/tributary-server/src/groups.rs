//! The shard groups this node holds a replica of, started and stopped by the reconciler as the
//! metadata catalogue changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use openraft::async_runtime::WatchReceiver;

use tributary_types::{GroupId, NodeId, ShardId, StreamName};

use crate::limits::ShardLimiter;
use crate::meter::WriteMeter;
use crate::shard::{ShardRaft, ShardTip};

pub struct ShardGroup {
    pub group: GroupId,
    pub stream: StreamName,
    pub shard: ShardId,
    pub raft: ShardRaft,
    pub tip: ShardTip,
    /// Throughput limits, applied while this replica leads.
    pub limiter: ShardLimiter,
    /// Committed writes per second, for on-demand scaling.
    pub meter: WriteMeter,
}

impl ShardGroup {
    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }
}

#[derive(Default)]
pub struct Groups {
    map: RwLock<HashMap<GroupId, Arc<ShardGroup>>>,
}

impl Groups {
    pub fn get(&self, group: GroupId) -> Option<Arc<ShardGroup>> {
        self.map
            .read()
            .expect("groups lock poisoned")
            .get(&group)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ShardGroup>> {
        self.map
            .read()
            .expect("groups lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// The groups whose leader, as this node's replica knows it, is `node`.
    pub fn led_by(&self, node: NodeId) -> Vec<Arc<ShardGroup>> {
        self.all()
            .into_iter()
            .filter(|group| group.current_leader() == Some(node))
            .collect()
    }

    pub fn ids(&self) -> Vec<GroupId> {
        self.map
            .read()
            .expect("groups lock poisoned")
            .keys()
            .copied()
            .collect()
    }

    pub fn insert(&self, group: Arc<ShardGroup>) {
        self.map
            .write()
            .expect("groups lock poisoned")
            .insert(group.group, group);
    }

    pub fn remove(&self, group: GroupId) -> Option<Arc<ShardGroup>> {
        self.map
            .write()
            .expect("groups lock poisoned")
            .remove(&group)
    }
}

//! The nemesis: faults injected on a seeded schedule. Each fault is applied, held, then healed;
//! some target shard leaders, found through DescribeStream.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use tributary_testkit::ClusterControl;

use crate::history::{Clock, FaultEvent};

/// The kinds of fault, by their `--nemesis` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Nemesis {
    /// SIGKILL a node (often a shard leader), restart it at heal.
    Kill,
    /// SIGSTOP a node (often a shard leader) past the election timeout, SIGCONT at heal.
    Pause,
    /// Cut a node (often a shard leader) off from the others; clients still reach it.
    Partition,
    /// One whole AZ down: its nodes killed or cut off.
    Az,
    /// A majority of the nodes down or split apart: affected shards must refuse writes fast.
    Majority,
    /// Choreography: cut a shard leader off in a minority while writes continue, then heal.
    IsolateLeader,
    /// Choreography: freeze a shard leader past the election timeout, then resume it.
    PauseLeader,
    /// Choreography: kill a shard's leader and restart it at once, three times in a row.
    KillRepeat,
    /// Choreography: kill a replica so it lags, kill an up-to-date one, restart the laggard so
    /// the majority is laggard plus survivor, then restart the other.
    Laggards,
    /// Choreography: a node is lost with its disk; a new node joins in its AZ under a new id,
    /// and `remove-node` moves the lost node's replicas to it (process clusters only).
    Wipe,
}

impl Nemesis {
    pub const ALL: [Nemesis; 10] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::Az,
        Nemesis::Majority,
        Nemesis::IsolateLeader,
        Nemesis::PauseLeader,
        Nemesis::KillRepeat,
        Nemesis::Laggards,
        Nemesis::Wipe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Partition => "partition",
            Nemesis::Az => "az",
            Nemesis::Majority => "majority",
            Nemesis::IsolateLeader => "isolate-leader",
            Nemesis::PauseLeader => "pause-leader",
            Nemesis::KillRepeat => "kill-repeat",
            Nemesis::Laggards => "laggards",
            Nemesis::Wipe => "wipe",
        }
    }
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Nemesis {
    type Err = String;

    fn from_str(text: &str) -> Result<Nemesis, String> {
        Nemesis::ALL
            .into_iter()
            .find(|n| n.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Nemesis::ALL.iter().map(|n| n.name()).collect();
                format!(
                    "unknown nemesis {text:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How long the cluster may take to accept the removal of a wiped node (its replacement must
/// register first).
const REMOVAL_ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the replicas of a wiped node may take to move.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a fault is held, and how long the cluster runs healthy between faults.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub hold: (Duration, Duration),
    pub healthy: (Duration, Duration),
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            hold: (Duration::from_secs(3), Duration::from_secs(8)),
            healthy: (Duration::from_secs(3), Duration::from_secs(6)),
        }
    }
}

fn between(rng: &mut StdRng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low {
        return low;
    }
    rng.random_range(low..=high)
}

/// What undoes a fault.
#[derive(Debug, Default)]
struct Damage {
    killed: BTreeSet<u64>,
    paused: BTreeSet<u64>,
    partitioned: bool,
}

/// Drives the faults; owns the run's random number generator.
pub struct Nemeses<'a, C: ClusterControl> {
    pub cluster: &'a mut C,
    pub stream: String,
    pub kinds: Vec<Nemesis>,
    pub schedule: Schedule,
    pub rng: StdRng,
    pub clock: Clock,
    /// Where the node list is published after each fault (a `wipe` replaces a node).
    pub endpoints_opt: Option<tokio::sync::watch::Sender<Vec<String>>>,
    damage: Damage,
}

impl<'a, C: ClusterControl> Nemeses<'a, C> {
    pub fn new(
        cluster: &'a mut C,
        stream: String,
        kinds: Vec<Nemesis>,
        schedule: Schedule,
        rng: StdRng,
        clock: Clock,
    ) -> Self {
        Nemeses {
            cluster,
            stream,
            kinds,
            schedule,
            rng,
            clock,
            endpoints_opt: None,
            damage: Damage::default(),
        }
    }

    /// Injects faults until `run_for` has passed, healing each before the next; returns them.
    /// When a fault cannot be injected or healed, the error says which, and the faults so far
    /// stay in `faults_so_far`.
    pub async fn run(
        &mut self,
        run_for: Duration,
        faults_so_far: &mut Vec<FaultEvent>,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + run_for;
        let faults = faults_so_far;
        let mut order: Vec<Nemesis> = Vec::new();
        loop {
            let healthy = between(&mut self.rng, self.schedule.healthy);
            if tokio::time::Instant::now() + healthy >= deadline {
                break;
            }
            tokio::time::sleep(healthy).await;
            // Every listed nemesis in turn, in a seeded order, so short runs cover them all.
            if order.is_empty() {
                order = self.kinds.clone();
                order.shuffle(&mut self.rng);
            }
            let kind = order.pop().expect("at least one nemesis");
            let hold = between(&mut self.rng, self.schedule.hold);
            let start_ms = self.clock.now();
            let (description, nodes, majority) = self
                .inject(kind, hold)
                .await
                .with_context(|| format!("injecting {kind}"))?;
            self.heal()
                .await
                .with_context(|| format!("healing {kind}"))?;
            if let Some(endpoints) = &self.endpoints_opt {
                let current = crate::run::endpoints_of(&*self.cluster);
                endpoints.send_if_modified(|list| {
                    let changed = *list != current;
                    *list = current;
                    changed
                });
            }
            faults.push(FaultEvent {
                nemesis: kind.name().to_string(),
                description,
                nodes,
                majority,
                start_ms,
                end_ms: self.clock.now(),
            });
        }
        Ok(())
    }

    /// The leader of a random shard, or a random node when none is known.
    async fn some_leader(&mut self) -> u64 {
        let ids = self.cluster.node_ids();
        let leaders: Vec<u64> = match self.cluster.client().describe_stream(&self.stream).await {
            Ok(description) => description
                .shards
                .iter()
                .filter_map(|shard| shard.leader)
                .filter(|id| self.cluster.is_up(*id))
                .collect(),
            Err(_) => Vec::new(),
        };
        *leaders
            .choose(&mut self.rng)
            .or_else(|| ids.choose(&mut self.rng))
            .expect("a cluster has nodes")
    }

    /// Half the time a shard leader (the interesting victim), otherwise any node.
    async fn victim(&mut self) -> u64 {
        if self.rng.random_bool(0.5) {
            self.some_leader().await
        } else {
            *self
                .cluster
                .node_ids()
                .choose(&mut self.rng)
                .expect("a cluster has nodes")
        }
    }

    /// The replicas of a random shard (all nodes when none are listed).
    async fn some_replica_set(&mut self) -> Vec<u64> {
        let sets: Vec<Vec<u64>> = match self.cluster.client().describe_stream(&self.stream).await {
            Ok(description) => description
                .shards
                .iter()
                .map(|shard| shard.replicas.iter().map(|r| r.node_id).collect())
                .filter(|set: &Vec<u64>| set.len() == 3)
                .collect(),
            Err(_) => Vec::new(),
        };
        sets.choose(&mut self.rng)
            .cloned()
            .unwrap_or_else(|| self.cluster.node_ids())
    }

    async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.cluster.kill(id).await?;
        self.damage.killed.insert(id);
        Ok(())
    }

    async fn start(&mut self, id: u64) -> anyhow::Result<()> {
        self.cluster.start(id).await?;
        self.damage.killed.remove(&id);
        Ok(())
    }

    async fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.cluster.pause(id).await?;
        self.damage.paused.insert(id);
        Ok(())
    }

    async fn partition(&mut self, side: &[u64]) -> anyhow::Result<()> {
        self.cluster.partition(side).await?;
        self.damage.partitioned = true;
        Ok(())
    }

    /// Applies one fault and holds it; returns its description, the nodes hit and whether a
    /// majority of some shard's replicas was hit.
    async fn inject(
        &mut self,
        kind: Nemesis,
        hold: Duration,
    ) -> anyhow::Result<(String, Vec<u64>, bool)> {
        let all = self.cluster.node_ids();
        let (description, nodes, majority) = match kind {
            Nemesis::Kill => {
                let id = self.victim().await;
                self.kill(id).await?;
                (format!("killed node {id}"), vec![id], false)
            }
            Nemesis::Pause => {
                let id = self.victim().await;
                self.pause(id).await?;
                (format!("paused node {id}"), vec![id], false)
            }
            Nemesis::Partition => {
                let id = self.victim().await;
                self.partition(&[id]).await?;
                (
                    format!("cut node {id} off from the others"),
                    vec![id],
                    false,
                )
            }
            Nemesis::Az => {
                let az = self
                    .cluster
                    .azs()
                    .choose(&mut self.rng)
                    .cloned()
                    .expect("a cluster has AZs");
                let nodes = self.cluster.nodes_in(&az);
                if self.rng.random_bool(0.5) {
                    for &id in &nodes {
                        self.kill(id).await?;
                    }
                    (format!("killed {az} (nodes {nodes:?})"), nodes, false)
                } else {
                    self.partition(&nodes).await?;
                    (format!("cut {az} (nodes {nodes:?}) off"), nodes, false)
                }
            }
            Nemesis::Majority => {
                // Two of three AZs: a majority of every shard's replicas.
                let mut azs = self.cluster.azs();
                azs.shuffle(&mut self.rng);
                let nodes: Vec<u64> = azs
                    .iter()
                    .take(2)
                    .flat_map(|az| self.cluster.nodes_in(az))
                    .collect();
                if self.rng.random_bool(0.5) {
                    for &id in &nodes {
                        self.kill(id).await?;
                    }
                    (format!("killed a majority: nodes {nodes:?}"), nodes, true)
                } else {
                    // Every AZ on its own: no side has a majority.
                    for az in &azs {
                        let side = self.cluster.nodes_in(az);
                        self.partition(&side).await?;
                    }
                    (
                        format!("split every AZ from the others: {azs:?}"),
                        all,
                        true,
                    )
                }
            }
            Nemesis::IsolateLeader => {
                let id = self.some_leader().await;
                self.partition(&[id]).await?;
                (format!("cut shard leader {id} off"), vec![id], false)
            }
            Nemesis::PauseLeader => {
                let id = self.some_leader().await;
                self.pause(id).await?;
                (format!("paused shard leader {id}"), vec![id], false)
            }
            Nemesis::KillRepeat => {
                let mut killed = Vec::new();
                let pause = hold / 3;
                for _ in 0..3 {
                    let id = self.some_leader().await;
                    self.kill(id).await?;
                    self.start(id).await?;
                    killed.push(id);
                    tokio::time::sleep(pause).await;
                }
                let description = format!("killed and restarted shard leaders {killed:?} in a row");
                return Ok((description, killed, false));
            }
            Nemesis::Laggards => {
                let replicas = self.some_replica_set().await;
                let (laggard, fresh) = (replicas[0], replicas[1]);
                self.kill(laggard).await?;
                tokio::time::sleep(hold / 2).await;
                self.kill(fresh).await?;
                self.start(laggard).await?;
                tokio::time::sleep(hold / 2).await;
                let description = format!(
                    "killed node {laggard}, wrote on, killed up-to-date node {fresh} and restarted \
                     {laggard}: a majority of replicas {replicas:?} with a laggard"
                );
                return Ok((description, vec![laggard, fresh], true));
            }
            Nemesis::Wipe => {
                let id = self.victim().await;
                let new_id = self.cluster.replace(id).await?;
                self.remove(id).await?;
                let description = format!(
                    "wiped node {id}; node {new_id} joined in its AZ under a new id, and \
                     remove-node moved node {id}'s replicas to it"
                );
                return Ok((description, vec![id], false));
            }
        };
        tokio::time::sleep(hold).await;
        Ok((description, nodes, majority))
    }

    /// `cluster remove-node id` once the cluster accepts it (the replacement must have
    /// registered), then waits until the node has left.
    async fn remove(&mut self, id: u64) -> anyhow::Result<()> {
        let admin = self.cluster.client();
        let deadline = tokio::time::Instant::now() + REMOVAL_ACCEPT_TIMEOUT;
        loop {
            match admin.remove_node(id).await {
                Ok(_) => break,
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(error).with_context(|| format!("removing node {id}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        admin
            .wait_for_removed(id, REMOVAL_TIMEOUT, |_| {})
            .await
            .with_context(|| format!("waiting for node {id} to leave"))
    }

    /// Undoes every fault: restarts killed nodes, resumes paused ones, heals the network.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for id in std::mem::take(&mut self.damage.paused) {
            self.cluster.resume(id).await?;
        }
        if std::mem::take(&mut self.damage.partitioned) {
            self.cluster.heal().await?;
        }
        for id in std::mem::take(&mut self.damage.killed) {
            self.cluster.start(id).await?;
        }
        Ok(())
    }
}

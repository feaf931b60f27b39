//! Enhanced fan-out: registered consumers subscribe to a shard and get records pushed as they
//! are applied, without polling and outside the shard's shared GetRecords limits (each
//! subscription has its own 2 MiB/s, as in Kinesis).
//!
//! A subscription is served from the shard leader's replica, where records apply the moment
//! they commit: a node that holds no replica, or does not lead, relays the leader's event
//! stream (falling back to its own replica when no leader answers). Every event carries a
//! continuation sequence number; a subscription ends after 5 minutes, when the relayed leader
//! goes away, or when the node stops, and the consumer resubscribes from the continuation.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use futures::channel::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;
use tributary_proto::v1;
use tributary_types::{
    ConsumerName, Error, ErrorCode, SequenceNumber, ShardId, ShardIterator, StreamName,
};

use crate::api::{ChildShard, SubscribeEvent};
use crate::clients::Slot;
use crate::groups::ShardGroup;
use crate::meta::ShardMeta;
use crate::node::Node;
use crate::now_ms;
use crate::reads::{forwarded_request, read_batch};
use crate::service::convert;

/// How long one subscription lasts before the consumer must resubscribe (Kinesis: 5 minutes).
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// An idle subscription still gets an event (with the continuation) this often.
const IDLE_EVENT_INTERVAL: Duration = Duration::from_secs(1);
/// Records and bytes per event.
const EVENT_RECORD_LIMIT: usize = 10_000;
const EVENT_MAX_BYTES: usize = 1024 * 1024;
/// Each subscription's own read rate.
const SUBSCRIPTION_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
/// Events buffered between the reader and a slow consumer.
const EVENT_BUFFER: usize = 4;

/// A subscription's events. It holds its client's subscription slot until it is dropped (the
/// client went away) or ends.
pub struct Events {
    events: mpsc::Receiver<Result<SubscribeEvent, Error>>,
    _slot_opt: Option<Slot>,
}

impl futures::Stream for Events {
    type Item = Result<SubscribeEvent, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.events).poll_next(cx)
    }
}

/// Who asked for a subscription.
#[derive(Debug, Clone, Copy)]
pub enum Subscriber {
    /// A client connected to this node (its address, when the transport knows it): the
    /// subscription counts against its `--max-subscriptions-per-client`.
    Client(Option<IpAddr>),
    /// Another node relaying its client's subscription (counted there) to this replica.
    Forwarded,
}

/// The live subscriptions a node serves, one per (stream, consumer, shard): as in Kinesis, a new
/// subscription takes over and the older one ends with RESOURCE_IN_USE.
#[derive(Default)]
pub struct Subscriptions {
    live: std::sync::Mutex<
        std::collections::HashMap<(StreamName, ConsumerName, ShardId), watch::Sender<u64>>,
    >,
}

impl Subscriptions {
    /// Registers a new subscription; its receiver changes when a newer one takes over.
    fn take_over(&self, key: (StreamName, ConsumerName, ShardId)) -> (u64, watch::Receiver<u64>) {
        let mut live = self.live.lock().expect("subscriptions lock poisoned");
        let sender = live.entry(key).or_insert_with(|| watch::channel(0).0);
        let generation = *sender.borrow() + 1;
        sender.send_replace(generation);
        (generation, sender.subscribe())
    }
}

/// Where to start, as SubscribeToShard's StartingPosition has it.
#[derive(Debug, Clone)]
pub struct StartingPosition {
    pub kind: String,
    pub sequence_number_opt: Option<String>,
    pub timestamp_ms_opt: Option<u64>,
}

impl Node {
    pub async fn subscribe_to_shard(
        self: &Arc<Self>,
        stream: &str,
        consumer: &str,
        shard_id: &str,
        start: StartingPosition,
        subscriber: Subscriber,
    ) -> Result<Events, Error> {
        let stream: StreamName = stream.parse()?;
        let forwarded = matches!(subscriber, Subscriber::Forwarded);
        let slot_opt = match subscriber {
            Subscriber::Client(Some(client)) => {
                Some(self.client_limits.admit_subscription(client)?)
            }
            Subscriber::Client(None) | Subscriber::Forwarded => None,
        };
        let consumer: ConsumerName = consumer.parse()?;
        let shard_id: ShardId = shard_id.parse()?;
        let meta = self.stream_meta(&stream).await?;
        if !meta.consumers.contains_key(&consumer) {
            return Err(Error::not_found(format!(
                "Consumer {consumer} of stream {stream} not found."
            )));
        }
        let (shard, _) = self.shard_and_children(&stream, shard_id).await?;
        let local_opt = self.shard_group(shard.group);
        let leader_opt = local_opt.as_ref().and_then(|g| g.current_leader());
        let serve_here = forwarded || shard.replicas.is_empty() || leader_opt == Some(self.id());
        if !serve_here {
            let mut candidates: Vec<u64> = leader_opt.into_iter().collect();
            if local_opt.is_none() {
                candidates.extend(shard.replicas.iter().copied());
            }
            let request = v1::SubscribeToShardRequest {
                stream_name: stream.to_string(),
                consumer_name: consumer.to_string(),
                shard_id: shard_id.to_string(),
                starting_position: Some(v1::StartingPosition {
                    r#type: start.kind.clone(),
                    sequence_number: start.sequence_number_opt.clone(),
                    timestamp_ms: start.timestamp_ms_opt,
                }),
            };
            for candidate in candidates.into_iter().filter(|id| *id != self.id()) {
                match self.relay(candidate, request.clone()).await {
                    Ok(events) => {
                        return Ok(Events {
                            events,
                            _slot_opt: slot_opt,
                        });
                    }
                    Err(error) => {
                        tracing::debug!(node = candidate, %error, "relaying a subscription failed")
                    }
                }
            }
            if local_opt.is_none() {
                return Err(Error::quorum_unavailable(format!(
                    "no replica of {shard_id} of stream {stream} answered the subscription"
                )));
            }
        }
        let token = self
            .get_shard_iterator(
                stream.as_str(),
                &shard_id.to_string(),
                &start.kind,
                start.sequence_number_opt.as_deref(),
                start.timestamp_ms_opt,
                true,
            )
            .await?;
        let from = ShardIterator::decode(&token, now_ms())?
            .position
            .from_inclusive;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let node = self.clone();
        let turn = self
            .subscriptions
            .take_over((stream.clone(), consumer.clone(), shard_id));
        tokio::spawn(async move {
            let mut errors = tx.clone();
            if let Err(error) = serve(&node, local_opt, &stream, shard_id, from, turn, tx).await {
                let _ = errors.send(Err(error)).await;
            }
        });
        Ok(Events {
            events: rx,
            _slot_opt: slot_opt,
        })
    }

    /// Subscribes at another node and passes its events on.
    async fn relay(
        &self,
        target: u64,
        request: v1::SubscribeToShardRequest,
    ) -> Result<mpsc::Receiver<Result<SubscribeEvent, Error>>, Error> {
        let address = self
            .node_address(target)
            .ok_or_else(|| Error::internal(format!("node {target} has no known address")))?;
        let mut client = self.public_client(&address)?;
        let mut upstream = client
            .subscribe_to_shard(forwarded_request(request))
            .await
            .map_err(|status| tributary_proto::error_from_status(&status))?
            .into_inner();
        let (mut tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut stop = self.stop_signal();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = upstream.message() => item,
                    _ = stop.changed() => return,
                };
                let event = match item {
                    Ok(Some(event)) => convert::subscribe_event_from_proto(event),
                    Ok(None) => return,
                    Err(status) => Err(tributary_proto::error_from_status(&status)),
                };
                let failed = event.is_err();
                if tx.send(event).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// Pushes events from this node's replica until the shard ends, the lifetime is over, the
/// consumer goes away or the node stops.
async fn serve(
    node: &Node,
    local_opt: Option<Arc<ShardGroup>>,
    stream: &StreamName,
    shard_id: ShardId,
    mut from: SequenceNumber,
    (generation, mut turn): (u64, watch::Receiver<u64>),
    mut tx: mpsc::Sender<Result<SubscribeEvent, Error>>,
) -> Result<(), Error> {
    let taken_over = || {
        Error::new(
            ErrorCode::ResourceInUse,
            format!("A newer subscription to {shard_id} by this consumer took over"),
        )
    };
    let deadline = Instant::now() + SUBSCRIPTION_LIFETIME;
    let mut stop = node.stop_signal();
    let Some(local) = local_opt else {
        // A shard that never opened: its end at once.
        let (_, children) = node.shard_and_children(stream, shard_id).await?;
        let _ = tx.send(Ok(shard_end_event(Vec::new(), children))).await;
        return Ok(());
    };
    let mut tip = local.tip.clone();
    let mut balance = SUBSCRIPTION_BYTES_PER_SEC;
    let mut balance_at = Instant::now();
    loop {
        if *turn.borrow_and_update() != generation {
            return Err(taken_over());
        }
        // The catalogue says when the shard was sealed; re-read it for every batch.
        let (shard, children): (ShardMeta, Vec<ChildShard>) =
            node.shard_and_children(stream, shard_id).await?;
        tip.borrow_and_update();
        let batch = read_batch(
            node,
            &local,
            &shard,
            from,
            EVENT_RECORD_LIMIT,
            EVENT_MAX_BYTES,
        )
        .await?;
        from = batch.next_from;
        let caught_up = !batch.more;
        let event = if batch.at_shard_end {
            shard_end_event(batch.records, children)
        } else {
            SubscribeEvent {
                records: batch.records,
                continuation_opt: Some(from),
                millis_behind_latest: batch.millis_behind_latest,
                child_shards: Vec::new(),
            }
        };
        if tx.send(Ok(event)).await.is_err() || batch.at_shard_end {
            return Ok(());
        }
        // The subscription's own rate: pay for what was sent before reading on.
        let now = Instant::now();
        balance = (balance
            + now.duration_since(balance_at).as_secs_f64() * SUBSCRIPTION_BYTES_PER_SEC)
            .min(SUBSCRIPTION_BYTES_PER_SEC)
            - batch.bytes as f64;
        balance_at = now;
        if balance < 0.0 {
            let wait = Duration::from_secs_f64(-balance / SUBSCRIPTION_BYTES_PER_SEC);
            tokio::time::sleep(wait).await;
        }
        if caught_up {
            tokio::select! {
                changed = tip.changed() => if changed.is_err() { return Ok(()) },
                _ = turn.changed() => return Err(taken_over()),
                _ = tokio::time::sleep(IDLE_EVENT_INTERVAL) => {}
                _ = stop.changed() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
        }
        if Instant::now() >= deadline || *stop.borrow() {
            return Ok(());
        }
    }
}

fn shard_end_event(
    records: Vec<tributary_types::StoredRecord>,
    children: Vec<ChildShard>,
) -> SubscribeEvent {
    SubscribeEvent {
        records,
        continuation_opt: None,
        millis_behind_latest: 0,
        child_shards: children,
    }
}

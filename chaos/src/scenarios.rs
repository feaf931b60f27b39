//! The quorum promises as scenarios, on any [`ClusterControl`] (processes or containers): one AZ
//! cut off keeps every shard writing within 5 s; a majority split apart refuses every put fast
//! with WRITE_QUORUM_UNAVAILABLE while committed records stay readable; healing resumes writes
//! with nothing acknowledged missing. Each returns what it measured, or an error saying which
//! promise broke.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::time::Instant;
use tributary_client::{Client, v1};
use tributary_testkit::{ClusterControl, wait_until};

use crate::history::sequence_value;

/// One AZ down: every shard must take writes again within this.
pub const AZ_DOWN_RESUME_LIMIT: Duration = Duration::from_secs(5);
/// A majority down: a put must be refused within this (the node's 3 s write timeout + slack).
pub const MAJORITY_DOWN_REFUSAL_LIMIT: Duration = Duration::from_secs(5);
/// After heal: every shard must take writes again within this (elections included).
pub const HEAL_RESUME_LIMIT: Duration = Duration::from_secs(15);
/// How long a throttled read waits.
const THROTTLE_PAUSE: Duration = Duration::from_millis(250);
/// Puts that must all succeed once writes resumed with one AZ down.
const KEEP_WRITING_PUTS: usize = 30;

/// What the scenarios measured.
#[derive(Debug, Clone)]
pub struct QuorumMeasurements {
    pub az_down_resume: Duration,
    pub majority_refusals: Vec<Duration>,
    pub heal_resume: Duration,
    pub acknowledged: usize,
}

/// One put to the shard starting at `hash_key`; the acknowledged sequence number.
async fn put(
    client: &Client,
    stream: &str,
    hash_key: &str,
    data: String,
) -> Result<u128, (String, String)> {
    let request = v1::PutRecordsRequest {
        stream_name: stream.to_string(),
        records: vec![v1::PutRecordsRequestEntry {
            data: data.into_bytes().into(),
            partition_key: "scenario".to_string(),
            explicit_hash_key: Some(hash_key.to_string()),
        }],
        ..Default::default()
    };
    match client.put_records_request(request).await {
        Ok(response) => {
            let entry = response.records.into_iter().next().unwrap_or_default();
            match (entry.sequence_number, entry.error_code) {
                (Some(sequence), None) => {
                    sequence_value(&sequence).ok_or((sequence, "unparseable".to_string()))
                }
                (_, code) => Err((
                    code.unwrap_or_default(),
                    entry.error_message.unwrap_or_default(),
                )),
            }
        }
        Err(error) => Err((error.code().to_string(), error.message())),
    }
}

/// Puts to every shard until one round fully succeeds; how long that took.
async fn until_every_shard_writes(
    client: &Client,
    stream: &str,
    shards: &BTreeMap<String, String>,
    limit: Duration,
    acked: &mut Vec<Acked>,
    what: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut round = 0;
    loop {
        round += 1;
        let mut all = true;
        for (shard, hash_key) in shards {
            let data = format!("{what} round {round} {shard}");
            match put(client, stream, hash_key, data.clone()).await {
                Ok(sequence) => acked.push(Acked {
                    shard: shard.clone(),
                    data,
                    sequence,
                }),
                Err(_) => all = false,
            }
        }
        if all {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < limit,
            "{what}: writes did not resume on every shard within {limit:?}"
        );
    }
}

/// Every record of every shard, read through `client`.
async fn read_all(
    client: &Client,
    stream: &str,
    shards: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for shard in shards.keys() {
        let mut iterator = client
            .get_shard_iterator(stream, shard, "TRIM_HORIZON", None)
            .await?;
        loop {
            let response = match client.get_records(&iterator, Some(10_000)).await {
                Ok(response) => response,
                // 5 GetRecords per second per shard, as on Kinesis.
                Err(error) if error.code() == "PROVISIONED_THROUGHPUT_EXCEEDED" => {
                    tokio::time::sleep(THROTTLE_PAUSE).await;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let empty = response.records.is_empty();
            out.extend(
                response
                    .records
                    .into_iter()
                    .map(|r| (shard.clone(), String::from_utf8_lossy(&r.data).into_owned())),
            );
            match response.next_shard_iterator {
                Some(next) if !empty => iterator = next,
                _ => break,
            }
        }
    }
    Ok(out)
}

/// An acknowledged put.
#[derive(Debug, Clone)]
struct Acked {
    shard: String,
    data: String,
    sequence: u128,
}

/// Acknowledged records absent from `read` (shard, data pairs).
fn missing(acked: &[Acked], read: &[(String, String)]) -> Vec<Acked> {
    acked
        .iter()
        .filter(|a| {
            !read
                .iter()
                .any(|(shard, data)| *shard == a.shard && *data == a.data)
        })
        .cloned()
        .collect()
}

/// The highest acknowledged sequence number of each shard.
fn newest_per_shard(acked: &[Acked]) -> BTreeMap<String, u128> {
    let mut newest = BTreeMap::new();
    for a in acked {
        let entry = newest.entry(a.shard.clone()).or_insert(a.sequence);
        *entry = (*entry).max(a.sequence);
    }
    newest
}

/// Runs the three quorum scenarios in a row on a fresh cluster of three AZs.
pub async fn quorum_scenarios<C: ClusterControl>(
    cluster: &mut C,
) -> anyhow::Result<QuorumMeasurements> {
    let stream = "quorum";
    let client = cluster.client();
    client.create_stream(stream, 3, None).await?;
    client
        .wait_for_active(stream, Duration::from_secs(30))
        .await?;
    let description = client.describe_stream(stream).await?;
    let shards: BTreeMap<String, String> = description
        .shards
        .iter()
        .map(|s| (s.shard_id.clone(), s.starting_hash_key.clone()))
        .collect();
    let mut acked = Vec::new();
    until_every_shard_writes(
        &client,
        stream,
        &shards,
        HEAL_RESUME_LIMIT,
        &mut acked,
        "before",
    )
    .await?;

    // 1. One AZ cut off: the AZ of shard 0's leader, so at least one election must happen.
    let leader = description
        .shards
        .first()
        .and_then(|s| s.leader)
        .context("shard 0 has no leader")?;
    let az = cluster.az_of(leader);
    let cut = cluster.nodes_in(&az);
    cluster.partition(&cut).await?;
    let survivors: Vec<String> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| !cut.contains(id))
        .map(|id| cluster.endpoint_of(id))
        .collect();
    let survivors = Client::new(&survivors)?;
    let az_down_resume = until_every_shard_writes(
        &survivors,
        stream,
        &shards,
        AZ_DOWN_RESUME_LIMIT,
        &mut acked,
        &format!("{az} down"),
    )
    .await?;
    for n in 0..KEEP_WRITING_PUTS {
        let (shard, hash_key) = shards.iter().nth(n % shards.len()).expect("shards");
        let data = format!("{az} down, put {n}");
        match put(&survivors, stream, hash_key, data.clone()).await {
            Ok(sequence) => acked.push(Acked {
                shard: shard.clone(),
                data,
                sequence,
            }),
            Err(error) => bail!("with {az} down, put {n} to {shard} failed: {error:?}"),
        }
    }
    cluster.heal().await?;

    // Every replica applies every acknowledged record before the majority goes: a committed
    // record is on a majority, not yet necessarily on every replica, and alone each node can
    // serve only what it holds.
    until_every_shard_writes(
        &client,
        stream,
        &shards,
        HEAL_RESUME_LIMIT,
        &mut acked,
        "healed",
    )
    .await?;
    let newest = newest_per_shard(&acked);
    for id in cluster.node_ids() {
        let node = cluster.client_of(id);
        let newest = newest.clone();
        wait_until(
            Duration::from_secs(30),
            &format!("node {id} to apply every acknowledged record"),
            || {
                let (node, newest) = (node.clone(), newest.clone());
                async move {
                    let description = node
                        .describe_stream(stream)
                        .await
                        .map_err(|e| e.to_string())?;
                    for shard in &description.shards {
                        let applied = shard
                            .latest_sequence_number
                            .as_deref()
                            .and_then(sequence_value);
                        let wanted = newest.get(&shard.shard_id).copied();
                        if applied < wanted {
                            return Err(format!(
                                "{} applied up to {applied:?}, acknowledged {wanted:?}",
                                shard.shard_id
                            ));
                        }
                    }
                    Ok(())
                }
            },
        )
        .await?;
    }

    // 2. A majority down: every AZ alone. Puts fail fast, reads of committed data succeed.
    for az in cluster.azs() {
        let side = cluster.nodes_in(&az);
        cluster.partition(&side).await?;
    }
    let mut majority_refusals = Vec::new();
    for id in cluster.node_ids() {
        let node = cluster.client_of(id);
        for (shard, hash_key) in &shards {
            let started = Instant::now();
            let outcome = put(&node, stream, hash_key, format!("refused via {id}")).await;
            let took = started.elapsed();
            match outcome {
                Err((code, _)) if code == "WRITE_QUORUM_UNAVAILABLE" => {}
                other => bail!(
                    "with the majority split, a put to {shard} via node {id} answered {other:?}, \
                     not WRITE_QUORUM_UNAVAILABLE"
                ),
            }
            ensure!(
                took <= MAJORITY_DOWN_REFUSAL_LIMIT,
                "with the majority split, refusing a put to {shard} via node {id} took {took:?}"
            );
            majority_refusals.push(took);
        }
        let read = read_all(&node, stream, &shards).await.with_context(|| {
            format!("reading committed records via node {id} with the majority split")
        })?;
        let missing = missing(&acked, &read);
        ensure!(
            missing.is_empty(),
            "with the majority split, node {id} does not serve {} acknowledged records, e.g. {:?}",
            missing.len(),
            missing.first()
        );
    }

    // 3. Heal: writes resume, nothing acknowledged is missing.
    cluster.heal().await?;
    let heal_resume = until_every_shard_writes(
        &client,
        stream,
        &shards,
        HEAL_RESUME_LIMIT,
        &mut acked,
        "healed again",
    )
    .await?;
    let read = read_all(&client, stream, &shards).await?;
    let missing = missing(&acked, &read);
    ensure!(
        missing.is_empty(),
        "after heal, {} acknowledged records are missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    Ok(QuorumMeasurements {
        az_down_resume,
        majority_refusals,
        heal_resume,
        acknowledged: acked.len(),
    })
}

//! The data plane as a Kinesis producer and consumer see it: PutRecords limits and per-record
//! failures, PutRecord ordering, every iterator type on any replica, GetRecords limits and lag,
//! per-shard throughput limits enforced at the leader, and replicated retention trims.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use tributary_client::{Client, v1};
use tributary_testkit::wait_until;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn entry(key: &str, data: Vec<u8>) -> v1::PutRecordsRequestEntry {
    v1::PutRecordsRequestEntry {
        data: Bytes::from(data),
        partition_key: key.to_string(),
        explicit_hash_key: None,
    }
}

fn entries(prefix: &str, count: usize) -> Vec<v1::PutRecordsRequestEntry> {
    (0..count)
        .map(|i| {
            entry(
                &format!("{prefix}-{i}"),
                format!("{prefix}-{i}").into_bytes(),
            )
        })
        .collect()
}

async fn iterator(client: &Client, stream: &str, kind: &str, seq: Option<&str>) -> String {
    client
        .get_shard_iterator(stream, "shardId-000000000000", kind, seq)
        .await
        .unwrap_or_else(|e| panic!("{kind} iterator: {e}"))
}

/// Reads from `iterator` until caught up, returning the records' data.
async fn drain(client: &Client, mut iterator: String) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let response = get_records_retrying(client, &iterator).await.unwrap();
        let done = response.records.is_empty() && response.millis_behind_latest == 0;
        out.extend(
            response
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).to_string()),
        );
        match response.next_shard_iterator {
            Some(next) if !done => iterator = next,
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_iterators_and_reads_follow_kinesis_rules() {
    // Many quick reads of one shard: limits off here (the next test is about them).
    let cluster = start_cluster_with(3, 3, &["--shard-limits", "off"]).await;
    let client = cluster.client();
    client.create_stream("one", 1, None).await.unwrap();

    // PutRecords: 1..500 records, 5 MiB per call, 1 MiB per record (key included).
    let code = |result: Result<v1::PutRecordsResponse, tributary_client::ClientError>| {
        result.map(|_| ()).unwrap_err().code()
    };
    assert_eq!(
        code(client.put_records("one", vec![]).await),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(client.put_records("one", entries("many", 501)).await),
        "INVALID_ARGUMENT"
    );
    let almost_mib = vec![b'x'; 1024 * 1024 - 8];
    let big: Vec<_> = (0..6)
        .map(|i| entry(&format!("k{i}"), almost_mib.clone()))
        .collect();
    assert_eq!(
        code(client.put_records("one", big).await),
        "INVALID_ARGUMENT"
    );
    let over = entry("key", vec![b'x'; 1024 * 1024 - 2]);
    assert_eq!(
        code(client.put_records("one", vec![over]).await),
        "INVALID_ARGUMENT"
    );

    // Results come back in request order, one per record.
    let first = client.put_records("one", entries("a", 5)).await.unwrap();
    assert_eq!(first.failed_record_count, 0);
    let numbers: Vec<u128> = first
        .records
        .iter()
        .map(|r| r.sequence_number.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");

    // PutRecord with SequenceNumberForOrdering numbers strictly above the previous record.
    let mut previous = numbers[4].to_string();
    for i in 0..3 {
        let put = client
            .put_record(v1::PutRecordRequest {
                stream_name: "one".into(),
                data: Bytes::from(format!("ordered-{i}")),
                partition_key: "ordered".into(),
                explicit_hash_key: None,
                sequence_number_for_ordering: Some(previous.clone()),
            })
            .await
            .unwrap();
        assert!(put.sequence_number.parse::<u128>().unwrap() > previous.parse::<u128>().unwrap());
        previous = put.sequence_number;
    }
    let bad_ordering = client
        .put_record(v1::PutRecordRequest {
            stream_name: "one".into(),
            data: Bytes::from_static(b"x"),
            partition_key: "ordered".into(),
            explicit_hash_key: None,
            sequence_number_for_ordering: Some("not-a-number".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_ordering.code(), "INVALID_ARGUMENT");

    // AT_TIMESTAMP: records that arrived at or after the time. Wait (on the clock, not a
    // sleep) until a later millisecond so the next batch arrives strictly later.
    let before_b = now_ms() + 1;
    wait_until(Duration::from_secs(1), "the clock to tick", || async move {
        if now_ms() >= before_b {
            Ok(())
        } else {
            Err("same millisecond".to_string())
        }
    })
    .await
    .unwrap();
    client.put_records("one", entries("b", 3)).await.unwrap();
    let at_time = client
        .shard_iterator(v1::GetShardIteratorRequest {
            stream_name: "one".into(),
            shard_id: "shardId-000000000000".into(),
            shard_iterator_type: "AT_TIMESTAMP".into(),
            timestamp_ms: Some(before_b),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(drain(&client, at_time).await, ["b-0", "b-1", "b-2"]);
    let future = client
        .shard_iterator(v1::GetShardIteratorRequest {
            stream_name: "one".into(),
            shard_id: "shardId-000000000000".into(),
            shard_iterator_type: "AT_TIMESTAMP".into(),
            timestamp_ms: Some(now_ms() + 60_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(future.code(), "INVALID_ARGUMENT");
    let rfc3339 = chrono_free_rfc3339(before_b);
    let output = cli(
        &cluster,
        &["get", "one", "--from", &format!("at-timestamp:{rfc3339}")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let data: Vec<String> = stdout(&output)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        data,
        ["b-0", "b-1", "b-2"],
        "get --from at-timestamp:{rfc3339}"
    );

    // Every iterator type, served by any replica.
    let all = [
        "a-0",
        "a-1",
        "a-2",
        "a-3",
        "a-4",
        "ordered-0",
        "ordered-1",
        "ordered-2",
        "b-0",
        "b-1",
        "b-2",
    ];
    for node in 1..=3 {
        let replica = cluster.client_of(node);
        let trim = iterator(&replica, "one", "TRIM_HORIZON", None).await;
        assert_eq!(
            drain(&replica, trim).await,
            all,
            "TRIM_HORIZON via node {node}"
        );
    }
    let at = iterator(
        &client,
        "one",
        "AT_SEQUENCE_NUMBER",
        Some(&numbers[3].to_string()),
    )
    .await;
    assert_eq!(drain(&cluster.client_of(2), at).await[..2], ["a-3", "a-4"]);
    let after = iterator(
        &client,
        "one",
        "AFTER_SEQUENCE_NUMBER",
        Some(&numbers[3].to_string()),
    )
    .await;
    assert_eq!(drain(&cluster.client_of(3), after).await[0], "a-4");
    let latest = iterator(&client, "one", "LATEST", None).await;
    client.put_records("one", entries("c", 2)).await.unwrap();
    assert_eq!(drain(&client, latest).await, ["c-0", "c-1"]);
    // A sequence number of another shard is refused.
    client.create_stream("two", 2, None).await.unwrap();
    let other_shard = client
        .put_records("two", vec![entry("k", b"v".to_vec())])
        .await
        .unwrap();
    let foreign = other_shard.records[0].sequence_number.clone().unwrap();
    let shard_of_foreign = other_shard.records[0].shard_id.clone().unwrap();
    let wrong_shard = if shard_of_foreign.ends_with('0') {
        "shardId-000000000001"
    } else {
        "shardId-000000000000"
    };
    let error = client
        .get_shard_iterator("two", wrong_shard, "AT_SEQUENCE_NUMBER", Some(&foreign))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "INVALID_ARGUMENT");
    assert!(
        error.message().contains("It encodes"),
        "{}",
        error.message()
    );

    // GetRecords: limit 1..10000; MillisBehindLatest > 0 until caught up.
    let trim = iterator(&client, "one", "TRIM_HORIZON", None).await;
    for limit in [0, 10_001] {
        let error = client.get_records(&trim, Some(limit)).await.unwrap_err();
        assert_eq!(error.code(), "INVALID_ARGUMENT", "limit {limit}");
    }
    let page = client.get_records(&trim, Some(3)).await.unwrap();
    assert_eq!(page.records.len(), 3);
    assert!(page.millis_behind_latest > 0, "3 of 13 records read");
    let rest = client
        .get_records(page.next_shard_iterator.as_deref().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(rest.records.len(), 10);
    assert_eq!(rest.millis_behind_latest, 0);
    assert!(rest.next_shard_iterator.is_some() && rest.child_shards.is_empty());

    // At most 10 MiB per GetRecords call: 12 records of almost 1 MiB take two calls.
    client.create_stream("big", 1, None).await.unwrap();
    for call in 0..3 {
        let batch: Vec<_> = (0..4)
            .map(|i| entry(&format!("big-{call}-{i}"), vec![b'b'; 1024 * 1024 - 64]))
            .collect();
        let response = client.put_records("big", batch).await.unwrap();
        assert_eq!(response.failed_record_count, 0);
    }
    let trim = iterator(&client, "big", "TRIM_HORIZON", None).await;
    let first = client.get_records(&trim, None).await.unwrap();
    let bytes: usize = first
        .records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum();
    assert!(bytes <= 10 * 1024 * 1024, "{bytes} bytes in one call");
    assert_eq!(first.records.len(), 10);
    assert!(first.millis_behind_latest > 0);
    let second = client
        .get_records(first.next_shard_iterator.as_deref().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(second.records.len(), 2);
}

/// Epoch ms as RFC 3339 (UTC), computed by hand to keep the test's dependencies small.
fn chrono_free_rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_limits_throttle_at_the_leader_and_report_each_record() {
    let cluster = start_cluster(3, 3).await;
    let client = cluster.client();
    client.create_stream("hot", 1, None).await.unwrap();
    wait_for_leaders(&cluster, "hot").await;

    // 1,500 records in quick succession through three different nodes: the leader admits about
    // 1,000 a second in all; the rest fail per record, at the end of each call's batch.
    let started = std::time::Instant::now();
    let mut admitted = 0usize;
    let mut throttled = 0usize;
    for node in 1..=3 {
        let response = cluster
            .client_of(node)
            .put_records("hot", entries(&format!("n{node}"), 500))
            .await
            .unwrap();
        let failed: Vec<usize> = response
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.error_code.is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(response.failed_record_count as usize, failed.len());
        if let Some(first) = failed.first() {
            assert_eq!(
                failed.len(),
                500 - first,
                "throttled records are a suffix: {failed:?}"
            );
        }
        for record in response.records.iter().filter(|r| r.error_code.is_some()) {
            assert_eq!(
                record.error_code.as_deref(),
                Some("PROVISIONED_THROUGHPUT_EXCEEDED")
            );
            assert!(
                record
                    .error_message
                    .as_deref()
                    .unwrap()
                    .contains("Rate exceeded for shard")
            );
            assert!(record.sequence_number.is_none());
        }
        admitted += 500 - failed.len();
        throttled += failed.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 1000.0 + 1000.0 * elapsed;
    assert!(
        throttled > 0,
        "1,500 records in {elapsed:.2}s should hit the 1,000 records/s limit"
    );
    assert!(
        (admitted as f64) <= allowed + 1.0,
        "{admitted} admitted in {elapsed:.2}s; the limit allows {allowed:.0}"
    );

    // The byte limit: 1 MiB/s. Two 600 KiB records in one call: the second is throttled.
    wait_until(Duration::from_secs(5), "the write budget to refill", || {
        let client = client.clone();
        async move {
            let response = client
                .put_records(
                    "hot",
                    vec![
                        entry("probe", vec![b'p'; 600 * 1024]),
                        entry("probe", vec![b'q'; 600 * 1024]),
                    ],
                )
                .await
                .map_err(|e| e.to_string())?;
            match (
                &response.records[0].error_code,
                &response.records[1].error_code,
            ) {
                (None, Some(code)) if code == "PROVISIONED_THROUGHPUT_EXCEEDED" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .unwrap();

    // `tributary put` reports throttled records line by line.
    let input: String = (0..1200).map(|i| format!("cli-{i}\tv{i}\n")).collect();
    let mut put = cluster
        .cli()
        .args(["put", "hot", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    put.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = put.wait_with_output().unwrap();
    assert!(!output.status.success(), "some records were throttled");
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1200, "one result line per input line");
    assert!(
        lines
            .iter()
            .any(|l| l["error_code"] == "PROVISIONED_THROUGHPUT_EXCEEDED")
    );
    assert!(lines.iter().any(|l| l["sequence_number"].is_string()));

    // Reads: 5 GetRecords calls a second per shard, for all readers together.
    let trim = iterator(&client, "hot", "TRIM_HORIZON", None).await;
    let mut codes = BTreeSet::new();
    for node in [1, 2, 3, 1, 2, 3, 1, 2] {
        match cluster.client_of(node).get_records(&trim, Some(1)).await {
            Ok(_) => codes.insert("OK".to_string()),
            Err(error) => codes.insert(error.code().to_string()),
        };
    }
    assert!(
        codes.contains("PROVISIONED_THROUGHPUT_EXCEEDED"),
        "8 quick reads: {codes:?}"
    );
    assert!(codes.contains("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_every_replica_and_moves_the_trim_horizon() {
    // One retention "hour" lasts 50 ms here: the 24-hour minimum expires in 1.2 s.
    let cluster = start_cluster_with(3, 3, &["--retention-hour-ms", "50"]).await;
    let client = cluster.client();
    client.create_stream("brief", 1, None).await.unwrap();
    let (acked, failed) = put_records(&client, "brief", "old", 30).await;
    assert!(failed.is_empty() && acked.len() == 30, "{failed:?}");

    // Every replica removes the expired records from storage (a replicated trim).
    wait_until(
        Duration::from_secs(15),
        "every replica to trim 30 records",
        || {
            let counts: Vec<u64> = cluster
                .nodes()
                .iter()
                .map(|node| {
                    counter_sum(
                        &metrics_of(&node.http_address),
                        "tributary_records_trimmed_total",
                    ) as u64
                })
                .collect();
            async move {
                if counts.iter().all(|c| *c == 30) {
                    Ok(())
                } else {
                    Err(format!("trimmed per node: {counts:?}"))
                }
            }
        },
    )
    .await
    .unwrap();
    assert!(read_all(&client, "brief").await.unwrap().is_empty());

    // TRIM_HORIZON starts at the oldest retained record.
    let (fresh, _) = put_records(&client, "brief", "new", 3).await;
    let read = read_all(&client, "brief").await.unwrap();
    assert_eq!(
        read.first().map(|r| r.data.clone()),
        Some("new-0".to_string())
    );
    assert_eq!(read.len(), fresh.len());

    // A shard closed by a reshard expires with its records: it leaves the listing and every
    // replica removes its group.
    let split = cli_json(
        &cluster,
        &[
            "stream",
            "split",
            "brief",
            "--shard",
            "0",
            "--new-starting-hash-key",
            "1000",
            "--json",
        ],
    );
    assert_eq!(split["open_shards"].as_array().unwrap().len(), 2);
    wait_until(
        Duration::from_secs(15),
        "the closed parent to expire everywhere",
        || {
            let client = client.clone();
            let removed = (1..=3)
                .filter(|id| {
                    cluster
                        .node_log(*id)
                        .contains("removing the data of an expired shard")
                })
                .count();
            async move {
                let ids: Vec<String> = client
                    .list_shards("brief", None)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|s| s.shard_id)
                    .collect();
                if ids == ["shardId-000000000001", "shardId-000000000002"] && removed == 3 {
                    Ok(())
                } else {
                    Err(format!(
                        "listed {ids:?}, removed on {removed} of 3 replicas"
                    ))
                }
            }
        },
    )
    .await
    .unwrap();
}

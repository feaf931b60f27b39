//! The control plane a Kinesis user drives: stream lifecycle and modes, retention rules, tags,
//! enhanced fan-out consumers, deletion with consumers, and paginated listings — through the CLI
//! and the SDK against a real 3-node cluster.

mod common;

use std::time::Duration;

use common::*;
use tributary_client::v1;
use tributary_testkit::wait_until;

/// Runs a CLI command that must fail with `code` (on stdout or stderr).
fn expect_code(cluster: &tributary_testkit::Cluster, args: &[&str], code: &str) {
    let output = cli(cluster, args);
    assert!(!output.status.success(), "{args:?} should fail");
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(all.contains(code), "{args:?} should report {code}: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_modes_retention_tags_and_consumers() {
    let cluster = start_cluster(3, 3).await;

    // CREATING until every shard has a leader; `stream create` waits for ACTIVE.
    let created = cli_json(
        &cluster,
        &["stream", "create", "orders", "--shards", "3", "--json"],
    );
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["shards"], 3);
    let summary = cli_json(&cluster, &["stream", "summary", "orders", "--json"]);
    assert_eq!(summary["mode"], "PROVISIONED");
    assert_eq!(summary["open_shard_count"], 3);
    assert_eq!(summary["consumer_count"], 0);
    assert_eq!(summary["retention_hours"], 24);

    // A stream asked for without waiting is CREATING, then ACTIVE, never anything else.
    let client = cluster.client();
    let request = v1::CreateStreamRequest {
        stream_name: "eventually".into(),
        shard_count: 2,
        ..Default::default()
    };
    client.create_stream_request(request).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the new stream to turn ACTIVE",
        || {
            let client = client.clone();
            async move {
                let status = client
                    .describe_stream_summary("eventually")
                    .await
                    .map_err(|e| e.to_string())?
                    .stream_status;
                match status.as_str() {
                    "ACTIVE" => Ok(()),
                    "CREATING" => Err(format!("still {status}")),
                    other => panic!("a new stream went {other}"),
                }
            }
        },
    )
    .await
    .unwrap();

    // DescribeStream pages through shards (at most 100 a call).
    let page = client
        .describe_stream_page(v1::DescribeStreamRequest {
            stream_name: "eventually".into(),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.shards.len(), 1);
    assert!(page.has_more_shards);
    let rest = client
        .describe_stream_page(v1::DescribeStreamRequest {
            stream_name: "eventually".into(),
            exclusive_start_shard_id: Some(page.shards[0].shard_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.shards.len(), 1);
    assert!(!rest.has_more_shards);
    let too_many = client
        .describe_stream_page(v1::DescribeStreamRequest {
            stream_name: "eventually".into(),
            limit: Some(101),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), "INVALID_ARGUMENT");

    // ON_DEMAND streams start with 4 shards; modes switch both ways, not to themselves.
    let on_demand = cli_json(
        &cluster,
        &["stream", "create", "auto", "--on-demand", "--json"],
    );
    assert_eq!(on_demand["mode"], "ON_DEMAND");
    assert_eq!(on_demand["shards"], 4);
    expect_code(
        &cluster,
        &["stream", "mode", "auto", "on-demand"],
        "INVALID_ARGUMENT",
    );
    // ON_DEMAND streams scale themselves: users cannot reshard them.
    expect_code(
        &cluster,
        &["stream", "scale", "auto", "--target", "5"],
        "INVALID_ARGUMENT",
    );
    cli_json(
        &cluster,
        &["stream", "mode", "auto", "provisioned", "--json"],
    );
    let summary = cli_json(&cluster, &["stream", "summary", "auto", "--json"]);
    assert_eq!(summary["mode"], "PROVISIONED");

    // Retention: 24..8760 hours, up or down from the current period.
    cli_json(
        &cluster,
        &["stream", "retention", "orders", "--hours", "48", "--json"],
    );
    cli_json(
        &cluster,
        &["stream", "retention", "orders", "--hours", "36", "--json"],
    );
    let summary = cli_json(&cluster, &["stream", "summary", "orders", "--json"]);
    assert_eq!(summary["retention_hours"], 36);
    for hours in ["23", "8761", "36"] {
        expect_code(
            &cluster,
            &["stream", "retention", "orders", "--hours", hours],
            "INVALID_ARGUMENT",
        );
    }

    // Tags: overwrite by key, removal ignores missing keys, 10 per call.
    cli_json(
        &cluster,
        &["stream", "tag", "orders", "team=data", "env=dev", "--json"],
    );
    cli_json(
        &cluster,
        &["stream", "tag", "orders", "team=ingest", "--json"],
    );
    cli_json(
        &cluster,
        &["stream", "untag", "orders", "env", "absent", "--json"],
    );
    let tags = cli_json(&cluster, &["stream", "tags", "orders", "--json"]);
    assert_eq!(tags["tags"], serde_json::json!({"team": "ingest"}));
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let mut args = vec!["stream", "tag", "orders"];
    args.extend(eleven.iter().map(String::as_str));
    expect_code(&cluster, &args, "INVALID_ARGUMENT");
    expect_code(
        &cluster,
        &["stream", "tag", "orders", "aws:reserved=x"],
        "INVALID_ARGUMENT",
    );

    // Consumers: at most 20, unique names, described and listed.
    let registered = cli_json(
        &cluster,
        &["consumer", "register", "orders", "reader-0", "--json"],
    );
    assert_eq!(registered["status"], "ACTIVE");
    expect_code(
        &cluster,
        &["consumer", "register", "orders", "reader-0"],
        "RESOURCE_IN_USE",
    );
    for i in 1..20 {
        let name = format!("reader-{i}");
        cli_json(
            &cluster,
            &["consumer", "register", "orders", &name, "--json"],
        );
    }
    expect_code(
        &cluster,
        &["consumer", "register", "orders", "one-too-many"],
        "LIMIT_EXCEEDED",
    );
    let listed = cli_json(&cluster, &["consumer", "list", "orders", "--json"]);
    assert_eq!(listed["consumers"].as_array().unwrap().len(), 20);
    cli_json(
        &cluster,
        &["consumer", "deregister", "orders", "reader-19", "--json"],
    );
    expect_code(
        &cluster,
        &["consumer", "describe", "orders", "reader-19"],
        "RESOURCE_NOT_FOUND",
    );
    let described = cli_json(
        &cluster,
        &["consumer", "describe", "orders", "reader-3", "--json"],
    );
    assert_eq!(described["name"], "reader-3");
    let summary = cli_json(&cluster, &["stream", "summary", "orders", "--json"]);
    assert_eq!(summary["consumer_count"], 19);

    // Deleting a stream with consumers needs --enforce-consumer-deletion; then every replica
    // drops its shards' data and the stream is gone.
    expect_code(&cluster, &["stream", "delete", "orders"], "RESOURCE_IN_USE");
    cli_json(
        &cluster,
        &[
            "stream",
            "delete",
            "orders",
            "--enforce-consumer-deletion",
            "--json",
        ],
    );
    expect_code(
        &cluster,
        &["stream", "summary", "orders"],
        "RESOURCE_NOT_FOUND",
    );
    wait_until(
        Duration::from_secs(10),
        "every replica to remove the deleted stream's shards",
        || {
            let removed: usize = (1..=3)
                .map(|id| {
                    cluster
                        .node_log(id)
                        .lines()
                        .filter(|l| {
                            l.contains("removing the data of a deleted stream's shard")
                                && l.contains("stream=orders")
                        })
                        .count()
                })
                .sum();
            async move {
                if removed == 9 {
                    Ok(())
                } else {
                    Err(format!("{removed} of 9 shard replicas removed"))
                }
            }
        },
    )
    .await
    .unwrap();

    // ListStreams pages in name order with a token.
    let first = client
        .list_streams_page(v1::ListStreamsRequest {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.stream_names, ["auto"]);
    assert!(first.has_more_streams);
    let second = client
        .list_streams_page(v1::ListStreamsRequest {
            next_token: first.next_token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second.stream_names, ["eventually"]);
    assert!(!second.has_more_streams && second.next_token.is_none());
    expect_code(
        &cluster,
        &["stream", "create", "bad", "--shards", "2", "--on-demand"],
        "cannot be used with",
    );
}

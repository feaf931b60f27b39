//! Per-client limits on real node processes: a client that opens connection after connection
//! (on the gRPC port and the Kinesis endpoint together) or subscription after subscription is
//! stopped at its limit, while the cluster and other clients go on working; what it releases
//! it can take again.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tributary_client::v1;
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

const WAIT: Duration = Duration::from_secs(30);
/// High enough for the cluster's own connections between its nodes (all on 127.0.0.1).
const CONNECTIONS_PER_CLIENT: usize = 16;

/// A TCP connection from `source` (another loopback address: another client to the node).
async fn connect_from(source: [u8; 4], target: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket
        .connect(target.parse().unwrap())
        .await
        .expect("the node accepts TCP")
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// A connection from `source` that the node has taken. The kernel completes a TCP handshake
/// before the node accepts the connection, and the two ports accept independently, so a
/// connection only counts once the node answers it: both ports speak HTTP/2, and a node sends
/// its SETTINGS frame once it serves the connection.
async fn admitted_from(source: [u8; 4], target: &str) -> TcpStream {
    let mut connection = connect_from(source, target).await;
    connection.write_all(H2_PREFACE).await.unwrap();
    let mut frame_header = [0u8; 9];
    tokio::time::timeout(WAIT, connection.read_exact(&mut frame_header))
        .await
        .unwrap_or_else(|_| panic!("{target} did not answer the HTTP/2 preface"))
        .unwrap_or_else(|e| panic!("{target} closed a connection within the limits: {e}"));
    connection
}

/// Whether the node closes the connection (a read ends, with no data) within `within`. An
/// admitted connection stays open; one over the limits is closed as soon as it is accepted.
async fn closed_by_node(connection: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, connection.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // What the node sent an admitted connection (SETTINGS, their acknowledgement).
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn subscription(shard: u32) -> v1::SubscribeToShardRequest {
    v1::SubscribeToShardRequest {
        stream_name: "fanned".into(),
        consumer_name: "reader".into(),
        shard_id: format!("shardId-{shard:012}"),
        starting_position: Some(v1::StartingPosition {
            r#type: "LATEST".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_is_held_to_its_connection_and_subscription_limits() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions {
            kinesis: true,
            node_args: vec![
                format!("--max-connections-per-client={CONNECTIONS_PER_CLIENT}"),
                "--max-subscriptions-per-client=2".to_string(),
                "--kinesis-auth=none".to_string(),
            ],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster starts");
    let node = cluster.node(1);

    // Connections: a client at 127.0.0.2 fills its quota over both ports ...
    let mut held = Vec::new();
    for i in 0..CONNECTIONS_PER_CLIENT {
        let port = if i % 2 == 0 {
            &node.address
        } else {
            &node.kinesis_address
        };
        held.push(admitted_from([127, 0, 0, 2], port).await);
    }
    // ... and the next one, on either port, is closed as soon as the node takes it.
    for port in [&node.address, &node.kinesis_address] {
        let mut over = connect_from([127, 0, 0, 2], port).await;
        assert!(
            closed_by_node(&mut over, WAIT).await,
            "a connection over the limit stays open on {port}"
        );
    }
    for connection in &mut held[..2] {
        assert!(
            !closed_by_node(connection, Duration::from_secs(1)).await,
            "an admitted connection was closed"
        );
    }
    let metrics = metrics_of(&node.http_address);
    assert!(
        counter_sum(
            &metrics,
            "tributary_client_limit_refusals_total{resource=\"connections\",limit=\"per_client\"}"
        ) >= 2.0,
        "{metrics}"
    );
    // Other clients (this test's SDK, the other nodes) are untouched.
    let client = cluster.client_of(1);
    client.create_stream("fanned", 3, None).await.unwrap();
    client.wait_for_active("fanned", WAIT).await.unwrap();
    // A connection closed frees its slot.
    held.pop();
    let again = wait_until(WAIT, "a freed connection slot is taken again", || async {
        let mut again = connect_from([127, 0, 0, 2], &node.address).await;
        if closed_by_node(&mut again, Duration::from_secs(1)).await {
            Err("still refused".to_string())
        } else {
            Ok(again)
        }
    })
    .await
    .unwrap();
    held.push(again);

    // Subscriptions: two at a time for this client on the node it is connected to.
    client.register_consumer("fanned", "reader").await.unwrap();
    let first = client.subscribe_to_shard(subscription(0)).await.unwrap();
    let _second = client.subscribe_to_shard(subscription(1)).await.unwrap();
    let refused = client
        .subscribe_to_shard(subscription(2))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "LIMIT_EXCEEDED", "{refused:?}");
    assert!(
        refused.message().contains("--max-subscriptions-per-client"),
        "{}",
        refused.message()
    );
    // Ending one lets the client subscribe again.
    drop(first);
    let mut third = wait_until(WAIT, "a subscription slot is freed", || async {
        client
            .subscribe_to_shard(subscription(2))
            .await
            .map_err(|e| e.message())
    })
    .await
    .unwrap();
    assert!(
        third.message().await.unwrap().is_some(),
        "the new subscription delivers events"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_size_limits_is_refused_whole_and_the_node_goes_on() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions {
            kinesis: true,
            node_args: vec!["--kinesis-auth=none".to_string()],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster starts");
    let client = cluster.client_of(1);
    client.create_stream("sized", 1, None).await.unwrap();
    client.wait_for_active("sized", WAIT).await.unwrap();

    // gRPC: a message over 16 MiB, from a client willing to send it, is refused by the node
    // before it is decoded.
    let mut raw = v1::tributary_client::TributaryClient::connect(format!(
        "http://{}",
        cluster.node(1).address
    ))
    .await
    .unwrap()
    .max_encoding_message_size(64 * 1024 * 1024);
    let oversized = v1::PutRecordsRequest {
        stream_name: "sized".into(),
        records: (0..17)
            .map(|i| v1::PutRecordsRequestEntry {
                data: vec![b'x'; 1024 * 1024].into(),
                partition_key: format!("k{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let status = raw.put_records(oversized).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // The Kinesis endpoint: a body over 7 MiB gets 413, as Kinesis answers.
    let sdk = kinesis_sdk(&cluster.node(1).kinesis_address, "AKIDTEST", "secret");
    let error = sdk
        .put_record()
        .stream_name("sized")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new(vec![
            b'y';
            6 * 1024 * 1024
        ]))
        .send()
        .await
        .expect_err("an 8 MiB body is refused");
    let raw_response = error
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(raw_response, Some(413), "{error:?}");

    // Nothing of either was stored, and the node serves the next call.
    let (acked, failed) = put_records(&client, "sized", "after", 3).await;
    assert!(failed.is_empty(), "{failed:?}");
    let read = read_all(&client, "sized").await.unwrap();
    assert_eq!(
        read, acked,
        "only the records after the refusals are stored"
    );
}

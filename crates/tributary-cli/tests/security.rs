//! TLS: clients verify nodes, nodes verify each other, and a process without a certificate
//! from the cluster's CA can neither use the node-to-node API nor join.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    BINARY, cli, cli_json, files_holding, read_all, stderr, stdout, wait_encryption_everywhere,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tributary_client::{AccessKey, Client, ClientOptions, TlsIdentity, v1};
use tributary_proto::internal::RaftMessage;
use tributary_proto::internal::internal_client::InternalClient;
use tributary_testkit::{Cluster, ClusterOptions, wait_until};

async fn start_tls_cluster() -> Cluster {
    Cluster::start(
        BINARY,
        ClusterOptions {
            tls: true,
            kinesis: true,
            node_args: vec!["--kinesis-auth=none".to_string()],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("TLS cluster starts")
}

/// TLS and `--auth required`: the cluster's admin is bootstrapped from `--admin-key-file`.
async fn start_secure_cluster() -> Cluster {
    Cluster::start(
        BINARY,
        ClusterOptions {
            tls: true,
            auth: true,
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a TLS and auth cluster starts")
}

/// A Raft call to the node-to-node API at `address` over TLS, presenting `identity_opt`.
async fn raft_call_over_tls(
    address: &str,
    ca_pem: &[u8],
    identity_opt: Option<Identity>,
) -> Result<tonic::Response<tributary_proto::internal::RaftReply>, tonic::Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(identity) = identity_opt {
        tls = tls.identity(identity);
    }
    let endpoint = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let mut internal = InternalClient::new(endpoint.connect().await.expect("TLS connects"));
    internal.raft(RaftMessage::default()).await
}

fn run_certs(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(BINARY)
        .arg("certs")
        .args(args)
        .arg(dir)
        .output()
        .expect("tributary certs runs")
}

#[test]
fn certs_create_makes_a_ca_and_node_certificates_with_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let output = run_certs(
        &["create", "--nodes", "2", "--host", "node1.example", "--out"],
        &out,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    for file in [
        "ca.pem",
        "ca.key",
        "node-1.pem",
        "node-1.key",
        "node-2.pem",
        "node-2.key",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    for key in ["ca.key", "node-1.key", "node-2.key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(out.join(key)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{key} must be private");
    }
    // Never a second CA over the first: its nodes would stop trusting each other.
    let again = run_certs(&["create", "--nodes", "2", "--out"], &out);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a CA"),
        "{}",
        stderr(&again)
    );

    // One more node from the same CA; an existing one is kept unless forced.
    let more = run_certs(&["node", "--id", "3", "--dir"], &out);
    assert!(more.status.success(), "{}", stderr(&more));
    assert!(out.join("node-3.pem").exists());
    let existing = run_certs(&["node", "--id", "1", "--dir"], &out);
    assert!(!existing.status.success());
    assert!(
        stderr(&existing).contains("--force"),
        "{}",
        stderr(&existing)
    );

    // A node refuses a certificate its CA did not sign, at start and with the reason.
    let other = dir.path().join("other");
    assert!(
        run_certs(&["create", "--nodes", "1", "--out"], &other)
            .status
            .success()
    );
    let data = dir.path().join("data");
    let refused = common::node_command(1, &data)
        .arg("--tls-cert")
        .arg(other.join("node-1.pem"))
        .arg("--tls-key")
        .arg(other.join("node-1.key"))
        .arg("--tls-ca")
        .arg(out.join("ca.pem"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("does not verify against the CA"),
        "{}",
        stderr(&refused)
    );
    // Half a TLS set-up is refused too.
    let half = common::node_command(1, &data)
        .arg("--tls-cert")
        .arg(out.join("node-1.pem"))
        .output()
        .unwrap();
    assert!(!half.status.success());
    assert!(
        stderr(&half).contains("all three of --tls-cert, --tls-key and --tls-ca"),
        "{}",
        stderr(&half)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_replicates_and_serves_only_clients_that_speak_tls() {
    let cluster = start_tls_cluster().await;
    let certs = cluster
        .certs_dir()
        .expect("a TLS cluster has certificates")
        .to_path_buf();
    let ca_pem = std::fs::read(certs.join("ca.pem")).unwrap();

    // Writes replicate (Raft between nodes runs over mutual TLS) and read back.
    let client = cluster.client();
    client
        .create_stream("secure", 2, None)
        .await
        .expect("stream created over TLS");
    let (acked, failed) = common::put_records(&client, "secure", "r", 50).await;
    assert!(failed.is_empty(), "{failed:?}");
    let mut read = read_all(&client, "secure").await.unwrap();
    read.sort();
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(read, expected);

    // The CLI takes the CA from TRIBUTARY_TLS_CA.
    let streams = cli_json(&cluster, &["stream", "list", "--json"]);
    assert!(streams.to_string().contains("secure"), "{streams}");
    // Without it, the CLI cannot talk to the cluster.
    let plain = cluster
        .cli()
        .env_remove("TRIBUTARY_TLS_CA")
        .args(["stream", "list"])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "{}", stdout(&plain));

    // A plain-text client gets nowhere.
    let node1 = cluster.node(1).address.clone();
    let plain = Client::new(&[node1.as_str()])
        .unwrap()
        .with_call_timeout(Duration::from_secs(5));
    // (How the refusal reads depends on who notices first: an HTTP/2 protocol error, which
    // comes with a --tls-ca hint, or a broken pipe.)
    let error = plain.list_streams().await.expect_err("plain text refused");
    assert_eq!(error.code(), "ENDPOINT_UNREACHABLE", "{error}");

    // Nor does a client that trusts another CA: it cannot verify the node.
    let other = tempfile::tempdir().unwrap();
    assert!(
        run_certs(
            &["create", "--nodes", "1", "--out"],
            &other.path().join("ca")
        )
        .status
        .success()
    );
    let stranger = Client::with_options(
        &[node1.as_str()],
        &ClientOptions::tls_ca_file(other.path().join("ca/ca.pem")).unwrap(),
    )
    .unwrap()
    .with_call_timeout(Duration::from_secs(5));
    let error = stranger
        .list_streams()
        .await
        .expect_err("an unverifiable node is refused");
    assert_eq!(error.code(), "ENDPOINT_UNREACHABLE", "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");

    // A TLS client without a node certificate may use the public API but not the node-to-node
    // one: no Raft messages from strangers.
    let status = raft_call_over_tls(&node1, &ca_pem, None)
        .await
        .expect_err("the node-to-node API refuses a caller without a node certificate");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        tributary_client::error_from_status(&status).code.as_str(),
        "ACCESS_DENIED"
    );

    // The Kinesis endpoint serves HTTPS with the node's certificate, and nothing in clear.
    let kinesis = cluster.node(2).kinesis_address.clone();
    let (status, body) = kinesis_over_tls(&kinesis, &ca_pem, "ListStreams", "{}")
        .await
        .expect("HTTPS request");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"secure\""), "{body}");
    let mut tcp = tokio::net::TcpStream::connect(&kinesis).await.unwrap();
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP was served: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() {
    let cluster = start_tls_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let rogue_certs = dir.path().join("rogue");
    assert!(
        run_certs(&["create", "--nodes", "4", "--out"], &rogue_certs)
            .status
            .success()
    );
    let log_path = dir.path().join("rogue.log");
    let log = File::create(&log_path).unwrap();
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let mut rogue = Command::new(BINARY)
        .args(["node", "--id", "4", "--az", "az-1", "--listen", &listen])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--join", &cluster.node(1).address])
        .arg("--tls-cert")
        .arg(rogue_certs.join("node-4.pem"))
        .arg("--tls-key")
        .arg(rogue_certs.join("node-4.key"))
        .arg("--tls-ca")
        .arg(rogue_certs.join("ca.pem"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the rogue node starts");

    // The cluster refuses the handshake; the rogue cannot verify the cluster either.
    wait_until(
        Duration::from_secs(30),
        "node 1 to refuse the rogue's TLS handshake, and the rogue to say why it cannot join",
        || {
            let cluster_log = cluster.node_log(1);
            let rogue_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move {
                let refused = cluster_log.contains("refused a TLS connection");
                let told = rogue_log.contains("waiting to join the cluster")
                    && rogue_log.contains("certificate");
                if refused && told {
                    Ok(())
                } else {
                    Err(format!(
                        "node 1 refused: {refused}; rogue log: {}",
                        rogue_log.lines().last().unwrap_or("")
                    ))
                }
            }
        },
    )
    .await
    .unwrap();

    // The cluster still has its three nodes, and nothing else.
    let status = cluster.client().cluster_status().await.unwrap();
    let ids: Vec<u64> = status.nodes.iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![1, 2, 3], "{status:?}");
    let _ = rogue.kill();
    let _ = rogue.wait();

    // And the cluster keeps working.
    let client = cluster.client();
    client.create_stream("after-rogue", 1, None).await.unwrap();
    client
        .put_record(v1::PutRecordRequest {
            stream_name: "after-rogue".to_string(),
            partition_key: "k".to_string(),
            data: Bytes::from_static(b"still here"),
            ..Default::default()
        })
        .await
        .unwrap();
    let output = cli(&cluster, &["cluster", "status"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// One Kinesis call over HTTPS/1.1 (no SigV4: the cluster runs `--kinesis-auth none`); returns
/// the status and body.
async fn kinesis_over_tls(
    address: &str,
    ca_pem: &[u8],
    operation: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    kinesis_call(address, ca_pem, operation, body, None).await
}

/// One Kinesis call over HTTPS/1.1, SigV4-signed with `key_opt` (id, secret) when given.
async fn kinesis_call(
    address: &str,
    ca_pem: &[u8],
    operation: &str,
    body: &str,
    key_opt: Option<(&str, &str)>,
) -> anyhow::Result<(u16, String)> {
    use tributary_server::kinesis_wire::sigv4;
    let mut tls = tls_connect(address, ca_pem).await?;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", address.parse()?);
    headers.insert("content-type", "application/x-amz-json-1.1".parse()?);
    headers.insert(
        "x-amz-target",
        format!("Kinesis_20131202.{operation}").parse()?,
    );
    let now = std::time::SystemTime::now();
    let amz_date = chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    headers.insert("x-amz-date", amz_date.parse()?);
    if let Some((access_key_id, secret)) = key_opt {
        let authorization = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query_opt: None,
                headers: &headers,
                authority_opt: None,
                body: body.as_bytes(),
            },
            access_key_id,
            secret,
            "us-east-1",
            now,
        );
        headers.insert("authorization", authorization.parse()?);
    }
    let mut request = format!(
        "POST / HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {}\r\n", value.to_str()?));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A server may close without TLS close_notify; what arrived before counts.
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_required_a_policy_lets_through_what_it_allows_and_nothing_else() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions {
            tls: true,
            auth: true,
            kinesis: true,
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("an auth cluster starts (the admin from --admin-key-file can ask for its status)");
    let certs = cluster.certs_dir().unwrap().to_path_buf();
    let ca_pem = std::fs::read(certs.join("ca.pem")).unwrap();
    let node1 = cluster.node(1).address.clone();

    // The admin (bootstrapped from --admin-key-file) may do anything.
    let admin = cluster.client();
    admin.create_stream("orders", 1, None).await.unwrap();
    admin.create_stream("payments", 1, None).await.unwrap();
    let status = cli_json(&cluster, &["cluster", "status", "--json"]);
    assert_eq!(status["auth"], "required", "{status}");
    assert_eq!(status["tls"], true, "{status}");

    // No credentials, or a wrong secret: UNAUTHENTICATED, for every call.
    let anonymous = Client::with_options(
        &[node1.as_str()],
        &ClientOptions::tls_ca_file(certs.join("ca.pem")).unwrap(),
    )
    .unwrap();
    let error = anonymous.list_streams().await.unwrap_err();
    assert_eq!(error.code(), "UNAUTHENTICATED", "{error}");
    let mut forged = ClientOptions::tls_ca_file(certs.join("ca.pem")).unwrap();
    forged.access_key_opt = Some(AccessKey {
        access_key_id: tributary_testkit::ADMIN_ACCESS_KEY_ID.to_string(),
        secret_access_key: "not-the-secret".to_string(),
    });
    let error = Client::with_options(&[node1.as_str()], &forged)
        .unwrap()
        .delete_stream("orders", false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "UNAUTHENTICATED", "{error}");

    // A user whose only policy allows PutRecord(s) on orders, made with the CLI.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/orders"}]}"#;
    cli_json(
        &cluster,
        &[
            "policy",
            "put",
            "put-orders",
            "--document",
            policy,
            "--json",
        ],
    );
    let created = cli_json(
        &cluster,
        &[
            "user",
            "create",
            "writer",
            "--policy",
            "put-orders",
            "--json",
        ],
    );
    let key = AccessKey {
        access_key_id: created["access_key_id"].as_str().unwrap().to_string(),
        secret_access_key: created["secret_access_key"].as_str().unwrap().to_string(),
    };
    let mut options = ClientOptions::tls_ca_file(certs.join("ca.pem")).unwrap();
    options.access_key_opt = Some(key.clone());
    let writer = Client::from_list_with(&cluster.endpoints(), &options).unwrap();
    let put = |stream: &str| v1::PutRecordRequest {
        stream_name: stream.to_string(),
        partition_key: "k".to_string(),
        data: Bytes::from_static(b"payload"),
        ..Default::default()
    };
    writer
        .put_record(put("orders"))
        .await
        .expect("PutRecord on orders is allowed");
    let denied = |result: Result<(), tributary_client::ClientError>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.code(), "ACCESS_DENIED", "{what}: {error}");
        assert!(error.to_string().contains("user/writer"), "{error}");
    };
    denied(
        writer.put_record(put("payments")).await.map(drop),
        "PutRecord on another stream",
    );
    denied(
        writer
            .get_shard_iterator("orders", "shardId-000000000000", "TRIM_HORIZON", None)
            .await
            .map(drop),
        "reading orders",
    );
    denied(writer.list_streams().await.map(drop), "ListStreams");
    denied(
        writer.delete_stream("orders", false).await.map(drop),
        "DeleteStream",
    );
    denied(
        writer.create_user("intruder", Vec::new()).await.map(drop),
        "making users",
    );
    // A refused call changes nothing.
    assert_eq!(
        admin.list_streams().await.unwrap(),
        vec!["orders".to_string(), "payments".to_string()]
    );
    assert_eq!(
        admin.list_users().await.unwrap().len(),
        2,
        "admin and writer"
    );

    // The Kinesis endpoint checks SigV4 against the same users and the same policies.
    let kinesis = cluster.node(2).kinesis_address.clone();
    let record = |stream: &str| {
        format!(r#"{{"StreamName":"{stream}","PartitionKey":"k","Data":"cGF5bG9hZA=="}}"#)
    };
    let writer_key = Some((key.access_key_id.as_str(), key.secret_access_key.as_str()));
    let (status, body) = kinesis_call(
        &kinesis,
        &ca_pem,
        "PutRecord",
        &record("orders"),
        writer_key,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = kinesis_call(
        &kinesis,
        &ca_pem,
        "PutRecord",
        &record("payments"),
        writer_key,
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AccessDeniedException"), "{body}");
    let (status, body) = kinesis_call(&kinesis, &ca_pem, "ListStreams", "{}", None)
        .await
        .unwrap();
    assert!(
        body.contains("MissingAuthenticationTokenException"),
        "{status} {body}"
    );

    // An explicit deny wins over the allow.
    let deny = r#"{"Statement":{"Effect":"Deny","Action":"kinesis:*","Resource":"*"}}"#;
    admin.put_policy("deny-all", deny).await.unwrap();
    admin.attach_policy("deny-all", "writer").await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the deny to reach every node",
        || {
            let writer = writer.clone();
            let request = put("orders");
            async move {
                match writer.put_record(request).await {
                    Err(error) if error.code() == "ACCESS_DENIED" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
    .unwrap();

    // Every denial and every admin operation is in some node's audit log.
    let audit: String = cluster
        .nodes()
        .iter()
        .map(|node| std::fs::read_to_string(node.data_dir.join("audit.log")).unwrap_or_default())
        .collect();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit lines are JSON"))
        .collect();
    let has = |action: &str, outcome: &str, principal: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["outcome"] == outcome
                && e["principal"].as_str().unwrap_or("").ends_with(principal)
        })
    };
    assert!(
        has("kinesis:CreateStream", "allowed", "user/admin"),
        "{audit}"
    );
    assert!(has("iam:CreateUser", "allowed", "user/admin"), "{audit}");
    assert!(
        has("kinesis:DeleteStream", "denied", "user/writer"),
        "{audit}"
    );
    assert!(has("kinesis:PutRecord", "denied", "user/writer"), "{audit}");
    assert!(
        entries.iter().any(|e| e["outcome"] == "unauthenticated"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_tls_and_auth_cluster_an_encrypted_stream_keeps_no_plaintext_on_disk() {
    let cluster = start_secure_cluster().await;
    let admin = cluster.client();
    admin.create_stream("vault", 1, None).await.unwrap();
    admin
        .wait_for_active("vault", Duration::from_secs(30))
        .await
        .unwrap();

    // Changing a stream's encryption is an action of its own: a user allowed to put is refused.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesis:PutRecords","Resource":"*"}]}"#;
    cli_json(
        &cluster,
        &["policy", "put", "put-only", "--document", policy, "--json"],
    );
    let created = cli_json(
        &cluster,
        &["user", "create", "putter", "--policy", "put-only", "--json"],
    );
    let mut options =
        ClientOptions::tls_ca_file(cluster.certs_dir().unwrap().join("ca.pem")).unwrap();
    options.access_key_opt = Some(AccessKey {
        access_key_id: created["access_key_id"].as_str().unwrap().to_string(),
        secret_access_key: created["secret_access_key"].as_str().unwrap().to_string(),
    });
    let putter = Client::from_list_with(&cluster.endpoints(), &options).unwrap();
    let error = putter
        .stop_stream_encryption("vault", "alias/aws/kinesis")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "ACCESS_DENIED", "{error}");

    // The admin encrypts the stream (CLI, the key ring `auth` made); the putter's records are
    // sealed on every node's disk and read back in clear.
    let started = cli_json(&cluster, &["stream", "start-encryption", "vault", "--json"]);
    assert_eq!(started["encryption_type"], "KMS", "{started}");
    wait_encryption_everywhere(&cluster, "vault", "KMS").await;
    let marker = format!("vaulted{}x{}", std::process::id(), cluster.node(1).address);
    let entries = (0..20)
        .map(|i| v1::PutRecordsRequestEntry {
            partition_key: format!("{marker}-key-{i}"),
            data: format!("{marker}-data-{i}").into_bytes().into(),
            ..Default::default()
        })
        .collect();
    let answer = putter.put_records("vault", entries).await.unwrap();
    assert_eq!(
        (answer.failed_record_count, answer.encryption_type.as_str()),
        (0, "KMS")
    );
    let iterator = admin
        .get_shard_iterator("vault", "shardId-000000000000", "TRIM_HORIZON", None)
        .await
        .unwrap();
    let page = admin.get_records(&iterator, None).await.unwrap();
    assert_eq!(page.records.len(), 20);
    assert_eq!(
        page.records[7].data.as_ref(),
        format!("{marker}-data-7").as_bytes()
    );
    assert!(page.records.iter().all(|r| r.encryption_type == "KMS"));
    let leaked = files_holding(cluster.data_root(), marker.as_bytes());
    assert!(leaked.is_empty(), "plaintext found in {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_its_user_and_never_passes_for_a_node() {
    let cluster = start_secure_cluster().await;
    let certs = cluster.certs_dir().unwrap().to_path_buf();
    let node1 = cluster.node(1).address.clone();
    let admin = cluster.client();
    admin.create_stream("orders", 1, None).await.unwrap();

    // `certs create` made the admin's client certificate; `certs client` makes one per user.
    for user in ["reader", "ghost"] {
        let output = run_certs(&["client", "--user", user, "--dir"], &certs);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(certs.join("client-reader.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "client keys are private");
    let again = run_certs(&["client", "--user", "reader", "--dir"], &certs);
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let bad = run_certs(&["client", "--user", "../escape", "--dir"], &certs);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("user name"), "{}", stderr(&bad));

    let as_user = |user: &str| {
        let mut options = ClientOptions::tls_ca_file(certs.join("ca.pem")).unwrap();
        options.tls_identity_opt = Some(
            TlsIdentity::from_files(
                certs.join(format!("client-{user}.pem")),
                certs.join(format!("client-{user}.key")),
            )
            .unwrap(),
        );
        Client::with_options(&[node1.as_str()], &options)
            .unwrap()
            .with_call_timeout(Duration::from_secs(10))
    };

    // The admin's certificate works with no access key, from the CLI too.
    let cert_cli = |user: &str, args: &[&str]| {
        cluster
            .cli()
            .env_remove("TRIBUTARY_ACCESS_KEY_ID")
            .env_remove("TRIBUTARY_SECRET_ACCESS_KEY")
            .env(
                "TRIBUTARY_CLIENT_CERT",
                certs.join(format!("client-{user}.pem")),
            )
            .env(
                "TRIBUTARY_CLIENT_KEY",
                certs.join(format!("client-{user}.key")),
            )
            .args(args)
            .output()
            .unwrap()
    };
    let output = cert_cli(
        "admin",
        &["stream", "create", "by-certificate", "--shards", "1"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        admin
            .list_streams()
            .await
            .unwrap()
            .contains(&"by-certificate".to_string())
    );

    // A user's certificate gets what the user's policies allow, and nothing else.
    let policy = r#"{"Statement":{"Effect":"Allow","Action":["kinesis:ListStreams","kinesis:DescribeStream"],"Resource":"*"}}"#;
    admin.put_policy("read-only", policy).await.unwrap();
    admin
        .create_user("reader", vec!["read-only".to_string()])
        .await
        .unwrap();
    let reader = as_user("reader");
    wait_until(
        Duration::from_secs(10),
        "node 1 to know the user reader",
        || {
            let reader = reader.clone();
            async move {
                reader
                    .list_streams()
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await
    .unwrap();
    let error = reader.delete_stream("orders", false).await.unwrap_err();
    assert_eq!(error.code(), "ACCESS_DENIED", "{error}");
    assert!(error.to_string().contains("user/reader"), "{error}");
    let output = cert_cli("reader", &["stream", "delete", "orders"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ACCESS_DENIED"),
        "{}",
        stderr(&output)
    );
    assert!(
        admin
            .list_streams()
            .await
            .unwrap()
            .contains(&"orders".to_string())
    );

    // A certificate for a user the cluster does not have is no credential.
    let error = as_user("ghost").list_streams().await.unwrap_err();
    assert_eq!(error.code(), "UNAUTHENTICATED", "{error}");
    assert!(error.to_string().contains("ghost"), "{error}");

    // A client certificate never opens the node-to-node API, even an administrator's.
    let admin_identity = Identity::from_pem(
        std::fs::read(certs.join("client-admin.pem")).unwrap(),
        std::fs::read(certs.join("client-admin.key")).unwrap(),
    );
    let ca_pem = std::fs::read(certs.join("ca.pem")).unwrap();
    let status = raft_call_over_tls(&node1, &ca_pem, Some(admin_identity))
        .await
        .expect_err("a client certificate is refused by the node-to-node API");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("client certificate"),
        "{status:?}"
    );

    // A client certificate from another CA does not get past the handshake.
    let other = tempfile::tempdir().unwrap();
    let other_certs = other.path().join("ca");
    assert!(
        run_certs(&["create", "--nodes", "1", "--out"], &other_certs)
            .status
            .success()
    );
    let mut options = ClientOptions::tls_ca_file(certs.join("ca.pem")).unwrap();
    options.tls_identity_opt = Some(
        TlsIdentity::from_files(
            other_certs.join("client-admin.pem"),
            other_certs.join("client-admin.key"),
        )
        .unwrap(),
    );
    let stranger = Client::with_options(&[node1.as_str()], &options)
        .unwrap()
        .with_call_timeout(Duration::from_secs(5));
    let error = stranger.list_streams().await.unwrap_err();
    assert!(
        matches!(error.code(), "ENDPOINT_UNREACHABLE" | "UNAVAILABLE"),
        "{error}"
    );

    // Deleting the user turns its certificate away: no revocation list to keep.
    admin.delete_user("reader").await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "node 1 to refuse the deleted user's certificate",
        || {
            let reader = reader.clone();
            async move {
                match reader.list_streams().await {
                    Err(error) if error.code() == "UNAUTHENTICATED" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
    .unwrap();
}

/// A TLS connection to `address` (an IP and port), the node verified against `ca_pem`.
async fn tls_connect(
    address: &str,
    ca_pem: &[u8],
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let ip: std::net::SocketAddr = address.parse()?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(ip.ip().into()), tcp)
        .await?)
}

/// The leaf certificate a node serves at `address`, verified against `ca_pem`.
async fn served_certificate(address: &str, ca_pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let tls = tls_connect(address, ca_pem).await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| anyhow::anyhow!("{address} served no certificate"))?;
    Ok(leaf.as_ref().to_vec())
}

fn pem_certificate(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    CertificateDer::from_pem_slice(&pem)
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_node_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let cluster = start_tls_cluster().await;
    let certs = cluster.certs_dir().unwrap().to_path_buf();
    let ca_pem = std::fs::read(certs.join("ca.pem")).unwrap();
    let node = cluster.node(1);
    let ports = [node.address.clone(), node.kinesis_address.clone()];
    let original = pem_certificate(&certs.join("node-1.pem"));
    for port in &ports {
        assert_eq!(served_certificate(port, &ca_pem).await.unwrap(), original);
    }

    // Renewed in place, as an operator (or cert-manager) would: both ports serve the new one
    // within the reload interval, and the cluster goes on.
    let renewed = run_certs(&["node", "--id", "1", "--force", "--dir"], &certs);
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    let renewed = pem_certificate(&certs.join("node-1.pem"));
    assert_ne!(renewed, original);
    wait_until(
        Duration::from_secs(30),
        "node 1 to serve its renewed certificate on both ports",
        || {
            let (ports, ca_pem, renewed) = (ports.clone(), ca_pem.clone(), renewed.clone());
            async move {
                for port in &ports {
                    let served = served_certificate(port, &ca_pem)
                        .await
                        .map_err(|e| e.to_string())?;
                    if served != renewed {
                        return Err(format!("{port} still serves the old certificate"));
                    }
                }
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    let client = cluster.client_of(1);
    client
        .create_stream("after-renewal", 1, None)
        .await
        .unwrap();

    // A botched rotation (a half-written file) leaves the renewed certificate in use.
    std::fs::write(
        certs.join("node-1.pem"),
        b"-----BEGIN CERTIFICATE-----\nMII",
    )
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "node 1 to report that the changed files do not load",
        || {
            let log = cluster.node_log(1);
            async move {
                if log.contains("the changed TLS files do not load") {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            }
        },
    )
    .await
    .unwrap();
    for port in &ports {
        assert_eq!(served_certificate(port, &ca_pem).await.unwrap(), renewed);
    }
    assert!(
        client
            .list_streams()
            .await
            .unwrap()
            .contains(&"after-renewal".to_string())
    );
}

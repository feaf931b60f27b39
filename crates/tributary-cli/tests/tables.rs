//! Lease tables on a real cluster: the CLI, linearizable conditional writes (racing writers,
//! many trials), and lease churn across a crash of the metadata leader.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use tributary_client::{AttributeValue, Client, Comparator, Condition, ErrorCode, Update};
use tributary_testkit::wait_until;

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_through_the_cli() {
    let cluster = start_cluster(3, 3).await;
    cli_json(&cluster, &["table", "create", "app", "--json"]);
    let output = cli(&cluster, &["table", "create", "app"]);
    assert!(
        stderr(&output).contains("RESOURCE_IN_USE"),
        "{}",
        stderr(&output)
    );
    let item = r#"{"leaseKey":{"S":"shardId-000000000000"},"leaseCounter":{"N":"0"},"checkpoint":{"S":"TRIM_HORIZON"}}"#;
    cli_json(
        &cluster,
        &["table", "put", "app", item, "--if-not-exists", "--json"],
    );
    let again = cli(&cluster, &["table", "put", "app", item, "--if-not-exists"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("CONDITIONAL_CHECK_FAILED"),
        "{}",
        stderr(&again)
    );
    let got = cli_json(
        &cluster,
        &["table", "get", "app", "shardId-000000000000", "--json"],
    );
    assert_eq!(got["checkpoint"]["S"], "TRIM_HORIZON");
    let described = cli_json(&cluster, &["table", "describe", "app", "--json"]);
    assert_eq!(described["key_attribute"], "leaseKey");
    assert_eq!(described["item_count"], 1);
    let scan = cli(&cluster, &["table", "scan", "app", "--json"]);
    assert_eq!(stdout(&scan).lines().count(), 1);
    let bad = cli(&cluster, &["table", "put", "app", r#"{"other":{"S":"x"}}"#]);
    assert!(
        stderr(&bad).contains("INVALID_ARGUMENT"),
        "{}",
        stderr(&bad)
    );
    cli_json(
        &cluster,
        &[
            "table",
            "delete",
            "app",
            "--key",
            "shardId-000000000000",
            "--json",
        ],
    );
    let missing = cli(&cluster, &["table", "get", "app", "shardId-000000000000"]);
    assert!(!missing.status.success());
    cli_json(&cluster, &["table", "delete", "app", "--json"]);
    let listed = cli_json(&cluster, &["table", "list", "--json"]);
    assert_eq!(listed["tables"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_conditional_writes_never_both_win() {
    let cluster = start_cluster(3, 3).await;
    let a = cluster.client_of(1);
    let b = cluster.client_of(2);
    a.create_table("race", None).await.unwrap();
    let claim = |owner: &'static str| {
        (
            vec![Update::Set {
                attribute: "leaseOwner".into(),
                value: s(owner),
            }],
            Condition::AttributeNotExists("leaseOwner".into()),
        )
    };
    let trials = 100;
    for trial in 0..trials {
        let key = format!("key-{trial}");
        let (updates_a, condition_a) = claim("a");
        let (updates_b, condition_b) = claim("b");
        let (result_a, result_b) = tokio::join!(
            a.update_item("race", &key, &updates_a, Some(&condition_a)),
            b.update_item("race", &key, &updates_b, Some(&condition_b)),
        );
        let (winner, loser) = match (&result_a, &result_b) {
            (Ok(_), Err(error)) => ("a", error),
            (Err(error), Ok(_)) => ("b", error),
            other => panic!("trial {trial}: exactly one must win: {other:?}"),
        };
        let tributary_client::ClientError::Api(error) = loser else {
            panic!("trial {trial}: {loser}");
        };
        assert_eq!(
            error.code,
            ErrorCode::ConditionalCheckFailed,
            "trial {trial}"
        );
        let current = error
            .current_item_opt
            .as_deref()
            .expect("the failure carries the item");
        assert_eq!(current["leaseOwner"], s(winner), "trial {trial}");
        let stored = a.get_item("race", &key).await.unwrap().unwrap();
        assert_eq!(stored["leaseOwner"], s(winner), "trial {trial}");
    }
}

/// One acknowledged lease transition: the counter it required and the owner it set.
#[derive(Debug, Clone)]
struct Transition {
    key: String,
    from_counter: u64,
    owner: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_churn_survives_a_metadata_leader_crash() {
    let mut cluster = start_cluster(3, 3).await;
    let setup = cluster.client();
    setup.create_table("leases", None).await.unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("shard-{i}")).collect();
    for key in &keys {
        let updates = [Update::Set {
            attribute: "leaseCounter".into(),
            value: n(0),
        }];
        setup
            .update_item("leases", key, &updates, None)
            .await
            .unwrap();
    }

    // Three workers keep taking every lease: read it, then write owner and counter + 1 on the
    // condition that the counter has not moved. Every acknowledged write is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(std::sync::Mutex::new(Vec::<Transition>::new()));
    let mut workers = Vec::new();
    for worker in ["w1", "w2", "w3"] {
        let client = Client::from_list(&cluster.endpoints())
            .unwrap()
            .with_call_timeout(Duration::from_secs(5));
        let (stop, history, keys) = (stop.clone(), history.clone(), keys.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for key in &keys {
                    let Ok(Some(item)) = client.get_item("leases", key).await else {
                        continue;
                    };
                    let AttributeValue::N(counter) = &item["leaseCounter"] else {
                        panic!("counter is a number: {item:?}");
                    };
                    let counter: u64 = counter.parse().unwrap();
                    let updates = [
                        Update::Set {
                            attribute: "leaseOwner".into(),
                            value: s(worker),
                        },
                        Update::Add {
                            attribute: "leaseCounter".into(),
                            value: n(1),
                        },
                    ];
                    let condition = Condition::Compare {
                        attribute: "leaseCounter".into(),
                        comparator: Comparator::Eq,
                        value: n(counter),
                    };
                    if client
                        .update_item("leases", key, &updates, Some(&condition))
                        .await
                        .is_ok()
                    {
                        history.lock().unwrap().push(Transition {
                            key: key.clone(),
                            from_counter: counter,
                            owner: worker.to_string(),
                        });
                    }
                }
            }
        }));
    }

    let before_crash = |n: usize| {
        let history = history.clone();
        async move {
            let done = history.lock().unwrap().len();
            if done >= n {
                Ok(())
            } else {
                Err(format!("{done} of {n} transitions"))
            }
        }
    };
    wait_until(Duration::from_secs(20), "lease churn", || before_crash(40))
        .await
        .unwrap();
    let leader = setup
        .cluster_status()
        .await
        .unwrap()
        .metadata_leader
        .expect("a metadata leader");
    cluster.kill(leader).unwrap();
    let crashed_at = history.lock().unwrap().len();
    wait_until(
        Duration::from_secs(30),
        "lease churn after the crash",
        || before_crash(crashed_at + 40),
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // No two acknowledged writes started from the same counter of the same lease: no two workers
    // ever held it at once.
    let history = history.lock().unwrap().clone();
    let mut by_start: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for transition in &history {
        by_start
            .entry((transition.key.clone(), transition.from_counter))
            .or_default()
            .push(transition.owner.clone());
    }
    for ((key, counter), owners) in &by_start {
        assert_eq!(
            owners.len(),
            1,
            "{key} at counter {counter} was taken by {owners:?}"
        );
    }
    // No lease lost: every item is there with a counter at least its acknowledged transitions.
    let survivors = Client::from_list(&cluster.running_endpoints()).unwrap();
    for key in &keys {
        let item = survivors
            .get_item("leases", key)
            .await
            .unwrap()
            .expect("lease kept");
        let AttributeValue::N(counter) = &item["leaseCounter"] else {
            panic!()
        };
        let acknowledged = history.iter().filter(|t| &t.key == key).count() as u64;
        assert!(
            counter.parse::<u64>().unwrap() >= acknowledged,
            "{key}: {item:?}"
        );
    }
    eprintln!(
        "{} transitions, {} after the metadata leader crashed",
        history.len(),
        history.len() - crashed_at
    );
}

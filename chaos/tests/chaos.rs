//! The chaos suite in `cargo test`: a short run of every nemesis on node processes must hold
//! every property, the quorum scenarios must hold, and a deliberately broken node (acknowledging
//! before commit) must make the checker fail.

mod common;

use std::process::Command;

use common::{CHAOS, tributary_binary};
use serde_json::Value;
use tributary_chaos::scenarios::{AZ_DOWN_RESUME_LIMIT, quorum_scenarios};
use tributary_testkit::{Cluster, ClusterOptions};

/// Runs `tributary-chaos` with `args`; returns its exit code and summary.json.
fn chaos(args: &[&str]) -> (Option<i32>, Value, String) {
    let report = tempfile::tempdir().unwrap();
    let output = Command::new(CHAOS)
        .args(args)
        .arg("--report")
        .arg(report.path())
        .arg("--binary")
        .arg(tributary_binary())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = std::fs::read_to_string(report.path().join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json ({e}); output:\n{text}"));
    let markdown = std::fs::read_to_string(report.path().join("summary.md")).unwrap();
    assert!(markdown.starts_with("# Chaos run: "), "{markdown}");
    assert!(report.path().join("history.json").exists());
    (
        output.status.code(),
        serde_json::from_str(&summary).unwrap(),
        text,
    )
}

#[test]
fn a_short_run_of_every_nemesis_holds_every_property() {
    let (code, summary, output) = chaos(&[
        "--duration",
        "90",
        "--nemesis",
        "kill,pause,partition,az,majority,isolate-leader,pause-leader,kill-repeat,laggards,wipe",
        "--seed",
        "20261202",
        "--max-fault-s",
        "5",
    ]);
    println!("{output}");
    for key in [
        "ops",
        "acked",
        "failed",
        "unknown",
        "lost",
        "duplicates",
        "order_violations",
        "faults",
        "max_unavailability_s",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(code, Some(0), "a property failed:\n{output}");
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["order_violations"], 0);
    assert!(summary["faults"].as_u64().unwrap() >= 5, "{summary}");
    assert!(summary["acked"].as_u64().unwrap() >= 1000, "{summary}");
}

#[test]
fn the_checker_catches_a_node_that_acknowledges_before_commit() {
    let (code, summary, output) = chaos(&[
        "--duration",
        "25",
        "--nemesis",
        "partition,kill",
        "--seed",
        "7",
        "--broken-ack-before-commit",
    ]);
    assert_eq!(
        code,
        Some(1),
        "the checker passed a broken build:\n{output}"
    );
    let lost_property = summary["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "no_acknowledged_record_lost")
        .unwrap();
    assert!(
        lost_property["violations"].as_u64().unwrap() > 0,
        "the broken build failed, but not for lost or misnumbered acknowledged records: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_scenarios_hold_on_node_processes() {
    let mut cluster = Cluster::start(
        tributary_binary(),
        ClusterOptions {
            fault_injection: true,
            ..ClusterOptions::default()
        },
    )
    .await
    .unwrap();
    let measured = quorum_scenarios(&mut cluster).await.unwrap();
    println!("measured: {measured:?}");
    assert!(measured.az_down_resume <= AZ_DOWN_RESUME_LIMIT);
}

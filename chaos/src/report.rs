//! A run's report: `summary.json` (the contract's keys and more), `summary.md` for people, and
//! `history.json`, every operation, read and fault.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::availability::Window;
use crate::checker::{PropertyResult, Verdict};
use crate::history::History;

/// The summary; the first nine fields are the command's contract (never rename them).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Put attempts.
    pub ops: usize,
    /// Attempts acknowledged.
    pub acked: usize,
    /// Attempts definitely refused.
    pub failed: usize,
    /// Attempts whose outcome the client could not know.
    pub unknown: usize,
    /// Acknowledged records missing after heal.
    pub lost: usize,
    /// Extra copies of records.
    pub duplicates: usize,
    /// Out-of-order, skipped or backwards reads.
    pub order_violations: usize,
    /// Faults injected.
    pub faults: usize,
    /// The longest time any shard could not be written after a fault (after heal, for faults
    /// that took a majority); `null` when some shard never wrote again.
    pub max_unavailability_s: Option<f64>,
    pub p50_unavailability_s: Option<f64>,
    /// Whether every property holds (the exit status says the same).
    pub passed: bool,
    pub seed: u64,
    pub duration_s: u64,
    pub nodes: u64,
    pub nemesis: Vec<String>,
    /// Records in the stream after heal (the longest final read of each shard, summed).
    pub records_read: usize,
    pub properties: Vec<PropertyResult>,
    pub windows: Vec<Window>,
    pub command: String,
}

/// Counts for the summary.
pub struct RunFacts<'a> {
    pub history: &'a History,
    pub verdict: &'a Verdict,
    pub windows: Vec<Window>,
    pub seed: u64,
    pub duration_s: u64,
    pub nodes: u64,
    pub nemesis: Vec<String>,
    pub command: String,
}

fn finite(value: f64) -> Option<f64> {
    value
        .is_finite()
        .then_some((value * 1000.0).round() / 1000.0)
}

pub fn summarize(facts: RunFacts) -> Summary {
    let puts = &facts.history.puts;
    let count =
        |f: fn(&crate::history::Outcome) -> bool| puts.iter().filter(|op| f(&op.outcome)).count();
    let (p50, max) = crate::availability::p50_and_max(&facts.windows);
    Summary {
        ops: puts.len(),
        acked: count(|o| o.is_ok()),
        failed: count(|o| matches!(o, crate::history::Outcome::Failed { .. })),
        unknown: count(|o| matches!(o, crate::history::Outcome::Unknown { .. })),
        lost: facts.verdict.lost,
        duplicates: facts.verdict.duplicates,
        order_violations: facts.verdict.order_violations,
        faults: facts.history.faults.len(),
        max_unavailability_s: finite(max),
        p50_unavailability_s: finite(p50),
        passed: facts.verdict.holds(),
        seed: facts.seed,
        duration_s: facts.duration_s,
        nodes: facts.nodes,
        nemesis: facts.nemesis,
        records_read: {
            let mut per_shard = std::collections::BTreeMap::new();
            for log in &facts.history.final_reads {
                let longest = per_shard.entry(log.shard.as_str()).or_insert(0);
                *longest = (*longest).max(log.records.len());
            }
            per_shard.values().sum()
        },
        properties: facts.verdict.properties.clone(),
        windows: facts.windows,
        command: facts.command,
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("never".to_string(), |s| format!("{s:.2} s"))
}

pub fn markdown(summary: &Summary) -> String {
    let mut out = String::new();
    let verdict = if summary.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "# Chaos run: {verdict}\n");
    let _ = writeln!(out, "`{}`\n", summary.command);
    let _ = writeln!(
        out,
        "{} nodes, {} s, nemesis {}, seed {}.\n",
        summary.nodes,
        summary.duration_s,
        summary.nemesis.join(","),
        summary.seed
    );
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let rows = [
        ("put attempts", summary.ops.to_string()),
        ("acknowledged", summary.acked.to_string()),
        ("definitely failed", summary.failed.to_string()),
        ("unknown outcome", summary.unknown.to_string()),
        ("lost (must be 0)", summary.lost.to_string()),
        ("duplicates", summary.duplicates.to_string()),
        ("order violations", summary.order_violations.to_string()),
        ("faults", summary.faults.to_string()),
        (
            "unavailability p50 / max",
            format!(
                "{} / {}",
                seconds(summary.p50_unavailability_s),
                seconds(summary.max_unavailability_s)
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    let _ = writeln!(
        out,
        "\n## Properties\n\n| property | holds | violations |\n|---|---|---|"
    );
    for property in &summary.properties {
        let holds = if property.holds() { "yes" } else { "**NO**" };
        let _ = writeln!(
            out,
            "| {} — {} | {holds} | {} |",
            property.name, property.description, property.violations
        );
    }
    for property in summary.properties.iter().filter(|p| !p.holds()) {
        let _ = writeln!(out, "\n### {} — examples\n", property.name);
        for example in &property.examples {
            let _ = writeln!(out, "- {example}");
        }
    }
    let _ = writeln!(
        out,
        "\n## Faults\n\n| at | held | fault | longest shard without writes: during fault / after heal |\n|---|---|---|---|"
    );
    for window in &summary.windows {
        let _ = writeln!(
            out,
            "| {:.1} s | {:.1} s | {}: {} | {} / {} |",
            window.start_s,
            window.held_s,
            window.nemesis,
            window.description,
            seconds(Some(window.during_fault_s)),
            seconds(window.after_heal_s)
        );
    }
    out
}

/// Writes summary.json, summary.md and history.json into `dir`.
pub fn write(dir: &Path, summary: &Summary, history: &History) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary)? + "\n",
    )?;
    std::fs::write(dir.join("summary.md"), markdown(summary))?;
    std::fs::write(dir.join("history.json"), serde_json::to_string(history)?)?;
    Ok(())
}

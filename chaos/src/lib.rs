//! Jepsen-style chaos testing for Tributary. A run starts a cluster, drives a [`workload`] of
//! producers and readers against it while a [`nemesis`] kills, pauses and partitions nodes, heals
//! everything, reads every shard through every node and hands the [`history`] to the
//! [`checker`], one module per promise of DESIGN.md. The [`report`] says what happened.

pub mod availability;
pub mod checker;
pub mod consumers;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod workload;

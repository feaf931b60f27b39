//! The write meter of a shard: what its leader committed, per second, over the on-demand
//! scaling window. Utilization is measured against the Kinesis write limit — the larger of
//! records/1,000 and bytes/1 MiB in a second — whether or not limits are enforced.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::limits::{WRITE_BYTES_PER_SEC, WRITE_RECORDS_PER_SEC};

/// A shard's utilization over a full window, as its leader saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowLoad {
    /// The quietest second of the window (above 0.5 everywhere: sustained hot).
    pub min: f64,
    /// The busiest second of the window.
    pub max: f64,
}

#[derive(Debug)]
struct Seconds {
    /// (second since `origin`, records, bytes), oldest first, only seconds with writes.
    buckets: VecDeque<(u64, u64, u64)>,
    /// Since when this replica has been leading without a gap; `None` while it follows.
    leading_since_opt: Option<Instant>,
}

#[derive(Debug)]
pub struct WriteMeter {
    origin: Instant,
    window: Duration,
    seconds: Mutex<Seconds>,
}

impl WriteMeter {
    pub fn new(window: Duration) -> WriteMeter {
        WriteMeter {
            origin: Instant::now(),
            window,
            seconds: Mutex::new(Seconds {
                buckets: VecDeque::new(),
                leading_since_opt: None,
            }),
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Counts a committed batch.
    pub fn record(&self, records: usize, bytes: usize, now: Instant) {
        let second = self.second(now);
        let mut seconds = self.seconds.lock().expect("meter lock poisoned");
        match seconds.buckets.back_mut() {
            Some((s, r, b)) if *s == second => {
                *r += records as u64;
                *b += bytes as u64;
            }
            _ => seconds
                .buckets
                .push_back((second, records as u64, bytes as u64)),
        }
        let window = self.window.as_secs().max(1);
        while seconds
            .buckets
            .front()
            .is_some_and(|(s, _, _)| *s + window < second)
        {
            seconds.buckets.pop_front();
        }
    }

    /// Notes whether this replica leads now; a gap restarts the window.
    pub fn observe_leadership(&self, leads: bool, now: Instant) {
        let mut seconds = self.seconds.lock().expect("meter lock poisoned");
        match (leads, seconds.leading_since_opt) {
            (true, None) => seconds.leading_since_opt = Some(now),
            (false, Some(_)) => seconds.leading_since_opt = None,
            _ => {}
        }
    }

    /// The window's load, once this replica has led for a whole window (the last, partial
    /// second is left out).
    pub fn load(&self, now: Instant) -> Option<WindowLoad> {
        let seconds = self.seconds.lock().expect("meter lock poisoned");
        let leading_since = seconds.leading_since_opt?;
        if now.saturating_duration_since(leading_since) < self.window + Duration::from_secs(1) {
            return None;
        }
        let current = self.second(now);
        let window = self.window.as_secs().max(1);
        let first = current.saturating_sub(window);
        let mut per_second = vec![0.0f64; window as usize];
        for (second, records, bytes) in &seconds.buckets {
            if *second >= first && *second < current {
                let utilization = (*records as f64 / WRITE_RECORDS_PER_SEC)
                    .max(*bytes as f64 / WRITE_BYTES_PER_SEC);
                per_second[(*second - first) as usize] = utilization;
            }
        }
        Some(WindowLoad {
            min: per_second.iter().copied().fold(f64::INFINITY, f64::min),
            max: per_second.iter().copied().fold(0.0, f64::max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_known_only_after_a_whole_window_of_leadership() {
        let meter = WriteMeter::new(Duration::from_secs(3));
        let start = meter.origin;
        assert_eq!(
            meter.load(start + Duration::from_secs(10)),
            None,
            "never led"
        );
        meter.observe_leadership(true, start);
        for second in 0..5 {
            let at = start + Duration::from_secs(second) + Duration::from_millis(10);
            meter.record(600, 6_000, at);
        }
        assert_eq!(
            meter.load(start + Duration::from_secs(3)),
            None,
            "window not full"
        );
        let load = meter.load(start + Duration::from_secs(5)).unwrap();
        assert!(
            (load.min - 0.6).abs() < 1e-9 && (load.max - 0.6).abs() < 1e-9,
            "{load:?}"
        );
    }

    #[test]
    fn a_quiet_second_breaks_sustained_load_and_bytes_count_too() {
        let meter = WriteMeter::new(Duration::from_secs(3));
        let start = meter.origin;
        meter.observe_leadership(true, start);
        meter.record(900, 10, start + Duration::from_millis(100));
        meter.record(1, 900 * 1024, start + Duration::from_millis(2100));
        let load = meter.load(start + Duration::from_millis(4500)).unwrap();
        assert_eq!(load.min, 0.0, "second 1 had no writes");
        assert!(load.max > 0.85, "{load:?}");
        meter.observe_leadership(false, start + Duration::from_secs(5));
        assert_eq!(
            meter.load(start + Duration::from_secs(6)),
            None,
            "a follower knows no load"
        );
    }
}

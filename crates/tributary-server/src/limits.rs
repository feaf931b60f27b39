//! Per-shard throughput limits, enforced by the shard's leader (every put of a shard commits
//! through it, so the limits hold however many nodes accept puts). Kinesis' numbers: writes
//! 1 MiB/s or 1,000 records/s, reads 2 MiB/s and 5 GetRecords calls/s.
//!
//! Each limit is a token bucket holding one second of its rate. Writes take tokens record by
//! record, in order, and stop at the first record that does not fit: the rest of the batch is
//! throttled, so a partition key's records are never reordered by throttling. A GetRecords call
//! needs a call token and a non-negative byte balance; the bytes it returns are charged after the
//! read and may drive the balance below zero, so a 10 MiB answer is followed by ~4 s of
//! throttled calls — Kinesis' behaviour.

use std::sync::Mutex;
use std::time::Instant;

use tributary_types::{Error, ErrorCode, ShardId, StreamName};

use crate::config::ShardLimits;

pub const WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
pub const WRITE_RECORDS_PER_SEC: f64 = 1000.0;
pub const READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
pub const READ_CALLS_PER_SEC: f64 = 5.0;

/// Tokens refilling at `rate` per second up to one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: rate,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled_at = now;
    }
}

#[derive(Debug)]
struct Buckets {
    write_bytes: Bucket,
    write_records: Bucket,
    read_bytes: Bucket,
    read_calls: Bucket,
}

/// The limits of one shard, on the node that holds a replica of it.
#[derive(Debug)]
pub struct ShardLimiter {
    buckets_opt: Option<Mutex<Buckets>>,
}

impl ShardLimiter {
    pub fn new(mode: ShardLimits) -> ShardLimiter {
        let now = Instant::now();
        let buckets_opt = match mode {
            ShardLimits::Off => None,
            ShardLimits::Kinesis => Some(Mutex::new(Buckets {
                write_bytes: Bucket::new(WRITE_BYTES_PER_SEC, now),
                write_records: Bucket::new(WRITE_RECORDS_PER_SEC, now),
                read_bytes: Bucket::new(READ_BYTES_PER_SEC, now),
                read_calls: Bucket::new(READ_CALLS_PER_SEC, now),
            })),
        };
        ShardLimiter { buckets_opt }
    }

    /// How many of the leading records (given their sizes, key included) may be written now.
    pub fn admit_writes(&self, sizes: impl IntoIterator<Item = usize>, now: Instant) -> usize {
        let Some(buckets) = &self.buckets_opt else {
            return usize::MAX;
        };
        let mut buckets = buckets.lock().expect("limiter lock poisoned");
        buckets.write_bytes.refill(now);
        buckets.write_records.refill(now);
        let mut admitted = 0;
        for size in sizes {
            let size = size as f64;
            if buckets.write_records.tokens < 1.0 || buckets.write_bytes.tokens < size {
                break;
            }
            buckets.write_records.tokens -= 1.0;
            buckets.write_bytes.tokens -= size;
            admitted += 1;
        }
        admitted
    }

    /// Gives back what an attempt took that did not commit (the leader was still confirming its
    /// leadership, or lost it): retries must not spend the shard's budget.
    pub fn refund_writes(&self, records: usize, bytes: usize) {
        if let Some(buckets) = &self.buckets_opt {
            let mut buckets = buckets.lock().expect("limiter lock poisoned");
            let records_rate = buckets.write_records.rate;
            let bytes_rate = buckets.write_bytes.rate;
            buckets.write_records.tokens =
                (buckets.write_records.tokens + records as f64).min(records_rate);
            buckets.write_bytes.tokens =
                (buckets.write_bytes.tokens + bytes as f64).min(bytes_rate);
        }
    }

    /// Takes a GetRecords call token; refuses while the byte balance is negative.
    pub fn admit_read(&self, now: Instant) -> bool {
        let Some(buckets) = &self.buckets_opt else {
            return true;
        };
        let mut buckets = buckets.lock().expect("limiter lock poisoned");
        buckets.read_calls.refill(now);
        buckets.read_bytes.refill(now);
        if buckets.read_calls.tokens < 1.0 || buckets.read_bytes.tokens < 0.0 {
            return false;
        }
        buckets.read_calls.tokens -= 1.0;
        true
    }

    /// Charges the bytes a GetRecords call returned.
    pub fn charge_read_bytes(&self, bytes: usize, now: Instant) {
        if let Some(buckets) = &self.buckets_opt {
            let mut buckets = buckets.lock().expect("limiter lock poisoned");
            buckets.read_bytes.refill(now);
            buckets.read_bytes.tokens -= bytes as f64;
        }
    }
}

/// The error of a throttled record or call, worded as Kinesis words it.
pub fn rate_exceeded(stream: &StreamName, shard: ShardId) -> Error {
    Error::new(
        ErrorCode::ProvisionedThroughputExceeded,
        format!("Rate exceeded for shard {shard} in stream {stream}."),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn writes_admit_a_prefix_up_to_a_second_of_records_then_refill() {
        let start = Instant::now();
        let limiter = ShardLimiter::new(ShardLimits::Kinesis);
        assert_eq!(limiter.admit_writes(vec![10; 1500], start), 1000);
        assert_eq!(limiter.admit_writes(vec![10; 5], start), 0);
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.admit_writes(vec![10; 500], later), 100);
    }

    #[test]
    fn writes_stop_at_the_first_record_over_the_byte_budget() {
        let start = Instant::now();
        let limiter = ShardLimiter::new(ShardLimits::Kinesis);
        let mib = 1024 * 1024;
        // 700 KiB fits, the next 400 KiB does not, and the small record after it waits too.
        assert_eq!(limiter.admit_writes([700 * 1024, 400 * 1024, 10], start), 1);
        assert_eq!(
            limiter.admit_writes([mib], start + Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn refunds_restore_what_an_attempt_took() {
        let start = Instant::now();
        let limiter = ShardLimiter::new(ShardLimits::Kinesis);
        assert_eq!(limiter.admit_writes(vec![10; 1000], start), 1000);
        limiter.refund_writes(1000, 10_000);
        assert_eq!(limiter.admit_writes(vec![10; 1000], start), 1000);
    }

    #[test]
    fn reads_allow_five_calls_a_second_and_pay_back_large_answers() {
        let start = Instant::now();
        let limiter = ShardLimiter::new(ShardLimits::Kinesis);
        for _ in 0..5 {
            assert!(limiter.admit_read(start));
        }
        assert!(
            !limiter.admit_read(start),
            "a sixth call in the same second"
        );
        let later = start + Duration::from_secs(1);
        assert!(limiter.admit_read(later));
        limiter.charge_read_bytes(10 * 1024 * 1024, later);
        assert!(!limiter.admit_read(later + Duration::from_secs(3)));
        assert!(limiter.admit_read(later + Duration::from_secs(5)));
    }

    #[test]
    fn off_admits_everything() {
        let limiter = ShardLimiter::new(ShardLimits::Off);
        let now = Instant::now();
        assert_eq!(
            limiter.admit_writes(vec![1024 * 1024; 100], now),
            usize::MAX
        );
        assert!((0..100).all(|_| limiter.admit_read(now)));
    }
}

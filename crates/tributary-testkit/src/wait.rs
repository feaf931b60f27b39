//! Waiting on conditions instead of sleeping.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, or fails after `timeout` naming what was awaited and
/// the last state seen (`check` reports it through `Err`).
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(last_seen) => {
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "timed out after {timeout:?} waiting for {what}; last seen: {last_seen}"
                    );
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

//! Cancellation that reaches every wait: the apply runs each driver call
//! inside [`scope`], and a driver's polls and retries ask [`current`] for the
//! token, so Ctrl-C stops a wait at once without a token in every signature.
//!
//! Guarantees: only waits and retry pauses stop early; a request already
//! sent is never dropped by this. Caveat: the token does not follow work a
//! driver spawns onto other tasks.

use std::future::Future;
use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

tokio::task_local! {
    static CANCEL: CancellationToken;
}

/// Runs `f` with `token` visible to [`current`].
pub async fn scope<F: Future>(token: CancellationToken, f: F) -> F::Output {
    CANCEL.scope(token, f).await
}

/// The token of the enclosing [`scope`], if any.
pub fn current() -> Option<CancellationToken> {
    CANCEL.try_with(Clone::clone).ok()
}

/// Sleeps for `pause`, or less when the enclosing scope is cancelled.
/// Returns `false` when cancelled.
pub async fn sleep(pause: Duration) -> bool {
    match current() {
        Some(token) => sleep_unless(&token, pause).await,
        None => {
            tokio::time::sleep(pause).await;
            true
        }
    }
}

/// Sleeps for `pause`, or less when `token` is cancelled. Returns `false`
/// when cancelled.
pub async fn sleep_unless(token: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = token.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_scope_cuts_a_sleep_short() {
        let token = CancellationToken::new();
        assert!(scope(token.clone(), sleep(Duration::from_secs(1))).await);
        token.cancel();
        let start = tokio::time::Instant::now();
        assert!(!scope(token.clone(), sleep(Duration::from_secs(3600))).await);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(scope(token, async { current().is_some_and(|t| t.is_cancelled()) }).await);
        assert!(current().is_none(), "outside a scope nothing is cancelled");
    }
}

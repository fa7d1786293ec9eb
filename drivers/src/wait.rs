//! Waiting for asynchronous resources: poll with backoff until a probe says
//! done, or give up after a deadline modelled on how long the service really
//! takes. Every pause is a cancellation point: at Ctrl-C a wait stops at once
//! (`ErrorKind::Cancelled`), and the journal and the ownership tags let the
//! next run find what it waited for. Giving up is `ErrorKind::DeadlineExceeded`,
//! which nobody retries again, so the worst case of a call is its deadline.

use std::future::Future;
use std::time::Duration;

use fastcart_engine::{cancel, DriverError, ErrorKind};

/// One deadline shared by the phases of one operation (detach, then wait
/// until detached): each phase gets what is left, so the operation's worst
/// case is the type's deadline, not the sum of its phases.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: tokio::time::Instant,
}

impl Deadline {
    pub fn after(d: Duration) -> Self {
        Deadline {
            end: tokio::time::Instant::now() + d,
        }
    }

    /// What is left of it (nothing, once it has passed).
    pub fn left(&self) -> Duration {
        self.end
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

fn gave_up(operation: &str, message: String) -> DriverError {
    DriverError::new(ErrorKind::DeadlineExceeded, operation, message)
}

fn stopped(operation: &str, what: &str) -> DriverError {
    DriverError::new(
        ErrorKind::Cancelled,
        operation,
        format!("stopped waiting for {what}: interrupted; it may still finish, and the next run finds it"),
    )
}

/// Polls `probe` until it returns `Some`, first at once, then with a pause
/// that grows from half a second to fifteen. `what` names the wait in the
/// error ("vpc-123 to become available").
pub async fn until<T, F, Fut>(
    operation: &str,
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, DriverError>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        if let Some(done) = probe().await? {
            return Ok(done);
        }
        if start.elapsed() >= timeout {
            return Err(gave_up(
                operation,
                format!(
                    "gave up waiting for {what} after {}s; it may still finish: run plan again to see",
                    timeout.as_secs()
                ),
            ));
        }
        // Never past the deadline: the last pause ends on it.
        if !cancel::sleep(pause.min(timeout.saturating_sub(start.elapsed()))).await {
            return Err(stopped(operation, what));
        }
        pause = (pause * 3 / 2).min(Duration::from_secs(15));
    }
}

/// Retries `call` while AWS says the resource is still in use (a dependency
/// violation), for at most `timeout`: deleting a subnet right after the NAT
/// gateway in it is one such case. Giving up says what AWS last said is in
/// the way and how long it waited.
pub async fn while_in_use<T, F, Fut>(timeout: Duration, call: F) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DriverError>>,
{
    while_in_use_naming(timeout, call, || async { None }).await
}

/// [`while_in_use`], and on giving up also what `blockers` finds in the way,
/// for resources whose own "in use" message does not say (a VPC).
pub async fn while_in_use_naming<T, F, Fut, B, BFut>(
    timeout: Duration,
    mut call: F,
    blockers: B,
) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DriverError>>,
    B: FnOnce() -> BFut,
    BFut: Future<Output = Option<String>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match call().await {
            Err(e) if e.kind == ErrorKind::DependencyViolation => {
                if start.elapsed() >= timeout {
                    let found = blockers().await;
                    let found = found
                        .map(|b| format!("; in the way: {b}"))
                        .unwrap_or_default();
                    return Err(gave_up(
                        &e.operation,
                        format!(
                            "{}{found}; still in use after {}s: remove what uses it, then run the command again",
                            e.message,
                            start.elapsed().as_secs()
                        ),
                    )
                    .with_code(e.code.as_deref().unwrap_or_default()));
                }
                if !cancel::sleep(pause.min(timeout.saturating_sub(start.elapsed()))).await {
                    return Err(stopped(&e.operation, "a resource in use to be freed"));
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

/// A delete: `call` retried while the resource is in use (for at most
/// `timeout`); a resource already gone counts as deleted.
pub async fn deleted<T, F, Fut>(timeout: Duration, call: F) -> Result<(), DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DriverError>>,
{
    deleted_naming(timeout, call, || async { None }).await
}

/// [`deleted`], naming what `blockers` finds in the way when it gives up.
pub async fn deleted_naming<T, F, Fut, B, BFut>(
    timeout: Duration,
    call: F,
    blockers: B,
) -> Result<(), DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DriverError>>,
    B: FnOnce() -> BFut,
    BFut: Future<Output = Option<String>>,
{
    match while_in_use_naming(timeout, call, blockers).await {
        Err(e) if e.kind != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn polls_until_done_and_times_out() {
        let n = AtomicU32::new(0);
        let got = until("x:Op", "thing", Duration::from_secs(60), || async {
            Ok((n.fetch_add(1, Ordering::SeqCst) >= 3).then_some(7))
        })
        .await
        .unwrap();
        assert_eq!(got, 7);
        let err = until("x:Op", "thing", Duration::from_secs(5), || async {
            Ok::<Option<()>, DriverError>(None)
        })
        .await
        .unwrap_err();
        assert!(err.message.contains("gave up waiting for thing"), "{err}");
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_stops_at_once() {
        let token = cancel::CancellationToken::new();
        let polls = AtomicU32::new(0);
        let t = token.clone();
        let start = tokio::time::Instant::now();
        let err = cancel::scope(token, async {
            until("x:Op", "thing", Duration::from_secs(3600), || async {
                if polls.fetch_add(1, Ordering::SeqCst) == 2 {
                    t.cancel();
                }
                Ok::<Option<()>, DriverError>(None)
            })
            .await
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_dependency_violation_for_a_bounded_time() {
        let n = AtomicU32::new(0);
        let r = while_in_use(Duration::from_secs(30), || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(DriverError::new(
                    ErrorKind::DependencyViolation,
                    "ec2:DeleteSubnet",
                    "in use",
                ))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = while_in_use_naming(
            Duration::from_secs(5),
            || async {
                Err(DriverError::new(
                    ErrorKind::DependencyViolation,
                    "ec2:DeleteSubnet",
                    "in use",
                ))
            },
            || async { Some("eni-1 (a network interface)".to_string()) },
        )
        .await;
        let err = r.unwrap_err();
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded, "{err}");
        assert!(err.message.contains("in the way: eni-1"), "{err}");
        assert!(err.message.contains("still in use after 5s"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the deadline bounds the wait"
        );
    }
}

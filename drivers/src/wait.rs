//! Waiting for asynchronous resources: poll with backoff until a probe says
//! done, or give up after a timeout modelled on how long the service really
//! takes.

use std::future::Future;
use std::time::Duration;

use fastcart_engine::{DriverError, ErrorKind};

/// Polls `probe` until it returns `Some`, first at once, then with a pause
/// that grows from one second to fifteen. `what` names the wait in the
/// timeout error ("vpc-123 to become available").
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
            return Err(DriverError::new(
                ErrorKind::Other,
                operation,
                format!(
                    "gave up waiting for {what} after {}s; it may still finish: run plan again to see",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(15));
    }
}

/// Retries `call` while AWS says the resource is still in use (a dependency
/// violation), for at most `timeout`: deleting a subnet right after the NAT
/// gateway in it is one such case.
pub async fn while_in_use<T, F, Fut>(timeout: Duration, mut call: F) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DriverError>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match call().await {
            Err(e) if e.kind == ErrorKind::DependencyViolation && start.elapsed() < timeout => {
                tokio::time::sleep(pause).await;
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
    match while_in_use(timeout, call).await {
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
        let r: Result<(), _> = while_in_use(Duration::from_secs(5), || async {
            Err(DriverError::new(
                ErrorKind::DependencyViolation,
                "ec2:DeleteSubnet",
                "in use",
            ))
        })
        .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::DependencyViolation);
    }
}

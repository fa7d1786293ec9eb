//! Per-resource calls where an API cannot batch: a few in flight at once,
//! answers kept in order.

use std::collections::HashMap;
use std::future::Future;

use fastcart_engine::{DriverError, Observed, ResourceHandle};
use futures::{StreamExt, TryStreamExt};

/// Runs `calls` with at most `limit` in flight; the first error wins.
pub async fn in_order<T, Fut>(calls: Vec<Fut>, limit: usize) -> Result<Vec<T>, DriverError>
where
    Fut: Future<Output = Result<T, DriverError>>,
{
    futures::stream::iter(calls)
        .buffered(limit.max(1))
        .try_collect()
        .await
}

/// A read's answer, one per handle in order: `observe` for each handle whose
/// object a batched describe `found` (by physical id), with at most `limit`
/// in flight (it may still call AWS, for tags), and `None` (gone) for the
/// others.
pub async fn observed<'a, T, F, Fut>(
    handles: &'a [ResourceHandle],
    found: &'a HashMap<String, T>,
    limit: usize,
    observe: F,
) -> Result<Vec<Option<Observed>>, DriverError>
where
    F: Fn(&'a ResourceHandle, &'a T) -> Fut,
    Fut: Future<Output = Result<Observed, DriverError>>,
{
    in_order(
        handles
            .iter()
            .map(|h| {
                let seen = found.get(&h.physical_id).map(|t| observe(h, t));
                async move {
                    match seen {
                        Some(o) => o.await.map(Some),
                        None => Ok(None),
                    }
                }
            })
            .collect(),
        limit,
    )
    .await
}
